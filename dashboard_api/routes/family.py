"""``POST /api/v1/patients/{patient_id}/family/invitations``: the patient invites a relative.

The patient gives a phone number, the relationship and the scopes; the registry finds or
creates the family account, links it and records the consent
(:func:`registry.family_invite.invite_family`), and the relative gets an SMS with a one-time
login link through the API's :class:`~dashboard_api.sms.SmsSender`. The answer is the same
whether the phone had an account before, and carries only the phone's last four digits.
Audited (``family.invite``): the gate's row, and one naming the scopes and whether the SMS
went; never the phone number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from dashboard_api.authz import Action
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.schemas import RequestModel
from dashboard_api.sms import SmsError
from registry.audit import AuditOutcome
from registry.care import parse_scopes
from registry.errors import InvalidRegistryInput, NotFound
from registry.family_invite import invite_family

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["care"])

ManageConsents = Annotated[PatientGrant, Depends(patient_access(Action.MANAGE_CONSENTS))]


class InvitationCreate(RequestModel):
    """Who to invite (a mainland mobile number), how they are related, what they may do."""

    phone: str = Field(min_length=11, max_length=20)
    relationship: str = Field(min_length=1, max_length=32)
    scopes: list[Literal["view_readings", "receive_alerts", "act_for_patient"]] = Field(
        min_length=1
    )


class InvitationPublic(BaseModel):
    """The invitation as recorded: never whether the phone had an account before."""

    phone_hint: str
    """The phone's last four digits, as the consent list shows it."""
    relationship: str
    scopes: list[str]
    granted_at: datetime
    sms_sent: bool
    """False when the SMS gateway refused: the consent stands, the relative can ask for a
    login link from the login page with the same phone."""


@router.post("/{patient_id}/family/invitations", response_model=InvitationPublic, status_code=201)
def invite(body: InvitationCreate, grant: ManageConsents, context: ContextDep) -> InvitationPublic:
    """Invite a relative by SMS: find or create their account, link it, record the consent."""
    actor = grant.caller.actor.username
    try:
        with context.write() as session:
            invitation = invite_family(
                session,
                grant.patient_id,
                body.phone,
                relationship=body.relationship,
                scopes=parse_scopes(body.scopes),
                granted_by=actor,
                clock=context.clock,
            )
            created = context.authenticator.create_login_link(session, invitation.phone)
    except InvalidRegistryInput as exc:
        # "phone: …" (not a mainland mobile, or not invitable), "relationship: …": in words.
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    except NotFound as exc:  # pragma: no cover - the gate found the patient a moment ago
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found") from exc
    sent = False
    if created is not None:
        link = f"{context.settings.public_url.rstrip('/')}/login/sms#{created[0]}"
        minutes = context.settings.login_link_minutes
        try:
            # No patient name in the SMS: the relative sees who invited them after login.
            context.sms.send(
                invitation.phone,
                f"【VitalGate】您的家人邀请您在 VitalGate 关注其居家健康监测。"
                f"登录链接（{minutes}分钟内有效，仅可使用一次）：{link} "
                f"A family member invited you to VitalGate. Login link, valid {minutes} min.",
            )
            sent = True
        except SmsError:
            sent = False
    context.audit(
        actor=actor,
        actor_role=grant.basis.value,
        action="family.invite",
        target="family_link",
        outcome=AuditOutcome.OK,
        patient_ids=[grant.patient_id],
        detail={
            "scopes": ",".join(sorted(s.value for s in invitation.consent.scopes)),
            "sms": "sent" if sent else "failed",
        },
    )
    return InvitationPublic(
        phone_hint=invitation.phone[-4:],
        relationship=invitation.consent.relationship,
        scopes=sorted(s.value for s in invitation.consent.scopes),
        granted_at=invitation.consent.granted_at,
        sms_sent=sent,
    )
