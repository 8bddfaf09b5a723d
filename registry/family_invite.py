"""Inviting a family member by phone: find or create the family account, link it to the
patient and record the patient's consent, in the caller's transaction.

Whether the phone already had an account is never part of the answer (the inviter learns
only that the invitation was recorded), so inviting cannot be used to probe phone numbers.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.accounts import AccountRepository
from registry.care_lookup import find_patient
from registry.care_models import AccountKind, ConsentScope, FamilyLink, UserAccount
from registry.clock import Clock, utc_now
from registry.errors import InvalidRegistryInput
from registry.family import ConsentRecord, FamilyRepository

MAINLAND_MOBILE: Final = re.compile(r"^1[3-9]\d{9}$")
"""A mainland China mobile number: 11 digits, 1 then 3–9 (MIIT numbering plan); the SMS
gateways of community health centres deliver only to these."""


class PhoneNotInvitable(InvalidRegistryInput):
    """The phone belongs to an account that cannot be a family member (a patient, staff)."""


@dataclass(frozen=True, slots=True)
class Invitation:
    """What an invitation recorded: the family account (for the SMS) and the consent."""

    username: str
    phone: str
    consent: ConsentRecord


def check_mainland_mobile(phone: str) -> str:
    """``phone`` without spaces or dashes if it is a mainland mobile number.

    Raises:
        InvalidRegistryInput: not 11 digits starting with 13–19.
    """
    digits = re.sub(r"[\s-]", "", phone)
    if digits.startswith("+86"):
        digits = digits[3:]
    if not MAINLAND_MOBILE.fullmatch(digits):
        raise InvalidRegistryInput("phone", "a mainland mobile number: 11 digits starting with 1")
    return digits


def invite_family(
    session: Session,
    patient_id: str,
    phone: str,
    *,
    relationship: str,
    scopes: Iterable[ConsentScope],
    granted_by: str,
    clock: Clock = utc_now,
) -> Invitation:
    """Find (or create) the family account of ``phone``, link it and record the consent.

    A consent already in force for the pair is replaced (the new scopes win).

    Raises:
        NotFound: no such patient.
        InvalidRegistryInput: a phone that is not a mainland mobile, a bad relationship, no
            scope.
        PhoneNotInvitable: the phone is a patient's or staff member's.
    """
    find_patient(session, patient_id)
    number = check_mainland_mobile(phone)
    accounts = session.scalars(select(UserAccount).where(UserAccount.phone == number)).all()
    if any(a.kind != AccountKind.FAMILY.value for a in accounts):
        # One phone, one passwordless login: a patient's phone cannot also be a relative's.
        raise PhoneNotInvitable("phone", "this number cannot be invited; ask your care team")
    family = FamilyRepository(session, clock=clock)
    account = next(iter(accounts), None)
    if account is None:
        username = f"family-{secrets.token_hex(5)}"
        AccountRepository(session, clock=clock).add(
            username, display_name=relationship.strip()[:32], kind=AccountKind.FAMILY, phone=number
        )
    else:
        username = account.username
    linked = session.scalars(
        select(FamilyLink.id)
        .join(UserAccount, UserAccount.id == FamilyLink.user_id)
        .where(FamilyLink.patient_id == patient_id, UserAccount.username == username)
    ).first()
    if linked is None:
        family.link(patient_id, username, relationship=relationship.strip())
    consent = family.grant(patient_id, username, scopes, granted_by=granted_by)
    return Invitation(username=username, phone=number, consent=consent)
