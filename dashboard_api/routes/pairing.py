"""Pairing through the API: open a pairing window on the patient's gateway, unpair a device.

``POST /patients/{patient_id}/devices/pair`` records a pairing request
(:meth:`registry.fleet.FleetRepository.open_pairing`), then publishes ``cmd/pair``
(:class:`readings.codec.PairCommand`) to the gateway. The gateway pairs what it hears in
the window and reports each device in a ``paired`` event; the fleet listener binds the
device to the patient because this request is open, and resolves it. The route answers at
once (``pending``, 202) or waits up to ``wait_seconds`` for the result (200). The result
stays readable at ``GET …/devices/pairing-requests``.

``POST …/devices/{device_id}/unpair`` closes the registry binding first (from then on ingest
quarantines the device's readings for this patient), then tells the gateway
(:class:`readings.codec.UnpairCommand`).

Who may: :data:`dashboard_api.authz.Action.PAIR_DEVICE` — the patient, family acting for the
patient, the team's doctors, nurses and lead. A patient or family member may open windows
only on a gateway that already serves the patient; team staff may also start a new kit on a
gateway that serves nobody they cannot see. Every request is audited by the gate, and each
change once more with the ids it touched.
"""

from __future__ import annotations

import time
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard_api.authz import Action, Verdict, decide
from dashboard_api.commands import CommandNotSent
from dashboard_api.config import API_PREFIX
from dashboard_api.context import ApiContext
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.schemas import PairingRequestPublic, PairRequestCreate, UnpairedPublic
from readings.codec import PairCommand, UnpairCommand, encode_message
from readings.topics import Command, command_topic
from registry.access import Relationship, access_facts
from registry.audit import AuditOutcome
from registry.errors import InvalidRegistryInput, NotFound
from registry.fleet import FleetRepository, PairingRequest, PairingState
from registry.models import DevicePairing, Gateway
from registry.repositories import DeviceRepository

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["pairing"])

PairDevice = Annotated[PatientGrant, Depends(patient_access(Action.PAIR_DEVICE))]
ReadDevices = Annotated[PatientGrant, Depends(patient_access(Action.READ_DEVICES))]

POLL_SECONDS: Final = 0.2
"""How often a waiting pair request looks at the registry for the listener's result."""
_STAFF_BASES: Final = frozenset(
    {Relationship.TEAM_DOCTOR, Relationship.TEAM_NURSE, Relationship.TEAM_LEAD}
)


def _public(request: PairingRequest) -> PairingRequestPublic:
    return PairingRequestPublic(
        request_id=request.id,
        gateway_id=request.gateway_id,
        state=request.state.value,
        window_seconds=request.window_seconds,
        requested_at=request.requested_at,
        expires_at=request.expires_at,
        device_id=request.device_id,
        outcome=request.outcome,
    )


def _serving(session: Session, gateway_id: str) -> set[str]:
    """Patients the gateway serves now (current pairings)."""
    return set(
        session.scalars(
            select(DevicePairing.patient_id).where(
                DevicePairing.gateway_id == gateway_id, DevicePairing.valid_to.is_(None)
            )
        ).all()
    )


def _choose_gateway(
    session: Session, grant: PatientGrant, context: ApiContext, named: str | None
) -> str:
    own = set(
        session.scalars(
            select(DevicePairing.gateway_id).where(
                DevicePairing.patient_id == grant.patient_id, DevicePairing.valid_to.is_(None)
            )
        ).all()
    )
    if named is None:
        if len(own) != 1:
            raise HTTPException(
                422, detail="name the gateway: the patient's devices use none or several"
            )
        return next(iter(own))
    gateway = session.get(Gateway, named)
    if gateway is None or not gateway.active:
        raise HTTPException(422, detail="no such active gateway")
    if named in own:
        return named
    if grant.basis not in _STAFF_BASES:
        raise HTTPException(422, detail="that gateway does not serve this patient")
    now = context.clock()
    for other in _serving(session, named):
        facts = access_facts(session, grant.caller.actor, other, now)
        if decide(facts, Action.PAIR_DEVICE).verdict is not Verdict.ALLOW:
            # A gateway in the home of someone the caller does not care for.
            raise HTTPException(422, detail="that gateway does not serve this patient")
    return named


@router.post(
    "/{patient_id}/devices/pair",
    response_model=PairingRequestPublic,
    status_code=status.HTTP_202_ACCEPTED,
)
def pair_device(
    body: PairRequestCreate, grant: PairDevice, context: ContextDep, response: Response
) -> PairingRequestPublic:
    """Open a pairing window on the patient's gateway; pending, or the result if it came."""
    if context.commands is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no broker connected")
    try:
        with context.write() as session:
            gateway_id = _choose_gateway(session, grant, context, body.gateway_id)
            request = FleetRepository(session, clock=context.clock).open_pairing(
                grant.patient_id,
                gateway_id,
                requested_by=grant.caller.actor.username,
                window_seconds=body.window_seconds,
                profile=body.profile,
            )
    except (InvalidRegistryInput, NotFound) as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    command = PairCommand(
        patient_id=grant.patient_id, window_seconds=body.window_seconds, profile=body.profile
    )
    sent = True
    try:
        context.commands.publish(command_topic(gateway_id, Command.PAIR), encode_message(command))
    except CommandNotSent:
        sent = False
    context.audit(
        actor=grant.caller.actor.username,
        actor_role=grant.basis.value,
        action="device.pair_requested",
        target=f"gateway:{gateway_id}",
        outcome=AuditOutcome.OK if sent else AuditOutcome.REJECTED,
        patient_ids=[grant.patient_id],
        detail={"request_id": request.id, "window_seconds": body.window_seconds, "sent": int(sent)},
    )
    if not sent:
        with context.write() as session:
            FleetRepository(session, clock=context.clock).fail_pairing(
                request.id, "the broker did not take the command"
            )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the broker did not take the command"
        )
    deadline = time.monotonic() + body.wait_seconds
    while request.state is PairingState.PENDING and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        with context.read() as session:
            request = FleetRepository(session, clock=context.clock).pairing_request(request.id)
    if request.state is not PairingState.PENDING:
        response.status_code = status.HTTP_200_OK
    return _public(request)


@router.get("/{patient_id}/devices/pairing-requests", response_model=list[PairingRequestPublic])
def list_pairing_requests(grant: ReadDevices, context: ContextDep) -> list[PairingRequestPublic]:
    """The patient's newest pairing windows and how each ended, newest first."""
    with context.read() as session:
        requests = FleetRepository(session, clock=context.clock).pairing_requests(grant.patient_id)
    return [_public(request) for request in requests]


@router.post("/{patient_id}/devices/{device_id}/unpair", response_model=UnpairedPublic)
def unpair_device(device_id: str, grant: PairDevice, context: ContextDep) -> UnpairedPublic:
    """End the device's binding to the patient and tell its gateway to forget it."""
    with context.write() as session:
        devices = DeviceRepository(session, clock=context.clock)
        current = devices.current_pairing(device_id)
        if current is None or current.patient_id != grant.patient_id:
            # Another patient's device answers like an unknown one.
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="device not found")
        try:
            closed = devices.unbind(device_id)
        except InvalidRegistryInput as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=exc.problem) from exc
    sent = True
    if context.commands is None:
        sent = False
    else:
        try:
            context.commands.publish(
                command_topic(closed.gateway_id, Command.UNPAIR),
                encode_message(UnpairCommand(device_id=device_id)),
            )
        except CommandNotSent:
            sent = False
    context.audit(
        actor=grant.caller.actor.username,
        actor_role=grant.basis.value,
        action="device.unpaired",
        target=f"device:{device_id}",
        outcome=AuditOutcome.OK,
        patient_ids=[grant.patient_id],
        detail={"gateway_id": closed.gateway_id, "command_sent": int(sent)},
    )
    assert closed.valid_to is not None
    return UnpairedPublic(
        device_id=device_id,
        gateway_id=closed.gateway_id,
        valid_to=closed.valid_to,
        command_sent=sent,
    )
