"""``vitalgate quarantine``: see what ingest refused and why, and release it once fixed.

Examples::

    vitalgate quarantine list --gateway gw-0001 --reason plausibility --since 2026-11-01
    vitalgate quarantine show 42
    vitalgate quarantine release 42 43 --store influxdb-v1://127.0.0.1:8086/vitalgate \\
        --reason "device bound to the right patient"
    vitalgate quarantine release 44 --store sqlite:///./vitalgate-data/readings.db \\
        --decided-by dr.li --reason "meter bought new on 2026-11-02; readings are hers"

``list`` prints one JSON document per line (newest first, unreleased only unless
``--released``); ``show`` prints one entry as JSON with its raw payload. ``release`` runs
the ingest examination again in this process on each entry (nothing is published as the
gateway), stores the readings that now pass, marks the entry released (kept, not deleted)
and records each attempt in the registry's audit log. Releasing readings measured before
their device's binding (``before_binding``) is a clinical decision: ``--decided-by`` names
who decided, and is recorded with the reason.

Exit status: 0 done, 1 the registry or store could not be used, 2 a refusal (bad input,
unknown entry, a decision missing), 3 some entry is still refused after re-examination.
"""

from __future__ import annotations

import base64
import json
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer

from registry.db import check_schema, create_engine_for
from registry.errors import InvalidRegistryInput, NotFound, RegistryError
from registry.quarantine import QuarantineFilter, QuarantineRecord, QuarantineStore
from vitalgate.commands.registry_options import RegistryOptions, registry_options

EXIT_FAILED: Final = 1
EXIT_REFUSED: Final = 2
EXIT_STILL_REFUSED: Final = 3
DEFAULT_LIST_LIMIT: Final = 100

app = typer.Typer(
    help="Quarantined readings: list, show, release once the cause is fixed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.callback()(registry_options)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option}: {value!r} is not an ISO 8601 date or time", EXIT_REFUSED)
    if parsed.tzinfo is None:
        _fail(f"{option}: give the UTC offset, e.g. {value}+08:00 or {value}Z", EXIT_REFUSED)
    return parsed


def _summary(record: QuarantineRecord) -> dict[str, Any]:
    entry = record.entry
    return {
        "id": record.id,
        "received_at": entry.received_at.isoformat(),
        "gateway_id": entry.gateway_id,
        "reason": entry.reason,
        "detail": entry.detail,
        "reading_id": entry.reading_id,
        "security_event": entry.security_event,
        "released_at": None if record.released_at is None else record.released_at.isoformat(),
        "released_by": record.released_by,
        "release_reason": record.release_reason,
    }


def _store_for(ctx: typer.Context) -> QuarantineStore:
    options: RegistryOptions = ctx.obj
    try:
        engine = create_engine_for(options.url)
        check_schema(engine)
    except InvalidRegistryInput as exc:
        _fail(str(exc), EXIT_REFUSED)
    except RegistryError as exc:
        _fail(str(exc), EXIT_FAILED)
    ctx.call_on_close(engine.dispose)
    return QuarantineStore(engine)


@app.command("list")
def list_entries(
    ctx: typer.Context,
    gateway: Annotated[str | None, typer.Option(help="Only entries from this gateway.")] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Only this reason: envelope, contract, ownership, before_binding, "
            "plausibility, store_rejected."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Received at or after (ISO 8601 with offset).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Received before (ISO 8601 with offset).")
    ] = None,
    released: Annotated[bool, typer.Option(help="Also list released entries.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = (
        DEFAULT_LIST_LIMIT
    ),
) -> None:
    """List quarantined entries, newest first, one JSON document per line."""
    try:
        criteria = QuarantineFilter(
            gateway_id=gateway,
            reason=reason,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            include_released=released,
        )
    except InvalidRegistryInput as exc:
        _fail(str(exc), EXIT_REFUSED)
    store = _store_for(ctx)
    try:
        records = store.find(criteria, limit=limit)
    except RegistryError as exc:
        _fail(str(exc), EXIT_FAILED)
    for record in records:
        typer.echo(json.dumps(_summary(record), ensure_ascii=False, sort_keys=True))


@app.command()
def show(
    ctx: typer.Context,
    entry_id: Annotated[int, typer.Argument(help="The entry's id (from list).", metavar="ID")],
) -> None:
    """Print one entry with its raw payload (``raw``: as text when it is UTF-8;
    ``raw_base64``: the exact bytes)."""
    store = _store_for(ctx)
    try:
        record = store.get(entry_id)
    except NotFound as exc:
        _fail(str(exc), EXIT_REFUSED)
    except RegistryError as exc:
        _fail(str(exc), EXIT_FAILED)
    document = _summary(record)
    raw = record.entry.raw
    try:
        document["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        document["raw"] = None
    document["raw_base64"] = base64.b64encode(raw).decode("ascii")
    document["device_id"] = record.entry.device_id
    document["claimed_patient_id"] = record.entry.claimed_patient_id
    document["topic"] = record.entry.topic
    typer.echo(json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2))


@app.command()
def release(
    ctx: typer.Context,
    entry_ids: Annotated[
        list[int], typer.Argument(help="The entries to release (ids from list).", metavar="ID…")
    ],
    reason: Annotated[
        str, typer.Option(help="Why the cause is fixed (recorded in the audit log).")
    ],
    store: Annotated[
        str | None,
        typer.Option(help="Reading store URL (default: store_url of --config)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="The ingest worker's settings file (store and plausibility limits)."),
    ] = None,
    decided_by: Annotated[
        str | None,
        typer.Option(
            help="Who decided that readings measured before their device's binding belong "
            "to the bound patient (required for before_binding entries)."
        ),
    ] = None,
) -> None:
    """Examine entries again, store the readings that now pass, mark them released."""
    from ingest.config import IngestConfigError, load_settings
    from ingest.release import DecisionRequired
    from ingest.release import release as release_entries
    from ingest.stores import open_store
    from ingest.stores.base import StoreConfigError, StoreError
    from registry.clock import utc_now
    from registry.ownership import OwnershipChecker

    options: RegistryOptions = ctx.obj
    if not reason.strip():
        _fail("--reason: say why the cause is fixed", EXIT_REFUSED)
    if decided_by is not None and not decided_by.strip():
        _fail("--decided-by: name the person who decided", EXIT_REFUSED)
    try:
        settings = load_settings(config_file=config, store_url=store, registry_url=options.url)
    except IngestConfigError as exc:
        _fail(f"configuration error: {exc.key}: {exc.problem}", EXIT_REFUSED)
    quarantine = _store_for(ctx)
    try:
        records = [quarantine.get(entry_id) for entry_id in dict.fromkeys(entry_ids)]
    except NotFound as exc:
        _fail(str(exc), EXIT_REFUSED)
    except RegistryError as exc:
        _fail(str(exc), EXIT_FAILED)
    engine = create_engine_for(options.url)
    ctx.call_on_close(engine.dispose)
    try:
        reading_store = open_store(settings.store_url)
    except StoreConfigError as exc:
        _fail(str(exc), EXIT_REFUSED)
    with closing(reading_store):
        try:
            outcomes = release_entries(
                records,
                engine=engine,
                store=reading_store,
                ownership=OwnershipChecker(engine, cache_ttl_seconds=0),
                limits=settings.plausibility,
                clock=utc_now,
                actor=options.actor,
                reason=reason,
                decided_by=decided_by,
            )
        except DecisionRequired as exc:
            _fail(str(exc), EXIT_REFUSED)
        except (StoreError, RegistryError) as exc:
            _fail(str(exc), EXIT_FAILED)
    for outcome in outcomes:
        typer.echo(
            json.dumps(
                {
                    "id": outcome.entry_id,
                    "released": outcome.released,
                    "already_released": outcome.already_released,
                    "stored_ids": list(outcome.stored_ids),
                    "still_refused": list(outcome.refusals),
                },
                ensure_ascii=False,
                sort_keys=True,
            )
        )
    if any(not (outcome.released or outcome.already_released) for outcome in outcomes):
        raise typer.Exit(EXIT_STILL_REFUSED)
