"""Family-doctor teams, contracts and the on-call rota (rules: :mod:`registry.care`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.accounts import AccountRepository
from registry.care_lookup import (
    check_reason,
    find_account,
    find_patient,
    find_team,
)
from registry.care_models import (
    AccountKind,
    CareContract,
    CareTeam,
    DutyShift,
    Role,
    TeamMembership,
    TeamPosition,
    UserAccount,
    UserRole,
)
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import AlreadyExists, InvalidRegistryInput, NotFound


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
        team = find_team(self._session, code)
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
        team = find_team(self._session, code)
        account = find_account(self._session, username)
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
        find_patient(self._session, patient_id)
        team = find_team(self._session, team_code)
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
        row.end_reason = check_reason(reason)
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
        team = find_team(self._session, team_code)
        start, end = aware_utc(starts_at, "starts_at"), aware_utc(ends_at, "ends_at")
        if end <= start:
            raise InvalidRegistryInput("ends_at", "must be after starts_at")
        doctor_row = find_account(self._session, doctor)
        self._require_doctor(doctor_row)
        covered = None
        if covers is not None:
            covered = find_account(self._session, covers)
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
        team = find_team(self._session, team_code)
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
