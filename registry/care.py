"""Changes to the care model: accounts, teams, contracts, rota, family consents, the patient.

Like :mod:`registry.repositories`, each repository works in the caller's transaction and
returns frozen records. Rules enforced here (besides the database's own constraints):

* a username is unique, lower-case letters, digits, ``.``, ``_`` and ``-``; staff accounts
  carry at least one staff role, patient and family accounts none;
* a patient has at most one open contract; a contract cannot start before the previous one
  ended; ending a contract records the reason;
* a duty shift names an active family doctor, who need not be a member of the team: a
  centre's night duty covers several teams, and the shift alone gives the duty doctor access
  to the team's patients while it lasts;
* a family consent needs a family link, names known scopes and is revoked, never deleted;
* targets and statuses are effective-dated history: setting one appends a row.

Who may call which method is decided by the API's authorization, not here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.care_models import (
    STAFF_ROLES,
    AccessGrant,
    AccountKind,
    CareContract,
    CareTeam,
    Condition,
    ConsentScope,
    DutyShift,
    FamilyConsent,
    FamilyLink,
    GrantKind,
    MonitoringConsent,
    PatientConditionRow,
    PatientStatus,
    PatientStatusChange,
    PatientTarget,
    Role,
    TeamMembership,
    TeamPosition,
    UserAccount,
    UserRole,
)
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import AlreadyExists, InvalidRegistryInput, NotFound
from registry.models import Patient

USERNAME_PATTERN: Final = r"[a-z0-9][a-z0-9._-]{1,63}"
_USERNAME_RE: Final = re.compile(USERNAME_PATTERN)
_PHONE_RE: Final = re.compile(r"\+?[0-9]{6,20}")
MAX_REASON_LENGTH: Final = 500


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


@dataclass(frozen=True, slots=True)
class ContractRecord:
    """A patient's contract with a team."""

    id: int
    patient_id: str
    team_code: str
    service_package: str
    starts_on: date
    ends_on: date | None
    end_reason: str | None


@dataclass(frozen=True, slots=True)
class ShiftRecord:
    """A duty shift."""

    id: int
    team_code: str
    doctor_username: str
    starts_at: datetime
    ends_at: datetime
    covers_username: str | None


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A family member's consent, as granted (and maybe revoked)."""

    id: int
    patient_id: str
    family_username: str
    relationship: str
    scopes: frozenset[ConsentScope]
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def in_force(self, at: datetime) -> bool:
        """The consent allows access at ``at``."""
        return (
            self.granted_at <= at
            and (self.expires_at is None or at < self.expires_at)
            and (self.revoked_at is None or at < self.revoked_at)
        )


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """A personal target, effective from a moment on."""

    patient_id: str
    metric: str
    low: float | None
    high: float | None
    unit: str
    effective_from: datetime
    set_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """The patient's monitoring status from a moment on."""

    patient_id: str
    status: PatientStatus
    reason: str
    effective_from: datetime
    recorded_by: str


def _check_username(username: str) -> str:
    if not _USERNAME_RE.fullmatch(username):
        raise InvalidRegistryInput(
            "username",
            "must be 2 to 64 lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return username


def _check_phone(phone: str | None) -> str | None:
    if phone is not None and not _PHONE_RE.fullmatch(phone):
        raise InvalidRegistryInput("phone", "must be 6 to 20 digits, optionally after '+'")
    return phone


def _check_reason(reason: str, field: str = "reason") -> str:
    if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise InvalidRegistryInput(field, f"must be 1 to {MAX_REASON_LENGTH} characters")
    return reason


def _patient(session: Session, patient_id: str) -> Patient:
    row = session.get(Patient, patient_id)
    if row is None:
        raise NotFound("patient", patient_id)
    return row


def _team(session: Session, code: str) -> CareTeam:
    row = session.scalars(select(CareTeam).where(CareTeam.code == code)).one_or_none()
    if row is None:
        raise NotFound("team", code)
    return row


def _account(session: Session, username: str) -> UserAccount:
    row = session.scalars(select(UserAccount).where(UserAccount.username == username)).one_or_none()
    if row is None:
        raise NotFound("user", username)
    return row


def parse_scopes(values: Iterable[str]) -> frozenset[ConsentScope]:
    """Known consent scopes from their names.

    Raises:
        InvalidRegistryInput: an unknown scope, or none at all.
    """
    scopes = set()
    for value in values:
        try:
            scopes.add(ConsentScope(value.strip()))
        except ValueError as exc:
            known = ", ".join(scope.value for scope in ConsentScope)
            raise InvalidRegistryInput(
                "scopes", f"unknown scope {value!r} (known: {known})"
            ) from exc
    if not scopes:
        raise InvalidRegistryInput("scopes", "give at least one scope")
    return frozenset(scopes)


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
        _check_username(username)
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
            _patient(self._session, patient_id)
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
            phone=_check_phone(phone),
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
        row = _account(self._session, username)
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
        row = _account(self._session, username)
        if row.kind != AccountKind.STAFF.value:
            raise InvalidRegistryInput("password", "patients and family log in without one")
        row.password_hash = password_hash
        row.failed_logins = 0
        row.locked_until = None
        row.session_version += 1

    def set_totp_secret(self, username: str, secret: str | None) -> None:
        """Enrol (or remove) the TOTP second factor; every session of the account ends."""
        row = _account(self._session, username)
        row.totp_secret = secret
        row.session_version += 1

    def set_active(self, username: str, active: bool) -> None:
        """Disable or re-enable an account; disabling ends every session."""
        row = _account(self._session, username)
        row.active = active
        row.session_version += 1


class TeamRepository:
    """Family-doctor teams and their members."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def add(self, code: str, *, name: str, organisation: str) -> int:
        """Create a team; returns its id.

        Raises:
            AlreadyExists: the code is taken.
        """
        if self._session.scalars(select(CareTeam.id).where(CareTeam.code == code)).first():
            raise AlreadyExists("team", code)
        row = CareTeam(code=code, name=name, organisation=organisation, created_at=self._clock())
        self._session.add(row)
        self._session.flush()
        return row.id

    def add_member(
        self, code: str, username: str, position: TeamPosition, *, since: datetime | None = None
    ) -> None:
        """Make a staff member part of the team from ``since`` (default: now).

        Raises:
            NotFound: no such team or user.
            InvalidRegistryInput: not a staff account, or a position the roles do not allow.
            AlreadyExists: already a current member.
        """
        team = _team(self._session, code)
        account = AccountRepository(self._session).get(username)
        if account.kind is not AccountKind.STAFF:
            raise InvalidRegistryInput("username", "only staff accounts join care teams")
        needed = {
            TeamPosition.DOCTOR: Role.FAMILY_DOCTOR,
            TeamPosition.NURSE: Role.NURSE,
            TeamPosition.LEAD: Role.TEAM_LEAD,
        }[position]
        if needed not in account.roles:
            raise InvalidRegistryInput("position", f"{username} does not hold the role {needed}")
        start = aware_utc(since, "since") if since is not None else self._clock()
        current = self._session.scalars(
            select(TeamMembership.id).where(
                TeamMembership.team_id == team.id,
                TeamMembership.user_id == account.id,
                TeamMembership.position == position.value,
                TeamMembership.valid_to.is_(None),
            )
        ).first()
        if current is not None:
            raise AlreadyExists("team member", f"{username} in {code}")
        self._session.add(
            TeamMembership(
                team_id=team.id,
                user_id=account.id,
                position=position.value,
                valid_from=start,
                valid_to=None,
            )
        )
        self._session.flush()

    def end_member(self, code: str, username: str, *, at: datetime | None = None) -> int:
        """End every current membership of ``username`` in the team; returns how many."""
        team = _team(self._session, code)
        account = _account(self._session, username)
        end = aware_utc(at, "at") if at is not None else self._clock()
        rows = self._session.scalars(
            select(TeamMembership).where(
                TeamMembership.team_id == team.id,
                TeamMembership.user_id == account.id,
                TeamMembership.valid_to.is_(None),
            )
        ).all()
        for row in rows:
            if end <= row.valid_from:
                raise InvalidRegistryInput("at", "a membership cannot end before it began")
            row.valid_to = end
        return len(rows)


class ContractRepository:
    """Contracts (签约) between patients and teams."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def sign(
        self, patient_id: str, team_code: str, *, service_package: str, starts_on: date
    ) -> ContractRecord:
        """Open a contract.

        Raises:
            NotFound: no such patient or team.
            AlreadyExists: the patient has an open contract (end it first).
            InvalidRegistryInput: it would start before the previous contract ended.
        """
        _patient(self._session, patient_id)
        team = _team(self._session, team_code)
        if not service_package.strip() or len(service_package) > 64:
            raise InvalidRegistryInput("service_package", "must be 1 to 64 characters")
        previous = self._session.scalars(
            select(CareContract)
            .where(CareContract.patient_id == patient_id)
            .order_by(CareContract.starts_on.desc())
        ).first()
        if previous is not None and previous.ends_on is None:
            raise AlreadyExists(
                "open contract",
                patient_id,
                f"patient {patient_id} has an open contract since {previous.starts_on}: end it "
                "first",
            )
        if previous is not None and previous.ends_on is not None and starts_on < previous.ends_on:
            raise InvalidRegistryInput(
                "starts_on", f"the previous contract ends on {previous.ends_on}"
            )
        row = CareContract(
            patient_id=patient_id,
            team_id=team.id,
            service_package=service_package,
            starts_on=starts_on,
            ends_on=None,
            end_reason=None,
            signed_at=self._clock(),
        )
        self._session.add(row)
        self._session.flush()
        return self._record(row, team.code)

    def end(self, patient_id: str, *, ends_on: date, reason: str) -> ContractRecord:
        """End the patient's open contract on ``ends_on`` (exclusive).

        Raises:
            NotFound: no open contract.
            InvalidRegistryInput: the end is not after the start, or no reason.
        """
        row = self._session.scalars(
            select(CareContract).where(
                CareContract.patient_id == patient_id, CareContract.ends_on.is_(None)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("open contract", patient_id)
        if ends_on <= row.starts_on:
            raise InvalidRegistryInput("ends_on", f"must be after the start {row.starts_on}")
        row.ends_on = ends_on
        row.end_reason = _check_reason(reason)
        team = self._session.get(CareTeam, row.team_id)
        assert team is not None
        return self._record(row, team.code)

    def history(self, patient_id: str) -> list[ContractRecord]:
        """Every contract of the patient, oldest first."""
        rows = self._session.execute(
            select(CareContract, CareTeam.code)
            .join(CareTeam, CareTeam.id == CareContract.team_id)
            .where(CareContract.patient_id == patient_id)
            .order_by(CareContract.starts_on)
        ).all()
        return [self._record(row, code) for row, code in rows]

    @staticmethod
    def _record(row: CareContract, team_code: str) -> ContractRecord:
        return ContractRecord(
            id=row.id,
            patient_id=row.patient_id,
            team_code=team_code,
            service_package=row.service_package,
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            end_reason=row.end_reason,
        )


class RotaRepository:
    """The on-call rota: duty doctors per team and period, and cover during leave."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_shift(
        self,
        team_code: str,
        doctor: str,
        *,
        starts_at: datetime,
        ends_at: datetime,
        covers: str | None = None,
    ) -> ShiftRecord:
        """Put ``doctor`` on duty for the team over ``[starts_at, ends_at)``.

        Raises:
            NotFound: no such team or user.
            InvalidRegistryInput: the period is empty, or ``doctor`` is not an active family
                doctor.
        """
        team = _team(self._session, team_code)
        start, end = aware_utc(starts_at, "starts_at"), aware_utc(ends_at, "ends_at")
        if end <= start:
            raise InvalidRegistryInput("ends_at", "must be after starts_at")
        doctor_row = _account(self._session, doctor)
        self._require_doctor(doctor_row)
        covered = None
        if covers is not None:
            covered = _account(self._session, covers)
            if covered.id == doctor_row.id:
                raise InvalidRegistryInput("covers", "a doctor does not cover for themselves")
        row = DutyShift(
            team_id=team.id,
            doctor_user_id=doctor_row.id,
            starts_at=start,
            ends_at=end,
            covers_user_id=None if covered is None else covered.id,
        )
        self._session.add(row)
        self._session.flush()
        return ShiftRecord(
            id=row.id,
            team_code=team.code,
            doctor_username=doctor_row.username,
            starts_at=start,
            ends_at=end,
            covers_username=None if covered is None else covered.username,
        )

    def duty_doctor(self, team_code: str, at: datetime) -> ShiftRecord | None:
        """The shift to page at ``at``: a cover shift before a regular one, then the latest."""
        team = _team(self._session, team_code)
        moment = aware_utc(at, "at")
        rows = self._session.scalars(
            select(DutyShift).where(
                DutyShift.team_id == team.id,
                DutyShift.starts_at <= moment,
                DutyShift.ends_at > moment,
            )
        ).all()
        if not rows:
            return None
        chosen = max(rows, key=lambda row: (row.covers_user_id is not None, row.starts_at))
        doctor = self._session.get(UserAccount, chosen.doctor_user_id)
        covered = (
            None
            if chosen.covers_user_id is None
            else self._session.get(UserAccount, chosen.covers_user_id)
        )
        assert doctor is not None
        return ShiftRecord(
            id=chosen.id,
            team_code=team.code,
            doctor_username=doctor.username,
            starts_at=chosen.starts_at,
            ends_at=chosen.ends_at,
            covers_username=None if covered is None else covered.username,
        )

    def _require_doctor(self, account: UserAccount) -> None:
        roles = set(
            self._session.scalars(select(UserRole.role).where(UserRole.user_id == account.id))
        )
        if Role.FAMILY_DOCTOR.value not in roles or not account.active:
            raise InvalidRegistryInput(
                "doctor", f"{account.username} is not an active family doctor"
            )


class FamilyRepository:
    """Family members linked to patients, and the consents patients give them."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def link(self, patient_id: str, username: str, *, relationship: str) -> int:
        """Link a family account to a patient (no access yet: that takes a consent).

        Raises:
            NotFound: no such patient or user.
            InvalidRegistryInput: not a family account, or no relationship.
            AlreadyExists: already linked.
        """
        _patient(self._session, patient_id)
        account = _account(self._session, username)
        if account.kind != AccountKind.FAMILY.value:
            raise InvalidRegistryInput("username", "only family accounts are linked to patients")
        if not relationship.strip() or len(relationship) > 32:
            raise InvalidRegistryInput("relationship", "must be 1 to 32 characters")
        if self._link_id(patient_id, account.id) is not None:
            raise AlreadyExists("family link", f"{username} of {patient_id}")
        row = FamilyLink(
            patient_id=patient_id,
            user_id=account.id,
            relationship=relationship,
            created_at=self._clock(),
        )
        self._session.add(row)
        self._session.flush()
        return row.id

    def grant(
        self,
        patient_id: str,
        username: str,
        scopes: Iterable[ConsentScope],
        *,
        granted_by: str,
        expires_at: datetime | None = None,
    ) -> ConsentRecord:
        """Record the patient's consent; a consent in force for the pair is revoked first.

        Raises:
            NotFound: the family member is not linked to the patient.
            InvalidRegistryInput: no scope, or an expiry in the past.
        """
        account = _account(self._session, username)
        link_id = self._link_id(patient_id, account.id)
        if link_id is None:
            raise NotFound("family link", f"{username} of {patient_id}")
        scope_set = frozenset(scopes)
        if not scope_set:
            raise InvalidRegistryInput("scopes", "give at least one scope")
        now = self._clock()
        if expires_at is not None and aware_utc(expires_at, "expires_at") <= now:
            raise InvalidRegistryInput("expires_at", "must be in the future")
        for consent in self._in_force(link_id, now):
            consent.revoked_at = now
            consent.revoked_by = granted_by
        row = FamilyConsent(
            link_id=link_id,
            scopes=",".join(sorted(scope.value for scope in scope_set)),
            granted_at=now,
            granted_by=granted_by,
            expires_at=expires_at,
            revoked_at=None,
            revoked_by=None,
        )
        self._session.add(row)
        self._session.flush()
        return self._consents(patient_id, account.id)[-1]

    def revoke(self, patient_id: str, username: str, *, revoked_by: str) -> int:
        """Revoke every consent in force of the family member for the patient; how many."""
        account = _account(self._session, username)
        link_id = self._link_id(patient_id, account.id)
        if link_id is None:
            raise NotFound("family link", f"{username} of {patient_id}")
        now = self._clock()
        consents = self._in_force(link_id, now)
        for consent in consents:
            consent.revoked_at = now
            consent.revoked_by = revoked_by
        return len(consents)

    def consents(self, patient_id: str) -> list[ConsentRecord]:
        """Every consent the patient gave, oldest first (who can see what, and who could)."""
        return self._consents(patient_id, None)

    def _consents(self, patient_id: str, user_id: int | None) -> list[ConsentRecord]:
        query = (
            select(FamilyConsent, FamilyLink, UserAccount.username)
            .join(FamilyLink, FamilyLink.id == FamilyConsent.link_id)
            .join(UserAccount, UserAccount.id == FamilyLink.user_id)
            .where(FamilyLink.patient_id == patient_id)
            .order_by(FamilyConsent.granted_at, FamilyConsent.id)
        )
        if user_id is not None:
            query = query.where(FamilyLink.user_id == user_id)
        return [
            ConsentRecord(
                id=consent.id,
                patient_id=link.patient_id,
                family_username=username,
                relationship=link.relationship,
                scopes=frozenset(ConsentScope(s) for s in consent.scopes.split(",")),
                granted_at=consent.granted_at,
                expires_at=consent.expires_at,
                revoked_at=consent.revoked_at,
            )
            for consent, link, username in self._session.execute(query).all()
        ]

    def _link_id(self, patient_id: str, user_id: int) -> int | None:
        return self._session.scalars(
            select(FamilyLink.id).where(
                FamilyLink.patient_id == patient_id, FamilyLink.user_id == user_id
            )
        ).first()

    def _in_force(self, link_id: int, now: datetime) -> Sequence[FamilyConsent]:
        return self._session.scalars(
            select(FamilyConsent).where(
                FamilyConsent.link_id == link_id,
                FamilyConsent.revoked_at.is_(None),
                (FamilyConsent.expires_at.is_(None)) | (FamilyConsent.expires_at > now),
            )
        ).all()


class PatientCareRepository:
    """The patient's conditions, monitoring consent, targets, status and access grants."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def set_conditions(self, patient_id: str, conditions: Iterable[Condition]) -> None:
        """Replace the patient's list of conditions."""
        _patient(self._session, patient_id)
        wanted = {condition.value for condition in conditions}
        rows = self._session.scalars(
            select(PatientConditionRow).where(PatientConditionRow.patient_id == patient_id)
        ).all()
        for row in rows:
            if row.condition not in wanted:
                self._session.delete(row)
        have = {row.condition for row in rows}
        now = self._clock()
        for condition in sorted(wanted - have):
            self._session.add(
                PatientConditionRow(patient_id=patient_id, condition=condition, recorded_at=now)
            )
        self._session.flush()

    def conditions(self, patient_id: str) -> frozenset[Condition]:
        """The patient's conditions."""
        return frozenset(
            Condition(value)
            for value in self._session.scalars(
                select(PatientConditionRow.condition).where(
                    PatientConditionRow.patient_id == patient_id
                )
            )
        )

    def record_monitoring_consent(
        self, patient_id: str, *, recorded_by: str, document_ref: str | None = None
    ) -> None:
        """Record the patient's separate consent to remote monitoring (from now)."""
        _patient(self._session, patient_id)
        if self.monitoring_consented(patient_id, self._clock()):
            raise AlreadyExists("monitoring consent", patient_id)
        self._session.add(
            MonitoringConsent(
                patient_id=patient_id,
                granted_at=self._clock(),
                recorded_by=recorded_by,
                document_ref=document_ref,
                withdrawn_at=None,
                withdrawn_by=None,
            )
        )
        self._session.flush()

    def withdraw_monitoring_consent(self, patient_id: str, *, withdrawn_by: str) -> None:
        """The patient withdraws consent to monitoring (from now).

        Raises:
            NotFound: there is no consent in force.
        """
        rows = self._session.scalars(
            select(MonitoringConsent).where(
                MonitoringConsent.patient_id == patient_id,
                MonitoringConsent.withdrawn_at.is_(None),
            )
        ).all()
        if not rows:
            raise NotFound("monitoring consent", patient_id)
        for row in rows:
            row.withdrawn_at = self._clock()
            row.withdrawn_by = withdrawn_by

    def monitoring_consented(self, patient_id: str, at: datetime) -> bool:
        """The patient had consented to monitoring at ``at``."""
        moment = aware_utc(at, "at")
        return (
            self._session.scalars(
                select(MonitoringConsent.id).where(
                    MonitoringConsent.patient_id == patient_id,
                    MonitoringConsent.granted_at <= moment,
                    (MonitoringConsent.withdrawn_at.is_(None))
                    | (MonitoringConsent.withdrawn_at > moment),
                )
            ).first()
            is not None
        )

    def set_target(
        self,
        patient_id: str,
        metric: str,
        *,
        low: float | None,
        high: float | None,
        unit: str,
        set_by: str,
        reason: str,
        effective_from: datetime | None = None,
    ) -> TargetRecord:
        """Append a target effective from ``effective_from`` (default now).

        Raises:
            InvalidRegistryInput: no bound, bounds out of order, or no reason.
        """
        _patient(self._session, patient_id)
        if low is None and high is None:
            raise InvalidRegistryInput("low", "give a lower or an upper bound")
        if low is not None and high is not None and not low < high:
            raise InvalidRegistryInput("high", "must be above low")
        start = (
            aware_utc(effective_from, "effective_from")
            if effective_from is not None
            else self._clock()
        )
        row = PatientTarget(
            patient_id=patient_id,
            metric=metric,
            low=low,
            high=high,
            unit=unit,
            effective_from=start,
            set_by=set_by,
            reason=_check_reason(reason),
        )
        self._session.add(row)
        self._session.flush()
        return self._target(row)

    def target_at(self, patient_id: str, metric: str, at: datetime) -> TargetRecord | None:
        """The target of ``metric`` in force at ``at`` (``None``: never set by then)."""
        row = self._session.scalars(
            select(PatientTarget)
            .where(
                PatientTarget.patient_id == patient_id,
                PatientTarget.metric == metric,
                PatientTarget.effective_from <= aware_utc(at, "at"),
            )
            .order_by(PatientTarget.effective_from.desc(), PatientTarget.id.desc())
        ).first()
        return None if row is None else self._target(row)

    def set_status(
        self,
        patient_id: str,
        status: PatientStatus,
        *,
        reason: str,
        recorded_by: str,
        effective_from: datetime | None = None,
    ) -> StatusRecord:
        """Append a status change (hospitalised, deceased …) with its reason."""
        _patient(self._session, patient_id)
        start = (
            aware_utc(effective_from, "effective_from")
            if effective_from is not None
            else self._clock()
        )
        row = PatientStatusChange(
            patient_id=patient_id,
            status=status.value,
            reason=_check_reason(reason),
            effective_from=start,
            recorded_by=recorded_by,
        )
        self._session.add(row)
        self._session.flush()
        return self._status(row)

    def status_at(self, patient_id: str, at: datetime) -> StatusRecord:
        """The status in force at ``at``; ``active`` (reason ``enrolled``) before any change."""
        row = self._session.scalars(
            select(PatientStatusChange)
            .where(
                PatientStatusChange.patient_id == patient_id,
                PatientStatusChange.effective_from <= aware_utc(at, "at"),
            )
            .order_by(PatientStatusChange.effective_from.desc(), PatientStatusChange.id.desc())
        ).first()
        if row is None:
            patient = _patient(self._session, patient_id)
            return StatusRecord(
                patient_id=patient_id,
                status=PatientStatus.ACTIVE,
                reason="enrolled",
                effective_from=patient.created_at,
                recorded_by="registry",
            )
        return self._status(row)

    def grant_access(
        self,
        username: str,
        patient_id: str,
        *,
        kind: GrantKind,
        reason: str,
        ends_at: datetime,
    ) -> int:
        """Open time-limited access (break-glass, or paged by escalation); returns its id."""
        _patient(self._session, patient_id)
        account = _account(self._session, username)
        now = self._clock()
        end = aware_utc(ends_at, "ends_at")
        if end <= now:
            raise InvalidRegistryInput("ends_at", "must be in the future")
        row = AccessGrant(
            user_id=account.id,
            patient_id=patient_id,
            kind=kind.value,
            reason=_check_reason(reason),
            starts_at=now,
            ends_at=end,
            revoked_at=None,
        )
        self._session.add(row)
        self._session.flush()
        return row.id

    @staticmethod
    def _target(row: PatientTarget) -> TargetRecord:
        return TargetRecord(
            patient_id=row.patient_id,
            metric=row.metric,
            low=row.low,
            high=row.high,
            unit=row.unit,
            effective_from=row.effective_from,
            set_by=row.set_by,
            reason=row.reason,
        )

    @staticmethod
    def _status(row: PatientStatusChange) -> StatusRecord:
        return StatusRecord(
            patient_id=row.patient_id,
            status=PatientStatus(row.status),
            reason=row.reason,
            effective_from=row.effective_from,
            recorded_by=row.recorded_by,
        )
