"""``vitalgate export fhir|csv``: one patient's readings (or alerts) leave the system.

Usage::

    vitalgate export fhir --patient p-wang --from 2026-03-01 --to 2026-03-14 \\
        --registry sqlite:///./registry.db --store sqlite:///./readings.db --out bundle.json
    vitalgate export csv --what alerts|visits --patient p-wang … --out alerts.csv

Dates are local days in the patient's zone (inclusive; default the last 14 days). Each
export is recorded in the registry's audit log. Exit 0 done, 1 registry or store unusable,
2 unknown patient or bad period.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from reports.loading import PatientData
from vitalgate.commands.registry_options import RegistryOptions, registry_options
from vitalgate.commands.report_common import run_export

app = typer.Typer(
    help="Export one patient's data: FHIR R4 Bundle or CSV.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
app.callback()(registry_options)

Patient = Annotated[str, typer.Option("--patient", help="The patient's id.")]
Out = Annotated[Path, typer.Option("--out", help="Where to write it.")]
Store = Annotated[
    str, typer.Option("--store", envvar="VITALGATE_STORE_URL", help="Reading store URL.")
]
First = Annotated[
    datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First local day.")
]
Last = Annotated[
    datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last local day (inclusive).")
]


@app.command("fhir")
def fhir(
    ctx: typer.Context,
    patient: Patient,
    out: Out,
    store: Store,
    first: First = None,
    last: Last = None,
) -> None:
    """A FHIR R4 transaction Bundle (PHD IG), validated with fhir.resources."""
    from reports.fhir import fhir_bundle

    options: RegistryOptions = ctx.obj

    def build(data: PatientData) -> str:
        bundle = fhir_bundle(
            data.patient_id,
            data.readings,
            data.period,
            generated_at=datetime.now(UTC),
            patient_accounts=data.patient_accounts,
        )
        return json.dumps(bundle, ensure_ascii=False, indent=1)

    text = run_export(
        options,
        store,
        patient,
        first.date() if first else None,
        last.date() if last else None,
        "export.fhir",
        build,
    )
    out.write_text(text, encoding="utf-8")
    typer.echo(str(out))


@app.command("csv")
def csv(
    ctx: typer.Context,
    patient: Patient,
    out: Out,
    store: Store,
    first: First = None,
    last: Last = None,
    what: Annotated[str, typer.Option("--what", help="readings, alerts or visits.")] = "readings",
) -> None:
    """Readings, alerts or visits as CSV (units in the headers, formula cells escaped)."""
    from reports.csv_export import alerts_csv, readings_csv, visits_csv

    builders = {
        "readings": lambda d: readings_csv(d.readings),
        "alerts": lambda d: alerts_csv(d.alerts),
        "visits": lambda d: visits_csv(d.visits),
    }
    if what not in builders:
        raise typer.BadParameter("use readings, alerts or visits", param_hint="--what")
    options: RegistryOptions = ctx.obj

    def build(data: PatientData) -> str:
        return builders[what](data)

    text = run_export(
        options,
        store,
        patient,
        first.date() if first else None,
        last.date() if last else None,
        f"export.csv.{what}",
        build,
    )
    out.write_text(text, encoding="utf-8-sig", newline="")
    typer.echo(str(out))
