"""Bytes per registry row on PostgreSQL, for the capacity model in ``docs/scaling.md``.

Run from the repository root (needs the PostgreSQL the tests use, see ``tests/conftest.py``)::

    python bench/registry_size.py --rows 20000

It creates a fresh database, migrates it, appends ``--rows`` audit rows shaped like the
API's (``readings.read`` of one patient by a doctor, through :func:`registry.audit.record_audit`,
so the hash chain is real) and ``--rows`` alerts with one opening event each, then reports
``pg_total_relation_size`` (table, TOAST and every index) per row after ``VACUUM ANALYZE``.
The database is dropped at the end. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import text  # noqa: E402

from registry.alert_models import AlertEvent, AlertRow  # noqa: E402
from registry.audit import AuditOutcome, record_audit  # noqa: E402
from registry.db import create_engine_for, session_scope, upgrade  # noqa: E402
from registry.repositories import PatientRepository  # noqa: E402
from tests.harness.services import find_postgres, postgres_driver  # noqa: E402

PATIENTS = 100
COMMIT_EVERY = 1_000


def _fill(url: str, rows: int) -> None:
    engine = create_engine_for(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        with session_scope(engine) as session:
            for index in range(PATIENTS):
                PatientRepository(session).add(f"patient-{index:06d}")
        for first in range(0, rows, COMMIT_EVERY):
            with session_scope(engine) as session:
                for index in range(first, min(rows, first + COMMIT_EVERY)):
                    patient = f"patient-{index % PATIENTS:06d}"
                    at = start + timedelta(seconds=index)
                    record_audit(
                        session,
                        at=at,
                        actor=f"doctor-{index % 50:04d}",
                        actor_role="doctor",
                        action="readings.read",
                        target=f"/api/v1/patients/{patient}/readings",
                        outcome=AuditOutcome.OK,
                        patient_ids=[patient],
                        detail={"kind": "glucose", "points": 500},
                    )
                    alert = AlertRow(
                        patient_id=patient,
                        rule_id="G2",
                        rule_version=1,
                        metric="glucose",
                        severity="P2",
                        state="resolved",
                        confirmed=True,
                        late=False,
                        reading_ids=json.dumps([f"{index:040x}", f"{index + 1:040x}"]),
                        thresholds=json.dumps({"below_mmol_per_l": 3.9, "above_mmol_per_l": 3.0}),
                        explanation_key="alerts.g2.low",
                        explanation_params=json.dumps({"value_mmol_per_l": 3.4}),
                        opened_at=at,
                        fired_at=at,
                        acknowledged_at=at + timedelta(minutes=5),
                        acknowledged_by="nurse-0001",
                        resolved_at=at + timedelta(hours=1),
                    )
                    session.add(alert)
                    session.flush()
                    session.add(
                        AlertEvent(
                            alert_id=alert.id,
                            at=at,
                            kind="opened",
                            from_state=None,
                            to_state="open",
                            actor="alerts",
                            reason="rule G2 matched",
                        )
                    )
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    driver = postgres_driver()
    if driver is None:
        raise SystemExit("needs psycopg or psycopg2")
    database = find_postgres()
    database.create()
    try:
        url = database.sqlalchemy_url(driver)
        upgrade(url)
        _fill(url, args.rows)
        engine = create_engine_for(url)
        try:
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM ANALYZE")
                )
                sizes = {
                    table: connection.execute(
                        text(f"SELECT pg_total_relation_size('{table}')")
                    ).scalar_one()
                    for table in ("audit_log", "alerts", "alert_events")
                }
        finally:
            engine.dispose()
    finally:
        database.drop()
    print(
        json.dumps(
            {
                "rows": args.rows,
                "bytes_total": sizes,
                "bytes_per_row": {k: round(v / args.rows) for k, v in sizes.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
