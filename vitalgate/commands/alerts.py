"""``vitalgate alerts``: check rule files; backtest rules over files or stored history.

Examples::

    vitalgate alerts rules check my-rules.yaml
    vitalgate alerts backtest --readings readings.jsonl --patients patients.yaml --format table
    vitalgate alerts backtest --readings r.jsonl --patients p.json --rules my-rules.yaml \\
        --until 2026-12-01T00:00:00Z --format json
    vitalgate alerts backtest --store sqlite:///data/readings.db \\
        --registry sqlite:///data/registry.db --since 30d --format table

Exit status: 0 done, 1 the rule file is invalid or the registry/store failed, 2 bad input
(unreadable or invalid readings/patients file, a bad ``--until`` or ``--since``, both forms
or neither).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from alerts.backtest import BacktestResult
    from alerts.rules.model import RuleSet

app = typer.Typer(
    help="Alert rules: check rule files, backtest them over readings.", no_args_is_help=True
)
rules_app = typer.Typer(help="Rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


class OutputFormat(StrEnum):
    """How ``backtest`` prints its result."""

    JSON = "json"
    TABLE = "table"


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(help="A rule file (YAML).")]) -> None:
    """Validate a rule file; print its rules, or the error naming file, rule and key."""
    from alerts.rules.loader import RuleFileError, load_rules

    try:
        rules = load_rules(file)
    except RuleFileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    ids = ", ".join(f"{r.id} v{r.version}" for r in rules.rules)
    typer.echo(f"{file}: {len(rules.rules)} rules OK ({ids})")


@app.command("backtest")
def backtest(
    readings: Annotated[
        Path | None, typer.Option(help="Readings, JSON Lines in the wire form (file form).")
    ] = None,
    patients: Annotated[
        Path | None, typer.Option(help="Patients, YAML or JSON list (file form).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Reading store URL (stored-history form).")
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="Registry URL: patients and conditions (stored form).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Stored form: the history to replay, up to now (30d, 12h, 90min)."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(help="Stored form: who to record in the audit log (default: OS user)."),
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Rule file (default: the packaged default rules).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="File form: run the clock to this ISO time (default: last reading + 1 day)."
        ),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="json or table.")] = (
        OutputFormat.JSON
    ),
) -> None:
    """Run the rules over readings as if they had arrived on time: over files
    (--readings, --patients) or over stored history (--store, --registry, --since)."""
    from alerts.backtest import BacktestError, run_backtest
    from alerts.rules.loader import RuleFileError, default_rules, load_rules
    from readings.files import InputFileError, load_patient_profiles, load_readings_jsonl

    file_form = readings is not None or patients is not None or until is not None
    stored_form = store is not None or registry is not None or since is not None
    if file_form == stored_form:
        typer.echo(
            "give either --readings and --patients (files) or --store, --registry and "
            "--since (stored history)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        rule_set = default_rules() if rules is None else load_rules(rules)
    except RuleFileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    result: BacktestResult
    if stored_form:
        result = _backtest_stored(store, registry, since, actor, rule_set)
    else:
        if readings is None or patients is None:
            typer.echo("the file form needs both --readings and --patients", err=True)
            raise typer.Exit(2)
        end: datetime | None = None
        if until is not None:
            try:
                end = datetime.fromisoformat(until)
            except ValueError:
                end = None
            if end is None or end.tzinfo is None:
                typer.echo(f"--until: {until!r} is not an ISO time with a UTC offset", err=True)
                raise typer.Exit(2)
        try:
            result = run_backtest(
                load_readings_jsonl(readings), load_patient_profiles(patients), rule_set, until=end
            )
        except (InputFileError, BacktestError) as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(2) from None
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    document = result.to_json()
    typer.echo(
        f"{'rule':<5} {'severity':<8} {'patient':<16} {'fired_at':<25} {'resolved_at':<25} readings"
    )
    for alert in document["alerts"]:
        flags = ("" if alert["confirmed"] else " unconfirmed") + (" late" if alert["late"] else "")
        typer.echo(
            f"{alert['rule_id']:<5} {alert['severity']:<8} {alert['patient_id']:<16} "
            f"{alert['fired_at']:<25} {alert['resolved_at'] or '-':<25} "
            f"{len(alert['reading_ids'])}{flags}"
        )
    typer.echo(f"\npatient-weeks: {document['patient_weeks']}")
    typer.echo(f"implausible readings dropped (S4, never an alarm): {result.dropped_implausible}")
    typer.echo(f"{'rule':<5} {'alerts':>7} {'per patient-week':>17}")
    for rule_id, counts in document["per_rule"].items():
        typer.echo(f"{rule_id:<5} {counts['alerts']:>7} {counts['per_patient_week']:>17}")


def _backtest_stored(
    store_url: str | None,
    registry_url: str | None,
    since_text: str | None,
    actor: str | None,
    rule_set: RuleSet,
) -> BacktestResult:
    """The stored-history form: exit 2 for a bad option, 1 when registry or store fail."""
    from alerts.backtest import BacktestError
    from alerts.backtest_store import backtest_stored, parse_since
    from ingest.stores import open_store
    from ingest.stores.base import StoreError
    from registry.audit import os_actor
    from registry.db import check_schema, create_engine_for
    from registry.errors import RegistryError

    if store_url is None or registry_url is None or since_text is None:
        given = {"--store": store_url, "--registry": registry_url, "--since": since_text}
        missing = ", ".join(name for name, value in given.items() if value is None)
        typer.echo(f"the stored-history form needs {missing}", err=True)
        raise typer.Exit(2)
    try:
        since = parse_since(since_text)
    except BacktestError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    try:
        engine = create_engine_for(registry_url)
        check_schema(engine)
        reading_store = open_store(store_url)
    except (RegistryError, StoreError, OSError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    try:
        return backtest_stored(
            engine,
            reading_store,
            rule_set,
            since,
            datetime.now(UTC),
            actor=actor if actor is not None else os_actor(),
        )
    except BacktestError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    except (RegistryError, StoreError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    finally:
        reading_store.close()
        engine.dispose()


# The worker lives in its own module: it imports the registry, the store and MQTT, which
# `rules check` and `backtest` do not need.
from vitalgate.commands.alerts_run import run as _run  # noqa: E402

app.command("run")(_run)
