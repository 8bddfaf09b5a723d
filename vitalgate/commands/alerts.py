"""``vitalgate alerts``: check rule files and backtest rules over files of readings.

Examples::

    vitalgate alerts rules check my-rules.yaml
    vitalgate alerts backtest --readings readings.jsonl --patients patients.yaml --format table
    vitalgate alerts backtest --readings r.jsonl --patients p.json --rules my-rules.yaml \\
        --until 2026-12-01T00:00:00Z --format json

Exit status: 0 done, 1 the rule file is invalid, 2 bad input (unreadable or invalid
readings/patients file, a bad ``--until``).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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
    readings: Annotated[Path, typer.Option(help="Readings, JSON Lines in the wire form.")],
    patients: Annotated[Path, typer.Option(help="Patients, YAML or JSON list.")],
    rules: Annotated[
        Path | None, typer.Option(help="Rule file (default: the packaged default rules).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Run the clock to this ISO time (default: last reading + 1 day)."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="json or table.")] = (
        OutputFormat.JSON
    ),
) -> None:
    """Run the rules over files of readings as if they had arrived on time."""
    from alerts.backtest import BacktestError, run_backtest
    from alerts.rules.loader import RuleFileError, default_rules, load_rules
    from readings.files import InputFileError, load_patient_profiles, load_readings_jsonl

    try:
        rule_set = default_rules() if rules is None else load_rules(rules)
    except RuleFileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
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


# The worker lives in its own module: it imports the registry, the store and MQTT, which
# `rules check` and `backtest` do not need.
from vitalgate.commands.alerts_run import run as _run  # noqa: E402

app.command("run")(_run)
