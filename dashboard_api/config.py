"""Settings of the API service (``VITALGATE_API_…`` environment variables or arguments)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

API_PREFIX: Final = "/api/v1"
"""Where the API lives; routers carry it in their own prefix, so a route's path (recorded in
the audit) is the full template."""

MIN_SECRET_LENGTH: Final = 32
"""HS256 keys shorter than the hash output (32 bytes) weaken the signature (RFC 7518 §3.2)."""

ACCESS_TOKEN_MINUTES: Final = 10
"""Access tokens are short so that a stolen one is soon useless; every request also checks
the account's session version, so disabling an account or changing its password ends its
sessions at once regardless."""

REFRESH_TOKEN_HOURS: Final = 12
"""A clinic shift: a doctor logs in once per working day."""

LOGIN_LINK_MINUTES: Final = 10
"""An SMS login link is single-use and short-lived: SMS is read within minutes or not at all."""

MAX_FAILED_LOGINS: Final = 5
"""MLPS level 3 asks for lockout after repeated failures; five leaves room for typos."""

LOCKOUT_MINUTES: Final = 15


class ApiSettings(BaseSettings):
    """Configuration of ``vitalgate serve``; secrets never have defaults outside the demo."""

    model_config = SettingsConfigDict(env_prefix="VITALGATE_API_", extra="forbid")

    token_secret: SecretStr = Field(
        description="Key that signs access tokens (≥ 32 characters); keep it out of the repo."
    )
    token_issuer: str = "vitalgate"  # noqa: S105 - a name, not a secret
    token_audience: str = "vitalgate-api"  # noqa: S105 - a name, not a secret
    access_token_minutes: int = Field(default=ACCESS_TOKEN_MINUTES, ge=1, le=60)
    refresh_token_hours: int = Field(default=REFRESH_TOKEN_HOURS, ge=1, le=24 * 30)
    login_link_minutes: int = Field(default=LOGIN_LINK_MINUTES, ge=1, le=60)
    max_failed_logins: int = Field(default=MAX_FAILED_LOGINS, ge=1, le=100)
    lockout_minutes: int = Field(default=LOCKOUT_MINUTES, ge=1)
    secure_cookies: bool = Field(
        default=True, description="Mark cookies Secure (off only for plain-HTTP loopback demos)."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base of links sent by SMS (the site as patients reach it).",
    )
    login_attempts_per_minute: int = Field(
        default=10,
        ge=1,
        description="Per client address, across accounts: slows guessing at scale.",
    )

    @field_validator("token_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @property
    def access_token_lifetime(self) -> timedelta:
        """How long an access token is valid."""
        return timedelta(minutes=self.access_token_minutes)

    @property
    def refresh_token_lifetime(self) -> timedelta:
        """How long a refresh token is valid."""
        return timedelta(hours=self.refresh_token_hours)
