"""The audit log: an append-only record of who changed (or read) what in the registry.

A change and its audit row are written in the same transaction, so neither exists
without the other. Refused attempts are recorded too (outcome ``rejected``), in their own
transaction after the refused one was rolled back. The detail holds ids and arguments,
never health values.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeAlias

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.clock import aware_utc
from registry.errors import InvalidRegistryInput
from registry.models import AuditRecord

AuditDetail: TypeAlias = Mapping[str, str | int | float | bool | None]

MAX_ACTOR_LENGTH: Final = 128
MAX_TARGET_LENGTH: Final = 255


class AuditOutcome(StrEnum):
    """How an audited action ended."""

    OK = "ok"
    REJECTED = "rejected"
    """Refused (bad input, conflict); nothing was changed."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log."""

    at: datetime
    actor: str
    action: str
    target: str
    outcome: AuditOutcome
    detail: dict[str, Any]


def os_actor() -> str:
    """The operating-system user running this process (the default actor of a command)."""
    try:
        return getpass.getuser()
    except OSError:
        # No login name and no passwd entry (a container with an arbitrary uid).
        return f"uid:{os.getuid()}"


def record_audit(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: AuditOutcome = AuditOutcome.OK,
    detail: AuditDetail | None = None,
) -> None:
    """Add an audit row to the session's transaction.

    Args:
        session: the transaction that makes the change being audited.
        at: when (timezone-aware).
        actor: who: an operating-system user or an account name.
        action: dotted verb, e.g. ``"device.bind"``.
        target: the id acted on.
        outcome: whether it was done.
        detail: the arguments (ids and labels; never health values).

    Raises:
        InvalidRegistryInput: empty or over-long actor or target, or a naive ``at``.
    """
    if not actor.strip() or len(actor) > MAX_ACTOR_LENGTH:
        raise InvalidRegistryInput("actor", f"must be 1 to {MAX_ACTOR_LENGTH} characters")
    if len(target) > MAX_TARGET_LENGTH:
        raise InvalidRegistryInput("target", f"must be at most {MAX_TARGET_LENGTH} characters")
    session.add(
        AuditRecord(
            at=aware_utc(at, "at"),
            actor=actor,
            action=action,
            target=target,
            outcome=outcome.value,
            detail=json.dumps(dict(detail or {}), sort_keys=True, ensure_ascii=False),
        )
    )


def recent_audit(session: Session, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` audit rows, newest first."""
    rows = session.scalars(
        select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit)
    )
    return [
        AuditEntry(
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            outcome=AuditOutcome(row.outcome),
            detail=json.loads(row.detail),
        )
        for row in rows
    ]
