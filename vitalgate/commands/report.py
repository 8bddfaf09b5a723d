"""``vitalgate report``: one patient's one-page PDF report over a period.

Usage::

    vitalgate report --registry sqlite:///./vitalgate-data/registry.db \\
        --store sqlite:///./vitalgate-data/readings.db \\
        --patient p-wang --from 2026-03-01 --to 2026-03-14 --lang zh --out report.pdf

``--from``/``--to`` are local days in the patient's zone (inclusive; default: the 14 days
ending today). The export is recorded in the registry's audit log. Exit 0 done, 1 registry
or store unusable, 2 unknown patient or bad period.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from reports.loading import PatientData
from vitalgate.commands.registry_options import RegistryOptions, registry_options
from vitalgate.commands.report_common import run_export

app = typer.Typer(
    help="One patient's one-page PDF report (zh or en).",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    patient: Annotated[str, typer.Option("--patient", help="The patient's id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    store: Annotated[
        str, typer.Option("--store", envvar="VITALGATE_STORE_URL", help="Reading store URL.")
    ],
    first: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First local day.")
    ] = None,
    last: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last local day (inclusive)."),
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="zh or en.")] = "zh",
    registry: Annotated[
        str | None,
        typer.Option("--registry", envvar="VITALGATE_REGISTRY_URL", help="Registry database URL."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who to record in the audit log.")] = None,
) -> None:
    """Write the patient's report as an A4 PDF."""
    from reports.pdf import ReportInput, report_pdf
    from reports.summaries import summarise_patient

    if lang not in ("zh", "en"):
        raise typer.BadParameter("use zh or en", param_hint="--lang")
    registry_options(ctx, **({"registry": registry} if registry else {}), actor=actor)
    options: RegistryOptions = ctx.obj

    def build(data: PatientData) -> bytes:
        summary = summarise_patient(data.patient_id, data.readings, data.period, data.targets)
        return report_pdf(ReportInput.of(data, summary, datetime.now(UTC)), lang)

    pdf = run_export(
        options,
        store,
        patient,
        first.date() if first else None,
        last.date() if last else None,
        "report.pdf",
        build,
    )
    out.write_bytes(pdf)
    typer.echo(str(out))
