"""Per-nurse calendar-feed tokens: issued once in clear, stored as SHA-256, revocable.

A phone calendar subscribes to ``/api/v1/calendar/<token>.ics`` without logging in, so the
token is the only secret: 32 random bytes (256 bits), of which the registry keeps only the
hash — a copy of the database does not give anyone the feeds. Issuing a new token revokes
the old ones: a lost phone is dealt with by issuing again.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.care_lookup import find_account
from registry.care_models import UserAccount
from registry.clock import Clock, utc_now
from registry.visit_models import CalendarToken


def token_hash(token: str) -> str:
    """The stored form of a token (hex SHA-256; the token has 256 bits, no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class CalendarTokens:
    """Calendar-feed tokens, inside the caller's transaction."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def issue(self, username: str) -> str:
        """A new token for ``username`` (returned once, never stored); older ones are revoked."""
        account = find_account(self._session, username)
        self.revoke(username)
        token = secrets.token_urlsafe(32)
        self._session.add(
            CalendarToken(
                user_id=account.id,
                token_hash=token_hash(token),
                created_at=self._clock(),
                revoked_at=None,
            )
        )
        self._session.flush()
        return token

    def revoke(self, username: str) -> int:
        """Revoke every token of ``username``; how many were in force."""
        account = find_account(self._session, username)
        result = self._session.execute(
            update(CalendarToken)
            .where(CalendarToken.user_id == account.id, CalendarToken.revoked_at.is_(None))
            .values(revoked_at=self._clock())
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def owner(self, token: str) -> str | None:
        """The username a token in force belongs to, if its account is active."""
        return self._session.scalars(
            select(UserAccount.username)
            .join(CalendarToken, CalendarToken.user_id == UserAccount.id)
            .where(
                CalendarToken.token_hash == token_hash(token),
                CalendarToken.revoked_at.is_(None),
                UserAccount.active.is_(True),
            )
        ).first()
