"""Family members and the consents patients give them (rules: :mod:`registry.care`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.care_lookup import (
    find_account,
    find_patient,
)
from registry.care_models import (
    AccountKind,
    ConsentScope,
    FamilyConsent,
    FamilyLink,
    UserAccount,
)
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import AlreadyExists, InvalidRegistryInput, NotFound


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
        find_patient(self._session, patient_id)
        account = find_account(self._session, username)
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
        account = find_account(self._session, username)
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
        account = find_account(self._session, username)
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
