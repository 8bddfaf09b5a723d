"""Accounts of staff, patients and family members (rules: :mod:`registry.care`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.care_lookup import (
    check_phone,
    check_username,
    find_account,
    find_patient,
)
from registry.care_models import (
    STAFF_ROLES,
    AccountKind,
    Role,
    UserAccount,
    UserRole,
)
from registry.clock import Clock, utc_now
from registry.errors import AlreadyExists, InvalidRegistryInput


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account as stored, without its secrets."""

    id: int
    username: str
    display_name: str
    kind: AccountKind
    roles: frozenset[Role]
    phone: str | None
    patient_id: str | None
    custodial: bool
    active: bool
    has_password: bool
    totp_enrolled: bool
    session_version: int


class AccountRepository:
    """Accounts of staff, patients and family members."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def add(
        self,
        username: str,
        *,
        display_name: str,
        kind: AccountKind,
        roles: Iterable[Role] = (),
        phone: str | None = None,
        patient_id: str | None = None,
        custodial: bool = False,
    ) -> AccountRecord:
        """Create an account (no password or second factor yet).

        Raises:
            InvalidRegistryInput: bad username or phone, roles that do not fit the kind, a
                patient account without its patient.
            AlreadyExists: the username is taken, or the patient has an account already.
            NotFound: the patient does not exist.
        """
        check_username(username)
        role_set = frozenset(roles)
        if kind is AccountKind.STAFF:
            if not role_set or not role_set <= STAFF_ROLES:
                raise InvalidRegistryInput("roles", "a staff account needs staff roles only")
            if patient_id is not None:
                raise InvalidRegistryInput("patient_id", "a staff account is nobody's patient")
        else:
            expected = Role.PATIENT if kind is AccountKind.PATIENT else Role.FAMILY
            if role_set - {expected}:
                raise InvalidRegistryInput("roles", f"a {kind.value} account has no staff roles")
            role_set = frozenset({expected})
            if kind is AccountKind.PATIENT and patient_id is None:
                raise InvalidRegistryInput("patient_id", "a patient account names its patient")
            if kind is AccountKind.FAMILY and patient_id is not None:
                raise InvalidRegistryInput(
                    "patient_id", "family members are linked to patients, not accounts of them"
                )
        if patient_id is not None:
            find_patient(self._session, patient_id)
            if self._session.scalars(
                select(UserAccount.id).where(UserAccount.patient_id == patient_id)
            ).first():
                raise AlreadyExists("account of patient", patient_id)
        if self._session.scalars(
            select(UserAccount.id).where(UserAccount.username == username)
        ).first():
            raise AlreadyExists("user", username)
        row = UserAccount(
            username=username,
            display_name=display_name,
            kind=kind.value,
            phone=check_phone(phone),
            password_hash=None,
            totp_secret=None,
            patient_id=patient_id,
            custodial=custodial,
            active=True,
            failed_logins=0,
            locked_until=None,
            session_version=1,
            created_at=self._clock(),
        )
        self._session.add(row)
        self._session.flush()
        for role in sorted(role_set):
            self._session.add(UserRole(user_id=row.id, role=role.value))
        self._session.flush()
        return self.get(username)

    def get(self, username: str) -> AccountRecord:
        """The account named ``username``.

        Raises:
            NotFound: no such account.
        """
        row = find_account(self._session, username)
        roles = self._session.scalars(select(UserRole.role).where(UserRole.user_id == row.id))
        return AccountRecord(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            kind=AccountKind(row.kind),
            roles=frozenset(Role(role) for role in roles),
            phone=row.phone,
            patient_id=row.patient_id,
            custodial=row.custodial,
            active=row.active,
            has_password=row.password_hash is not None,
            totp_enrolled=row.totp_secret is not None,
            session_version=row.session_version,
        )

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """Store a new password hash; every session of the account ends."""
        row = find_account(self._session, username)
        if row.kind != AccountKind.STAFF.value:
            raise InvalidRegistryInput("password", "patients and family log in without one")
        row.password_hash = password_hash
        row.failed_logins = 0
        row.locked_until = None
        row.session_version += 1

    def set_totp_secret(self, username: str, secret: str | None) -> None:
        """Enrol (or remove) the TOTP second factor; every session of the account ends."""
        row = find_account(self._session, username)
        row.totp_secret = secret
        row.session_version += 1

    def set_active(self, username: str, active: bool) -> None:
        """Disable or re-enable an account; disabling ends every session."""
        row = find_account(self._session, username)
        row.active = active
        row.session_version += 1
