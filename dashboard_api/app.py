"""The FastAPI application: routers under ``/api/v1``, security headers, the context.

``create_app`` takes everything from outside (settings, registry engine, reading store, clock,
SMS sender), so ``vitalgate serve`` and the tests build the same application.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine

from dashboard_api.alert_tail import POLL_SECONDS, AlertTail
from dashboard_api.commands import CommandPublisher
from dashboard_api.config import API_PREFIX, ApiSettings
from dashboard_api.context import ApiContext
from dashboard_api.live import LiveHub
from dashboard_api.routes import (
    admin,
    admin_accounts,
    alerts,
    audit,
    auth,
    calendar,
    care,
    family,
    gateways,
    inbox,
    manual_readings,
    pairing,
    patient_summary,
    patients,
    portal,
    quarantine,
    reports,
    stream,
    triage,
    visit_routes,
    visits,
)
from dashboard_api.schemas import ErrorBody
from dashboard_api.sms import SmsSender
from dashboard_api.web import mount_web
from ingest.stores.base import ReadingStore
from ingest.validate import DEFAULT_LIMITS, PlausibilityLimits

SECURITY_HEADERS: Final = {
    # Everything the pages load comes from this origin; no inline script, no framing.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Sent with every response. ``no-referrer`` because URLs carry patient ids."""


_ERROR: Final = {"model": ErrorBody}
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: {**_ERROR, "description": "The body is not readable (not UTF-8 JSON)"},
    401: {**_ERROR, "description": "No valid token (missing, expired, forged, revoked)"},
    403: {**_ERROR, "description": "Your patient or resource, but not this action"},
    404: {
        **_ERROR,
        "description": "Not found, or not yours (the same answer, so ids cannot be probed)",
    },
    422: {**_ERROR, "description": "The request is malformed or its values are out of range"},
    429: {**_ERROR, "description": "Too many attempts; retry later"},
    503: {
        **_ERROR,
        "description": "A part behind the API (reading store, live feed) is unavailable",
    },
}
"""Documented on every operation (the app's ``responses``), so a route added later is
covered too: any route may refuse a token, not find a patient, or lose its store."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: ApiSettings,
    *,
    registry: Engine,
    store: ReadingStore,
    sms: SmsSender,
    clock: Callable[[], datetime] = _utc_now,
    live: LiveHub | None = None,
    plausibility: PlausibilityLimits = DEFAULT_LIMITS,
    commands: CommandPublisher | None = None,
    alert_poll_seconds: float | None = POLL_SECONDS,
) -> FastAPI:
    """The API application over the given registry and reading store.

    With a ``live`` hub, the app tails the registry's alert events into it while it runs
    (every ``alert_poll_seconds``; ``None``: readings only), so open pages hear of new alerts.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tail = (
            AlertTail(registry, live, poll_seconds=alert_poll_seconds)
            if live is not None and alert_poll_seconds is not None
            else None
        )
        if tail is not None:
            tail.start()
        try:
            yield
        finally:
            if tail is not None:
                tail.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="VitalGate API",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.context = ApiContext(
        settings=settings,
        registry=registry,
        store=store,
        clock=clock,
        sms=sms,
        live=live,
        plausibility=plausibility,
        commands=commands,
    )
    for module in (
        auth,
        patients,
        patient_summary,
        care,
        family,
        portal,
        alerts,
        inbox,
        pairing,
        manual_readings,
        gateways,
        audit,
        stream,
        admin_accounts,
        admin,
        quarantine,
        reports,
        visits,
        visit_routes,
        calendar,
        triage,
    ):
        app.include_router(module.router)
    mount_web(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(API_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
