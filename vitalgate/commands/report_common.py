"""What ``vitalgate report`` and ``vitalgate export`` share: load one patient's data from
the registry and the store, and record the export in the audit log (same transaction)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import NoReturn, TypeVar

import typer

from registry.audit import record_audit
from registry.db import check_schema, create_engine_for, session_scope
from registry.errors import RegistryError
from reports.errors import ReportsError
from reports.loading import PatientData, load_patient_data
from vitalgate.commands.registry_options import RegistryOptions

T = TypeVar("T")


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_export(
    options: RegistryOptions,
    store_url: str,
    patient_id: str,
    first: date | None,
    last: date | None,
    action: str,
    build: Callable[[PatientData], T],
) -> T:
    """Load the patient's data, build the output, and audit it, in one transaction.

    Exit 2 for an unknown patient or a bad period, 1 when the registry or store fails.
    """
    from ingest.stores import open_store
    from ingest.stores.base import StoreConfigError, StoreError

    try:
        engine = create_engine_for(options.url)
        check_schema(engine)
        store = open_store(store_url)
    except (RegistryError, StoreConfigError, StoreError, OSError) as exc:
        fail(str(exc), 1)
    try:
        with session_scope(engine) as session:
            data = load_patient_data(
                session, store, patient_id, first, last, lambda: datetime.now(UTC)
            )
            result = build(data)
            record_audit(
                session,
                at=datetime.now(UTC),
                actor=options.actor,
                action=action,
                target=patient_id,
                detail={"from": data.period.start.isoformat(), "to": data.period.end.isoformat()},
                patient_ids=[patient_id],
            )
        return result
    except ReportsError as exc:
        fail(f"{type(exc).__name__}: {exc}", 2)
    except (RegistryError, StoreError) as exc:
        fail(str(exc), 1)
    finally:
        store.close()
        engine.dispose()
