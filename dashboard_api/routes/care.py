"""``/api/v1/patients/{patient_id}/devices`` and ``…/consents``: devices, and who may see what.

Every route depends on :func:`dashboard_api.deps.patient_access`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import select

from dashboard_api.authz import Action
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.fleet_views import device_fleet, gateway_state
from dashboard_api.schemas import (
    ConsentCreate,
    ConsentPublic,
    ConsentRevoked,
    DevicePairingPublic,
)
from registry.care import FamilyRepository, parse_scopes
from registry.care_models import UserAccount
from registry.errors import InvalidRegistryInput, NotFound
from registry.fleet import FleetRepository
from registry.repositories import DeviceRepository

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["care"])

ReadDevices = Annotated[PatientGrant, Depends(patient_access(Action.READ_DEVICES))]
ManageConsents = Annotated[PatientGrant, Depends(patient_access(Action.MANAGE_CONSENTS))]


@router.get("/{patient_id}/devices", response_model=list[DevicePairingPublic])
def list_devices(grant: ReadDevices, context: ContextDep) -> list[DevicePairingPublic]:
    """The patient's devices and every pairing they had, newest first, with what the fleet
    knows: each device's battery and last error, and for current pairings the gateway's
    online/offline state and since when."""
    now = context.clock()
    with context.read() as session:
        rows = DeviceRepository(session).pairings_of_patient(grant.patient_id)
        fleet = FleetRepository(session)
        devices = fleet.device_statuses({device.id for _, device in rows})
        gateways = fleet.gateway_statuses(
            {pairing.gateway_id for pairing, _ in rows if pairing.is_current}
        )
    return [
        DevicePairingPublic(
            device_id=device.id,
            manufacturer=device.manufacturer,
            model=device.model,
            serial=device.serial,
            profile=device.profile,
            gateway_id=pairing.gateway_id,
            valid_from=pairing.valid_from,
            valid_to=pairing.valid_to,
            current=pairing.is_current,
            status=device_fleet(devices.get(device.id)),
            gateway=gateway_state(gateways.get(pairing.gateway_id), now)
            if pairing.is_current
            else None,
        )
        for pairing, device in rows
    ]


def _consents(context: ContextDep, patient_id: str) -> list[ConsentPublic]:
    now = context.clock()
    with context.read() as session:
        records = FamilyRepository(session, clock=context.clock).consents(patient_id)
        rows = session.execute(
            select(UserAccount.username, UserAccount.phone).where(
                UserAccount.username.in_({r.family_username for r in records})
            )
        )
        phones: dict[str, str | None] = {username: phone for username, phone in rows}  # noqa: C416
    return [
        ConsentPublic(
            username=record.family_username,
            relationship=record.relationship,
            phone_hint=phone[-4:] if (phone := phones.get(record.family_username)) else None,
            scopes=sorted(scope.value for scope in record.scopes),
            granted_at=record.granted_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            in_force=record.in_force(now),
        )
        for record in records
    ]


@router.get("/{patient_id}/consents", response_model=list[ConsentPublic])
def list_consents(grant: ManageConsents, context: ContextDep) -> list[ConsentPublic]:
    """Who can see what, and who could: every consent the patient gave, oldest first."""
    return _consents(context, grant.patient_id)


@router.post("/{patient_id}/consents", response_model=ConsentPublic, status_code=201)
def grant_consent(body: ConsentCreate, grant: ManageConsents, context: ContextDep) -> ConsentPublic:
    """Give a linked family member access in the chosen scopes (replacing a consent in force)."""
    try:
        with context.write() as session:
            FamilyRepository(session, clock=context.clock).grant(
                grant.patient_id,
                body.username,
                parse_scopes(body.scopes),
                granted_by=grant.caller.actor.username,
                expires_at=body.expires_at,
            )
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such family member") from exc
    except InvalidRegistryInput as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return next(
        c for c in reversed(_consents(context, grant.patient_id)) if c.username == body.username
    )


@router.delete("/{patient_id}/consents/{username}", response_model=ConsentRevoked)
def revoke_consent(username: str, grant: ManageConsents, context: ContextDep) -> ConsentRevoked:
    """Revoke a family member's consent; their next request about the patient is refused."""
    try:
        with context.write() as session:
            count = FamilyRepository(session, clock=context.clock).revoke(
                grant.patient_id, username, revoked_by=grant.caller.actor.username
            )
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such family member") from exc
    return ConsentRevoked(revoked=count)
