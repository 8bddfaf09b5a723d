"""What a running API holds: settings, the registry, the reading store, a clock, senders.

One :class:`ApiContext` per application (``app.state.context``), built by ``vitalgate serve``
or by a test; routes reach it through :mod:`dashboard_api.deps`, never through globals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dashboard_api.commands import CommandPublisher
from dashboard_api.config import ApiSettings
from dashboard_api.live import LiveHub
from dashboard_api.ratelimit import SlidingWindowLimiter
from dashboard_api.security import Authenticator
from dashboard_api.sms import SmsSender
from ingest.stores.base import ReadingStore
from ingest.validate import DEFAULT_LIMITS, PlausibilityLimits
from registry.audit import AuditDetail, AuditOutcome, record_audit
from registry.db import session_scope


@dataclass
class ApiContext:
    """The injected parts of the API."""

    settings: ApiSettings
    registry: Engine
    store: ReadingStore
    clock: Callable[[], datetime]
    sms: SmsSender
    live: LiveHub | None = None
    """New readings for the stream; ``None`` where no accepted/ feed is connected."""
    plausibility: PlausibilityLimits = DEFAULT_LIMITS
    """The bounds a released quarantine entry is examined against (ingest's own)."""
    commands: CommandPublisher | None = None
    """Commands to gateways (pairing); ``None`` where no broker is connected (503)."""
    authenticator: Authenticator = field(init=False)
    login_limiter: SlidingWindowLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.authenticator = Authenticator(self.settings, clock=self.clock)
        self.login_limiter = SlidingWindowLimiter(
            self.settings.login_attempts_per_minute, 60.0, clock=self.clock
        )

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only registry transaction."""
        with session_scope(self.registry, write=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A registry transaction that changes data (and its audit row)."""
        with session_scope(self.registry) as session:
            yield session

    def audit(
        self,
        *,
        actor: str,
        actor_role: str | None,
        action: str,
        target: str,
        outcome: AuditOutcome,
        patient_ids: Sequence[str] = (),
        detail: AuditDetail | None = None,
    ) -> None:
        """Record one access in its own transaction, before the response is sent.

        If the audit row cannot be written the request fails (500): health data is never
        served without its record.
        """
        with self.write() as session:
            record_audit(
                session,
                at=self.clock(),
                actor=actor,
                actor_role=actor_role,
                action=action,
                target=target,
                outcome=outcome,
                patient_ids=patient_ids,
                detail=detail,
            )
