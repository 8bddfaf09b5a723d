"""Logging in: argon2id passwords, TOTP, lockout, access tokens, rotating refresh tokens, SMS links.

* **Passwords** are argon2id with argon2-cffi's defaults (t=3, m=64 MiB, p=4, above OWASP's
  minimum of m=19 MiB, t=2); a hash made with weaker parameters is replaced on the next
  successful login.
* **Staff** need password *and* a TOTP code (MLPS level 3: two factors for anyone who sees
  health data). Every failure answers the same generic error; after
  ``max_failed_logins`` failures the account is locked for ``lockout_minutes``.
* **Access tokens** are JWTs signed HS256 (the algorithm is pinned when verifying; ``none``
  and every other algorithm are refused), with ``iss``/``aud``/``exp`` checked and the
  account's ``session_version`` (``sv``) compared with the registry on every request.
  They carry ids only, never health data.
* **Refresh tokens** are random, stored as SHA-256, single use: each use issues the next of
  the same family. A used token presented again revokes the whole family (someone copied it).
* **SMS login links** for patients and family: random, single use, short-lived, hash stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dashboard_api.config import ApiSettings
from registry.care_models import AccountKind, LoginLink, RefreshToken, UserAccount

TOKEN_ALGORITHM: Final = "HS256"  # noqa: S105 - the pinned algorithm, not a secret
TOKEN_CLOCK_SKEW_SECONDS: Final = 5
"""Tolerance for a token issued by another API process whose clock is slightly ahead."""
TOTP_VALID_WINDOW_STEPS: Final = 1
"""Accept the previous and next 30-second code too: phones' clocks drift by seconds."""
REFRESH_TOKEN_BYTES: Final = 32
LOGIN_LINK_BYTES: Final = 32

_HASHER: Final = PasswordHasher()
# A real hash to verify against when the username is unknown, so that an unknown account
# takes as long to refuse as a wrong password (no timing oracle for usernames).
_DUMMY_HASH: Final = _HASHER.hash(secrets.token_hex(16))


class AuthError(Exception):
    """Root of the API's authentication errors; the message is safe to show."""


class InvalidCredentials(AuthError):
    """Wrong username, password or code, or a locked or disabled account (deliberately one)."""

    def __init__(self) -> None:
        super().__init__("invalid username, password or code")


class InvalidToken(AuthError):
    """A token that is malformed, expired, forged, revoked or of a dead session."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid token: {problem}")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified access token says."""

    user_id: int
    session_version: int
    csrf_hash: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A fresh login session: an access token, a refresh token and the CSRF token."""

    user_id: int
    access_token: str
    refresh_token: str
    csrf_token: str
    access_expires_at: datetime


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``."""
    return _HASHER.hash(password)


def digest(token: str) -> str:
    """SHA-256 hex of a random token (what is stored instead of the token)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


class Authenticator:
    """Logins and tokens against the registry, with an injected clock."""

    def __init__(self, settings: ApiSettings, *, clock: Any) -> None:
        self._settings = settings
        self._clock = clock
        self._key = settings.token_secret.get_secret_value()

    def login_staff(self, session: Session, username: str, password: str, code: str) -> int | None:
        """Check a staff login; the account id, or ``None`` for any failure.

        A failure is returned, not raised, so that the caller commits the failure count
        (raising inside the transaction would roll the lockout back).
        """
        now = self._clock()
        account = session.scalars(
            select(UserAccount).where(UserAccount.username == username)
        ).one_or_none()
        password_ok = _verify_password(account.password_hash if account else None, password)
        if account is None or account.kind != AccountKind.STAFF.value or not account.active:
            return None
        if account.locked_until is not None and account.locked_until > now:
            return None
        totp_ok = account.totp_secret is not None and pyotp.TOTP(account.totp_secret).verify(
            code, for_time=now, valid_window=TOTP_VALID_WINDOW_STEPS
        )
        if not (password_ok and totp_ok):
            account.failed_logins += 1
            if account.failed_logins >= self._settings.max_failed_logins:
                account.locked_until = now + timedelta(minutes=self._settings.lockout_minutes)
                account.failed_logins = 0
            return None
        account.failed_logins = 0
        account.locked_until = None
        assert account.password_hash is not None
        if _HASHER.check_needs_rehash(account.password_hash):
            account.password_hash = _HASHER.hash(password)
        return account.id

    def issue(self, session: Session, user_id: int, *, family: str | None = None) -> IssuedSession:
        """A new access token and refresh token (a new family unless continuing one)."""
        account = session.get(UserAccount, user_id)
        assert account is not None
        now = self._clock()
        csrf_token = secrets.token_urlsafe(24)
        expires = now + self._settings.access_token_lifetime
        access = jwt.encode(
            {
                "sub": str(user_id),
                "sv": account.session_version,
                "csrf": digest(csrf_token),
                "iss": self._settings.token_issuer,
                "aud": self._settings.token_audience,
                "iat": int(now.timestamp()),
                "exp": int(expires.timestamp()),
                "jti": secrets.token_hex(8),
            },
            self._key,
            algorithm=TOKEN_ALGORITHM,
        )
        refresh = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
        session.add(
            RefreshToken(
                token_hash=digest(refresh),
                family=family or secrets.token_hex(16),
                user_id=user_id,
                session_version=account.session_version,
                issued_at=now,
                expires_at=now + self._settings.refresh_token_lifetime,
                used_at=None,
                revoked_at=None,
            )
        )
        session.flush()
        return IssuedSession(
            user_id=user_id,
            access_token=access,
            refresh_token=refresh,
            csrf_token=csrf_token,
            access_expires_at=expires,
        )

    def verify_access(self, session: Session, token: str) -> TokenClaims:
        """Verify an access token's signature, claims and session.

        Raises:
            InvalidToken: expired, forged, wrong algorithm/issuer/audience, or the account's
                sessions ended (disabled, password changed).
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[TOKEN_ALGORITHM],
                audience=self._settings.token_audience,
                issuer=self._settings.token_issuer,
                options={
                    "require": ["exp", "iat", "sub", "sv", "csrf", "iss", "aud"],
                    # Times are checked below against the injected clock, the one clock of
                    # the service (tests move it; PyJWT would read the wall clock).
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        now = self._clock()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise InvalidToken("exp and iat must be integers")
        if exp <= now.timestamp():
            raise InvalidToken("ExpiredSignatureError")
        if iat > now.timestamp() + TOKEN_CLOCK_SKEW_SECONDS:
            raise InvalidToken("issued in the future")
        try:
            user_id = int(claims["sub"])
        except ValueError as exc:
            raise InvalidToken("bad subject") from exc
        account = session.get(UserAccount, user_id)
        if account is None or not account.active or account.session_version != claims["sv"]:
            raise InvalidToken("session ended")
        return TokenClaims(
            user_id=user_id,
            session_version=claims["sv"],
            csrf_hash=claims["csrf"],
            expires_at=datetime.fromtimestamp(claims["exp"], tz=now.tzinfo),
        )

    def rotate(self, session: Session, refresh_token: str) -> IssuedSession | InvalidToken:
        """Use a refresh token: the next session of its family, or why not.

        The refusal is returned, not raised, so that the caller commits what it did: a
        token presented again after it was used revokes its whole family first.
        """
        now = self._clock()
        row = session.scalars(
            select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
        ).one_or_none()
        if row is None:
            return InvalidToken("unknown refresh token")
        if row.used_at is not None or row.revoked_at is not None:
            # Reuse of a rotated token: a copy is in someone else's hands. End the session.
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.family == row.family, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return InvalidToken("refresh token reused: the session was revoked")
        if row.expires_at <= now:
            return InvalidToken("refresh token expired")
        account = session.get(UserAccount, row.user_id)
        if account is None or not account.active or account.session_version != row.session_version:
            return InvalidToken("session ended")
        row.used_at = now
        return self.issue(session, row.user_id, family=row.family)

    def revoke_family_of(self, session: Session, refresh_token: str) -> None:
        """Log out: revoke the refresh token's family (nothing if unknown)."""
        row = session.scalars(
            select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
        ).one_or_none()
        if row is not None:
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.family == row.family, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )

    def create_login_link(self, session: Session, phone: str) -> tuple[str, int] | None:
        """A one-time login token for the patient or family account with ``phone``.

        Returns ``None`` when no active passwordless account has that phone (the caller
        answers the same either way, so phone numbers cannot be probed).
        """
        account = session.scalars(
            select(UserAccount).where(
                UserAccount.phone == phone,
                UserAccount.kind.in_([AccountKind.PATIENT.value, AccountKind.FAMILY.value]),
                UserAccount.active.is_(True),
            )
        ).first()
        if account is None:
            return None
        now = self._clock()
        token = secrets.token_urlsafe(LOGIN_LINK_BYTES)
        session.add(
            LoginLink(
                token_hash=digest(token),
                user_id=account.id,
                issued_at=now,
                expires_at=now + timedelta(minutes=self._settings.login_link_minutes),
                used_at=None,
            )
        )
        session.flush()
        return token, account.id

    def use_login_link(self, session: Session, token: str) -> int:
        """Redeem a login link once; returns the account id.

        Raises:
            InvalidToken: unknown, used or expired.
        """
        now = self._clock()
        row = session.scalars(
            select(LoginLink).where(LoginLink.token_hash == digest(token))
        ).one_or_none()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise InvalidToken("the login link is unknown, used or expired")
        row.used_at = now
        account = session.get(UserAccount, row.user_id)
        if account is None or not account.active:
            raise InvalidToken("the account is disabled")
        return account.id
