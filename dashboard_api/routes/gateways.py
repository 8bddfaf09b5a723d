"""``/api/v1/gateways``: the fleet status of gateways, for those who may see them.

* IT operators and admins: every gateway and every device on it — no patient ids, no health
  data (a gateway's backlog, battery levels and error reasons are not health values).
* Everyone else: the gateways that currently serve a patient the caller may read devices of
  (:data:`dashboard_api.authz.Action.READ_DEVICES`), with only those patients' devices.
  Another gateway answers 404, exactly like one that does not exist.

Each request writes one audit row naming the patients whose gateways it showed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard_api.authz import Action, Verdict, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import CallerDep, ContextDep, route_template
from dashboard_api.fleet_views import gateway_public
from dashboard_api.schemas import (
    GatewayDetailPublic,
    GatewayEventPublic,
    GatewayPublic,
    GatewaysPublic,
)
from registry.access import Actor, access_facts, visible_patient_ids
from registry.audit import AuditOutcome
from registry.care_models import Role
from registry.fleet import FleetRepository
from registry.models import DevicePairing, Gateway
from registry.repositories import GatewayRepository

router = APIRouter(prefix=f"{API_PREFIX}/gateways", tags=["gateways"])

FLEET_ROLES: Final = frozenset({Role.IT_OPERATOR, Role.ADMIN})
"""Roles that see the whole fleet (gateways are their job; no health data is shown)."""
EVENTS_SHOWN: Final = 50


@dataclass(frozen=True, slots=True)
class FleetView:
    """What the caller may see: every gateway, or the gateways of some patients."""

    everything: bool
    devices_by_gateway: dict[str, set[str]]
    """For a partial view: gateway id → the device ids the caller may see on it."""
    patients_by_gateway: dict[str, set[str]]


def fleet_view(session: Session, actor: Actor, now: datetime) -> FleetView:
    """The gateways (and devices) ``actor`` may see at ``now``."""
    if not actor.roles.isdisjoint(FLEET_ROLES) and actor.active:
        return FleetView(True, {}, {})
    patients = {
        patient_id
        for patient_id in visible_patient_ids(session, actor, now)
        if decide(access_facts(session, actor, patient_id, now), Action.READ_DEVICES).verdict
        is Verdict.ALLOW
    }
    devices: dict[str, set[str]] = {}
    by_gateway: dict[str, set[str]] = {}
    if patients:
        rows = session.execute(
            select(DevicePairing.gateway_id, DevicePairing.device_id, DevicePairing.patient_id)
            .where(DevicePairing.valid_to.is_(None))
            .where(DevicePairing.patient_id.in_(sorted(patients)))
        ).all()
        for gateway_id, device_id, patient_id in rows:
            devices.setdefault(gateway_id, set()).add(device_id)
            by_gateway.setdefault(gateway_id, set()).add(patient_id)
    return FleetView(False, devices, by_gateway)


def _gateway(
    session: Session, view: FleetView, gateway_id: str, now: datetime
) -> GatewayPublic | None:
    row = session.get(Gateway, gateway_id)
    if row is None or not (view.everything or gateway_id in view.devices_by_gateway):
        return None
    fleet = FleetRepository(session)
    devices = fleet.devices_of_gateway(gateway_id)
    if not view.everything:
        devices = [d for d in devices if d.device_id in view.devices_by_gateway[gateway_id]]
    return gateway_public(
        GatewayRepository(session).get(gateway_id), fleet.gateway_status(gateway_id), devices, now
    )


@router.get("", response_model=GatewaysPublic)
def list_gateways(request: Request, caller: CallerDep, context: ContextDep) -> GatewaysPublic:
    """The gateways the caller may see, with their connection state and devices."""
    now = context.clock()
    with context.read() as session:
        view = fleet_view(session, caller.actor, now)
        ids = (
            session.scalars(select(Gateway.id).order_by(Gateway.id)).all()
            if view.everything
            else sorted(view.devices_by_gateway)
        )
        data = [g for g in (_gateway(session, view, i, now) for i in ids) if g is not None]
    template = route_template(request)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action=template,
        target=template,
        outcome=AuditOutcome.OK,
        patient_ids=sorted(set().union(*view.patients_by_gateway.values())),
        detail={"status": 200, "count": len(data), "fleet": int(view.everything)},
    )
    return GatewaysPublic(data=data, count=len(data))


@router.get("/{gateway_id}", response_model=GatewayDetailPublic)
def get_gateway(
    gateway_id: str, request: Request, caller: CallerDep, context: ContextDep
) -> GatewayDetailPublic:
    """One gateway's fleet status and newest events (404 if the caller may not see it)."""
    now = context.clock()
    with context.read() as session:
        view = fleet_view(session, caller.actor, now)
        found = _gateway(session, view, gateway_id, now)
        events = (
            FleetRepository(session).events(gateway_id, limit=EVENTS_SHOWN)
            if found is not None
            else []
        )
    template = route_template(request)
    patients = sorted(view.patients_by_gateway.get(gateway_id, set()))
    if found is None:
        context.audit(
            actor=caller.actor.username,
            actor_role=caller.primary_role,
            action=template,
            target=template,
            outcome=AuditOutcome.DENIED,
            detail={"status": 404, "gateway_id": gateway_id},
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="gateway not found")
    if not view.everything:
        visible = view.devices_by_gateway[gateway_id]
        events = [e for e in events if e.device_id is None or e.device_id in visible]
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action=template,
        target=template,
        outcome=AuditOutcome.OK,
        patient_ids=patients,
        detail={"status": 200, "gateway_id": gateway_id, "fleet": int(view.everything)},
    )
    return GatewayDetailPublic(
        **found.model_dump(),
        events=[
            GatewayEventPublic(
                at=e.at,
                received_at=e.received_at,
                event=e.event,
                device_id=e.device_id,
                # A paired event names the patient: shown to those who may see the patient.
                detail={
                    k: v for k, v in e.detail.items() if k != "patient_id" or not view.everything
                },
            )
            for e in events
        ],
    )
