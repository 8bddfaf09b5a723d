"""``vitalgate registry``: create the care registry and manage gateways, patients, devices.

Examples::

    vitalgate registry init
    vitalgate registry --registry postgresql://vitalgate@db.internal/registry init
    vitalgate registry gateway add gw-0001 --label "Wang household, Chaoyang"
    vitalgate registry patient add patient-0001 --name "Wang Fang"
    vitalgate registry device bind OMRON-HEM_7361T-20031234 --gateway gw-0001 --patient patient-0001
    vitalgate registry device bind Roche-Accu_Chek_Guide-92310000123 --gateway gw-0001 \
        --patient patient-0001 --history-since 2026-09-01
    vitalgate registry device list --gateway gw-0001
    vitalgate registry device unbind OMRON-HEM_7361T-20031234

Every command is recorded in the registry's audit log (actor: the operating-system user,
or ``--actor``), refused attempts included. Success prints one JSON document on stdout;
a refusal prints one line on stderr and exits 2; an unreachable or uninitialised
database exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Annotated, Any, Final, NoReturn
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry.audit import AuditDetail, AuditOutcome, record_audit
from registry.clock import utc_now
from registry.db import (
    check_schema,
    create_engine_for,
    current_revision,
    ensure_sqlite_directory,
    session_scope,
    upgrade,
)
from registry.errors import (
    AlreadyExists,
    InvalidRegistryInput,
    MigrationError,
    NotFound,
    RegistryError,
    RegistryUnavailable,
)
from registry.models import DEFAULT_PATIENT_TIME_ZONE
from registry.repositories import (
    DeviceRepository,
    GatewayRecord,
    GatewayRepository,
    PairingRecord,
    PatientRepository,
)
from vitalgate.commands.registry_options import RegistryOptions, registry_options

EXIT_REFUSED: Final = 2
"""Bad input or a conflict with what the registry holds: the operator must change the command."""
EXIT_FAILED: Final = 1
"""The registry could not be used (unreachable, not initialised): retrying may help."""

_REFUSALS: Final = (NotFound, AlreadyExists, InvalidRegistryInput)

app = typer.Typer(
    help="The care registry: gateways, patients, device bindings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
gateway_app = typer.Typer(help="Gateways: the home boxes allowed to send readings.")
patient_app = typer.Typer(help="Patients: opaque ids with a display label.")
device_app = typer.Typer(help="Devices and their binding to a patient through a gateway.")
app.add_typer(gateway_app, name="gateway", no_args_is_help=True)
app.add_typer(patient_app, name="patient", no_args_is_help=True)
app.add_typer(device_app, name="device", no_args_is_help=True)


app.callback()(registry_options)


def _fail(error: Exception, code: int) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code)


def _emit(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, ensure_ascii=False, sort_keys=True))


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _pairing_json(pairing: PairingRecord) -> dict[str, Any]:
    return {
        "device_id": pairing.device_id,
        "gateway_id": pairing.gateway_id,
        "patient_id": pairing.patient_id,
        "valid_from": _time(pairing.valid_from),
        "valid_to": _time(pairing.valid_to),
        "history_since": _time(pairing.history_since),
    }


def parse_history_since(text: str, time_zone: str) -> datetime:
    """``--history-since``: a date (midnight at the patient's home) or a time with offset.

    Raises:
        InvalidRegistryInput: neither, or a time without offset (its zone would be a guess).
    """
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(0), tzinfo=ZoneInfo(time_zone))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRegistryInput(
            "history_since",
            f"{text!r} is not a date (2026-09-01) or a time with offset (2026-09-01T08:00+08:00)",
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRegistryInput(
            "history_since",
            f"{text!r} has no UTC offset: give a date, or a time such as 2026-09-01T08:00+08:00",
        )
    return moment


def _gateway_json(gateway: GatewayRecord) -> dict[str, Any]:
    return {
        "id": gateway.id,
        "label": gateway.label,
        "active": gateway.active,
        "created_at": _time(gateway.created_at),
    }


def _run(
    ctx: typer.Context,
    *,
    action: str,
    target: str,
    detail: AuditDetail,
    operation: Callable[[Session], dict[str, Any]],
) -> None:
    """Run ``operation`` in one transaction with its audit row; print its result."""
    options: RegistryOptions = ctx.obj
    try:
        engine = create_engine_for(options.url)
    except InvalidRegistryInput as error:
        _fail(error, EXIT_REFUSED)
    try:
        check_schema(engine)
        try:
            with session_scope(engine) as session:
                result = operation(session)
                record_audit(
                    session,
                    at=utc_now(),
                    actor=options.actor,
                    action=action,
                    target=target,
                    detail=detail,
                )
        except _REFUSALS as error:
            _audit_refusal(engine, options, action, target, detail, error)
            _fail(error, EXIT_REFUSED)
    except (MigrationError, RegistryUnavailable) as error:
        _fail(error, EXIT_FAILED)
    except SQLAlchemyError as error:
        _fail(RegistryUnavailable(_first_line(error)), EXIT_FAILED)
    finally:
        engine.dispose()
    _emit(result)


def _audit_refusal(
    engine: Engine,
    options: RegistryOptions,
    action: str,
    target: str,
    detail: AuditDetail,
    error: RegistryError,
) -> None:
    # A refused actor name cannot be recorded as the actor of its own refusal.
    if isinstance(error, InvalidRegistryInput) and error.field == "actor":
        return
    with session_scope(engine) as session:
        record_audit(
            session,
            at=utc_now(),
            actor=options.actor,
            action=action,
            target=target[:255],
            outcome=AuditOutcome.REJECTED,
            detail={**detail, "error": str(error)},
        )


def _first_line(error: SQLAlchemyError) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the registry database, or migrate it to this version's schema.

    Creates the directory of a SQLite file if missing. Running it again changes nothing.
    """
    options: RegistryOptions = ctx.obj
    try:
        engine = create_engine_for(options.url)
    except InvalidRegistryInput as error:
        _fail(error, EXIT_REFUSED)
    shown_url = make_url(options.url).render_as_string(hide_password=True)
    try:
        ensure_sqlite_directory(engine.url)
        before = current_revision(engine)
        revision = upgrade(engine)
        with session_scope(engine) as session:
            record_audit(
                session,
                at=utc_now(),
                actor=options.actor,
                action="registry.init",
                target="registry",
                detail={"revision": revision, "previous_revision": before},
            )
    except (MigrationError, RegistryUnavailable) as error:
        _fail(error, EXIT_FAILED)
    except SQLAlchemyError as error:
        _fail(RegistryUnavailable(_first_line(error)), EXIT_FAILED)
    finally:
        engine.dispose()
    _emit({"registry": shown_url, "revision": revision, "previous_revision": before})


@gateway_app.command("add")
def gateway_add(
    ctx: typer.Context,
    gateway_id: Annotated[str, typer.Argument(metavar="ID", help="Gateway id (its MQTT user).")],
    label: Annotated[str, typer.Option(help="Where it is, for operators.")] = "",
) -> None:
    """Register a gateway (active at once)."""

    def operation(session: Session) -> dict[str, Any]:
        gateway = GatewayRepository(session).add(gateway_id, label)
        return {"gateway": _gateway_json(gateway)}

    _run(
        ctx,
        action="gateway.add",
        target=gateway_id,
        detail={"label": label},
        operation=operation,
    )


def _set_active(ctx: typer.Context, gateway_id: str, active: bool) -> None:
    def operation(session: Session) -> dict[str, Any]:
        gateway = GatewayRepository(session).set_active(gateway_id, active)
        return {"gateway": _gateway_json(gateway)}

    _run(
        ctx,
        action="gateway.activate" if active else "gateway.deactivate",
        target=gateway_id,
        detail={},
        operation=operation,
    )


@gateway_app.command("deactivate")
def gateway_deactivate(
    ctx: typer.Context,
    gateway_id: Annotated[str, typer.Argument(metavar="ID")],
) -> None:
    """Refuse everything a gateway sends (lost, stolen or retired box)."""
    _set_active(ctx, gateway_id, active=False)


@gateway_app.command("activate")
def gateway_activate(
    ctx: typer.Context,
    gateway_id: Annotated[str, typer.Argument(metavar="ID")],
) -> None:
    """Accept a deactivated gateway's readings again."""
    _set_active(ctx, gateway_id, active=True)


@patient_app.command("add")
def patient_add(
    ctx: typer.Context,
    patient_id: Annotated[
        str, typer.Argument(metavar="ID", help="Opaque patient id (never a name or ID number).")
    ],
    name: Annotated[str | None, typer.Option(help="Display label for the care team.")] = None,
    time_zone: Annotated[
        str, typer.Option(help="IANA time zone of the patient's home.")
    ] = DEFAULT_PATIENT_TIME_ZONE,
) -> None:
    """Register a patient."""

    def operation(session: Session) -> dict[str, Any]:
        patient = PatientRepository(session).add(patient_id, name, time_zone)
        return {
            "patient": {
                "id": patient.id,
                "time_zone": patient.time_zone,
                "created_at": _time(patient.created_at),
            }
        }

    _run(
        ctx,
        action="patient.add",
        target=patient_id,
        detail={"time_zone": time_zone, "display_name_given": name is not None},
        operation=operation,
    )


@device_app.command("bind")
def device_bind(
    ctx: typer.Context,
    device_id: Annotated[
        str, typer.Argument(metavar="DEVICE_ID", help="manufacturer-model-serial")
    ],
    gateway: Annotated[str, typer.Option(help="Gateway that collects its readings.")],
    patient: Annotated[str, typer.Option(help="Patient its readings belong to.")],
    profile: Annotated[str | None, typer.Option(help="Device profile in firmware_configs.")] = None,
    history_since: Annotated[
        str | None,
        typer.Option(
            "--history-since",
            metavar="DATE",
            help="Readings already in the device's memory measured from DATE on are the "
            "patient's: a date (midnight at the patient's home) or a time with offset. "
            "Default: none of them (the binding time).",
        ),
    ] = None,
) -> None:
    """Bind a device to a patient through a gateway, from now on.

    Readings the device measured before the binding (its stored memory, sent at the first
    sync) are the patient's only from --history-since on; older ones are quarantined with
    the reason before_binding until a person releases them. Give it for the patient's own
    meter; leave it out for a second-hand or borrowed one. It can never reach back past
    the device's binding to another patient.

    Same binding again: no change (or only the new --history-since). Same patient, other
    gateway: moved, keeping the history decision. Other patient: refused.
    """

    def operation(session: Session) -> dict[str, Any]:
        since = None
        if history_since is not None:
            time_zone = PatientRepository(session).get(patient).time_zone
            since = parse_history_since(history_since, time_zone)
        result = DeviceRepository(session).bind(
            device_id, gateway, patient, profile=profile, history_since=since
        )
        return {
            "bound": _pairing_json(result.pairing),
            "changed": result.created or result.history_changed,
            "moved_from_gateway": None if result.closed is None else result.closed.gateway_id,
            "device_registered": result.device_created,
        }

    _run(
        ctx,
        action="device.bind",
        target=device_id,
        detail={
            "gateway_id": gateway,
            "patient_id": patient,
            "profile": profile,
            "history_since": history_since,
        },
        operation=operation,
    )


@device_app.command("unbind")
def device_unbind(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(metavar="DEVICE_ID")],
) -> None:
    """End a device's binding now; its history is kept."""

    def operation(session: Session) -> dict[str, Any]:
        return {"unbound": _pairing_json(DeviceRepository(session).unbind(device_id))}

    _run(ctx, action="device.unbind", target=device_id, detail={}, operation=operation)


@device_app.command("list")
def device_list(
    ctx: typer.Context,
    gateway: Annotated[str | None, typer.Option(help="Only this gateway's devices.")] = None,
    history: Annotated[bool, typer.Option(help="Include ended bindings.")] = False,
) -> None:
    """List device bindings (current ones unless --history)."""

    def operation(session: Session) -> dict[str, Any]:
        pairings = DeviceRepository(session).pairings(gateway_id=gateway, include_history=history)
        return {"data": [_pairing_json(p) for p in pairings], "count": len(pairings)}

    # Listing shows which patient uses which device: a read of patient data, audited.
    _run(
        ctx,
        action="device.list",
        target=gateway or "*",
        detail={"gateway_id": gateway, "history": history},
        operation=operation,
    )
