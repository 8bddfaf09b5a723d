"""Checks and lookups shared by the care-model repositories."""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.care_models import (
    CareTeam,
    UserAccount,
)
from registry.errors import InvalidRegistryInput, NotFound
from registry.models import Patient

USERNAME_PATTERN: Final = r"[a-z0-9][a-z0-9._-]{1,63}"
_USERNAME_RE: Final = re.compile(USERNAME_PATTERN)
_PHONE_RE: Final = re.compile(r"\+?[0-9]{6,20}")
MAX_REASON_LENGTH: Final = 500


def check_username(username: str) -> str:
    """``username`` if it is a valid account name, else :class:`InvalidRegistryInput`."""
    if not _USERNAME_RE.fullmatch(username):
        raise InvalidRegistryInput(
            "username",
            "must be 2 to 64 lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return username


def check_phone(phone: str | None) -> str | None:
    """``phone`` if absent or 6 to 20 digits (optionally after ``+``)."""
    if phone is not None and not _PHONE_RE.fullmatch(phone):
        raise InvalidRegistryInput("phone", "must be 6 to 20 digits, optionally after '+'")
    return phone


def check_reason(reason: str, field: str = "reason") -> str:
    """A non-empty reason of bounded length (it goes into history rows)."""
    if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise InvalidRegistryInput(field, f"must be 1 to {MAX_REASON_LENGTH} characters")
    return reason


def find_patient(session: Session, patient_id: str) -> Patient:
    """The patient, or :class:`NotFound`."""
    row = session.get(Patient, patient_id)
    if row is None:
        raise NotFound("patient", patient_id)
    return row


def find_team(session: Session, code: str) -> CareTeam:
    """The team with ``code``, or :class:`NotFound`."""
    row = session.scalars(select(CareTeam).where(CareTeam.code == code)).one_or_none()
    if row is None:
        raise NotFound("team", code)
    return row


def find_account(session: Session, username: str) -> UserAccount:
    """The account named ``username``, or :class:`NotFound`."""
    row = session.scalars(select(UserAccount).where(UserAccount.username == username)).one_or_none()
    if row is None:
        raise NotFound("user", username)
    return row
