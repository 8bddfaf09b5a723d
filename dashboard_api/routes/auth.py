"""``/api/v1/auth``: staff login (password + TOTP), SMS links, refresh, logout, me."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from dashboard_api.config import API_PREFIX
from dashboard_api.deps import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    REFRESH_COOKIE,
    CallerDep,
    ContextDep,
)
from dashboard_api.schemas import (
    Accepted,
    MePublic,
    RefreshRequest,
    SmsLinkRedeem,
    SmsLinkRequest,
    StaffLogin,
    TokenPublic,
)
from dashboard_api.security import InvalidCredentials, InvalidToken, IssuedSession
from dashboard_api.sms import SmsError
from registry.audit import AuditOutcome
from registry.care_models import UserAccount

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])

REFRESH_COOKIE_PATH = f"{API_PREFIX}/auth"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _record(
    context: ContextDep,
    request: Request,
    *,
    action: str,
    actor: str,
    target: str,
    outcome: AuditOutcome,
    **detail: str,
) -> None:
    """One audit row of a login step, with the client's address (no secret, no token)."""
    context.audit(
        actor=actor[:128],
        actor_role=None,
        action=action,
        target=target[:255],
        outcome=outcome,
        detail={"client": _client(request), **detail},
    )


def _deliver(response: Response, issued: IssuedSession, context: ContextDep) -> TokenPublic:
    secure = context.settings.secure_cookies
    max_age = int(context.settings.refresh_token_lifetime.total_seconds())
    response.set_cookie(
        ACCESS_COOKIE,
        issued.access_token,
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=int(context.settings.access_token_lifetime.total_seconds()),
        path="/",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        issued.refresh_token,
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=max_age,
        path=REFRESH_COOKIE_PATH,
    )
    # Readable by the page's script, which echoes it in X-CSRF-Token (double submit).
    response.set_cookie(
        CSRF_COOKIE,
        issued.csrf_token,
        httponly=False,
        secure=secure,
        samesite="strict",
        max_age=max_age,
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenPublic(
        access_token=issued.access_token,
        expires_at=issued.access_expires_at,
        refresh_token=issued.refresh_token,
        csrf_token=issued.csrf_token,
    )


def _throttle(request: Request, context: ContextDep) -> None:
    if not context.login_limiter.allow(_client(request)):
        _record(
            context,
            request,
            action="auth.throttled",
            actor="anonymous",
            target=request.url.path,
            outcome=AuditOutcome.DENIED,
        )
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many login attempts: wait a minute",
            headers={"Retry-After": "60"},
        )


@router.post("/login", response_model=TokenPublic)
def login(
    body: StaffLogin, request: Request, response: Response, context: ContextDep
) -> TokenPublic:
    """Staff login: username, password and TOTP code. Every failure answers the same 401."""
    _throttle(request, context)
    with context.write() as session:
        user_id = context.authenticator.login_staff(
            session, body.username, body.password, body.code
        )
        issued = context.authenticator.issue(session, user_id) if user_id is not None else None
    if issued is None:
        _record(
            context,
            request,
            action="auth.login",
            actor=body.username,
            target=body.username,
            outcome=AuditOutcome.DENIED,
        )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(InvalidCredentials()))
    _record(
        context,
        request,
        action="auth.login",
        actor=body.username,
        target=body.username,
        outcome=AuditOutcome.OK,
    )
    return _deliver(response, issued, context)


@router.post("/sms/request", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED)
def request_login_link(body: SmsLinkRequest, request: Request, context: ContextDep) -> Accepted:
    """Send a one-time login link by SMS; the answer is the same whether or not the phone
    belongs to an account."""
    _throttle(request, context)
    with context.write() as session:
        created = context.authenticator.create_login_link(session, body.phone)
        username = None
        if created is not None:
            account = session.get(UserAccount, created[1])
            username = account.username if account else None
    if created is not None and username is not None:
        link = f"{context.settings.public_url.rstrip('/')}/login/sms#{created[0]}"
        minutes = context.settings.login_link_minutes
        try:
            context.sms.send(
                body.phone,
                f"【VitalGate】登录链接（{minutes}分钟内有效，仅可使用一次）：{link} "
                f"Login link, valid {minutes} min, single use.",
            )
        except SmsError:
            # Said in the audit, not to the caller (the answer must not reveal the account).
            _record(
                context,
                request,
                action="auth.sms_link",
                actor=username,
                target=username,
                outcome=AuditOutcome.REJECTED,
                problem="sms",
            )
            return Accepted()
        _record(
            context,
            request,
            action="auth.sms_link",
            actor=username,
            target=username,
            outcome=AuditOutcome.OK,
        )
    return Accepted()


@router.post("/sms/verify", response_model=TokenPublic)
def redeem_login_link(
    body: SmsLinkRedeem, request: Request, response: Response, context: ContextDep
) -> TokenPublic:
    """Log in with the token of an SMS link (once)."""
    _throttle(request, context)
    try:
        with context.write() as session:
            user_id = context.authenticator.use_login_link(session, body.token)
            issued = context.authenticator.issue(session, user_id)
            account = session.get(UserAccount, user_id)
            username = account.username if account else str(user_id)
    except InvalidToken as exc:
        _record(
            context,
            request,
            action="auth.sms_login",
            actor="anonymous",
            target="login_link",
            outcome=AuditOutcome.DENIED,
        )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc)) from exc
    _record(
        context,
        request,
        action="auth.sms_login",
        actor=username,
        target=username,
        outcome=AuditOutcome.OK,
    )
    return _deliver(response, issued, context)


@router.post("/refresh", response_model=TokenPublic)
def refresh(
    body: RefreshRequest, request: Request, response: Response, context: ContextDep
) -> TokenPublic:
    """Exchange a refresh token (body or cookie) for a new session; a reused one ends it."""
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="no refresh token")
    with context.write() as session:
        issued = context.authenticator.rotate(session, token)
    if isinstance(issued, InvalidToken):
        _record(
            context,
            request,
            action="auth.refresh",
            actor="anonymous",
            target="refresh_token",
            outcome=AuditOutcome.DENIED,
            problem=issued.problem,
        )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(issued))
    return _deliver(response, issued, context)


@router.post("/logout", response_model=Accepted)
def logout(
    body: RefreshRequest, request: Request, response: Response, context: ContextDep
) -> Accepted:
    """End the login session of the refresh token (body or cookie) and clear the cookies."""
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if token:
        with context.write() as session:
            context.authenticator.revoke_family_of(session, token)
    for name, path in (
        (ACCESS_COOKIE, "/"),
        (CSRF_COOKIE, "/"),
        (REFRESH_COOKIE, REFRESH_COOKIE_PATH),
    ):
        response.delete_cookie(name, path=path)
    return Accepted()


@router.get("/me", response_model=MePublic)
def me(caller: CallerDep) -> MePublic:
    """The caller's account."""
    return MePublic(
        username=caller.actor.username,
        roles=sorted(role.value for role in caller.actor.roles),
        patient_id=caller.actor.patient_id,
    )
