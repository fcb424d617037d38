"""Identity over HTTP: sign-up, sign-in, tokens, sessions, devices and the JWKS.

Every route declares its access. Answers that could tell whether an address has an account
(sign-up, sign-in, forgotten password) are the same whether or not it has one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from rampart.access.api import authenticated
from rampart.access.domain import PermissionDeniedError, Principal
from rampart.identity import flows
from rampart.identity.authn import CLEAR_SITE_DATA, DEVICE_COOKIE, end_browser_session
from rampart.identity.domain import (
    InvalidRefreshTokenError,
    RefreshTokenReusedError,
    clean_device_id,
)
from rampart.identity.login import IssuedLogin, LoginOutcome
from rampart.identity.mfa.api import require_step_up
from rampart.identity.mfa.domain import SensitiveAction
from rampart.identity.sessions import KIND_API, ClientInfo
from rampart.kernel.context import current_context
from rampart.platform.http.access import declare_access, public
from rampart.platform.http.deps import get_container
from rampart.platform.http.inputs import Id, Text
from rampart.platform.http.problems import problem_responses
from rampart.ratelimit.api import rate_limit

router = APIRouter(tags=["identity"])

MAX_PASSWORD = 4096
MAX_EMAIL_INPUT = 320
MAX_TOKEN = 128


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterIn(_In):
    email: Text = Field(max_length=MAX_EMAIL_INPUT)
    password: Text = Field(max_length=MAX_PASSWORD, repr=False)


class TokenIn(_In):
    token: Text = Field(min_length=1, max_length=MAX_TOKEN, repr=False)


class LoginIn(_In):
    email: Text = Field(max_length=MAX_EMAIL_INPUT)
    password: Text = Field(max_length=MAX_PASSWORD, repr=False)
    #: A stable id the client keeps for this installation (8-128 of A-Z a-z 0-9 . _ : -).
    device_id: Text | None = Field(default=None, max_length=128)


class RefreshIn(_In):
    refresh_token: Text = Field(min_length=1, max_length=MAX_TOKEN, repr=False)


class LogoutIn(_In):
    everywhere: bool = False


class ForgotIn(_In):
    email: Text = Field(max_length=MAX_EMAIL_INPUT)


class ResetIn(_In):
    token: Text = Field(min_length=1, max_length=MAX_TOKEN, repr=False)
    password: Text = Field(max_length=MAX_PASSWORD, repr=False)


class ReplaceOperatorPasswordIn(_In):
    email: Text = Field(max_length=MAX_EMAIL_INPUT)
    current_password: Text = Field(max_length=MAX_PASSWORD, repr=False)
    new_password: Text = Field(max_length=MAX_PASSWORD, repr=False)


class ChangePasswordIn(_In):
    current_password: Text = Field(max_length=MAX_PASSWORD, repr=False)
    new_password: Text = Field(max_length=MAX_PASSWORD, repr=False)


class ChangeEmailIn(_In):
    password: Text = Field(max_length=MAX_PASSWORD, repr=False)
    new_email: Text = Field(max_length=MAX_EMAIL_INPUT)


class CloseIn(_In):
    password: Text = Field(max_length=MAX_PASSWORD, repr=False)


class Accepted(BaseModel):
    status: str
    detail: str


class TokensOut(BaseModel):
    status: str = "complete"
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime
    session_id: str


class SecondFactorOut(BaseModel):
    status: str = "second_factor_required"
    pending_login: str
    factors: list[str]
    expires_at: datetime


class MeOut(BaseModel):
    id: str
    email: str
    email_verified: bool
    roles: list[str]
    permissions: list[str]
    created_at: datetime


class SessionOut(BaseModel):
    id: str
    kind: str
    current: bool
    device_id: str | None
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class SessionsEnded(BaseModel):
    sessions: int


class DeviceOut(BaseModel):
    id: str
    user_agent: str | None
    last_ip: str | None
    created_at: datetime
    last_seen_at: datetime


Me = Annotated[Principal, Depends(authenticated())]


def _person() -> Any:
    """Any signed-in person (session or bearer token), never an API key.

    A key acts for a bot with the scopes it was given; managing the account's sign-ins (listing
    sessions and devices with their IPs, ending them, logging out everywhere, closing the
    account) is the person's alone, whatever the key's scope.
    """
    check = authenticated()

    async def dependency(request: HTTPConnection) -> Principal:
        principal: Principal = await check(request)
        if principal.method == "apikey":
            raise PermissionDeniedError("Sign in as yourself to manage your account.")
        return principal

    return declare_access(dependency, "authenticated")


Person = Annotated[Principal, Depends(_person())]
#: Changing the password or the address takes a fresh second factor from a user who has one: a
#: stolen session (or token) alone must not be enough to take the account over for good.
PasswordChanger = Annotated[
    Principal, Depends(require_step_up(None, SensitiveAction.PASSWORD_CHANGE))
]
EmailChanger = Annotated[Principal, Depends(require_step_up(None, SensitiveAction.EMAIL_CHANGE))]


def client_info(request: Request, device_id: str | None) -> ClientInfo:
    ctx = current_context()
    return ClientInfo(
        device_key=clean_device_id(device_id or request.cookies.get(DEVICE_COOKIE)),
        user_agent=ctx.user_agent,
        ip=ctx.client_ip,
    )


def _tokens_out(issued: IssuedLogin, now_epoch: float) -> TokensOut:
    assert issued.access_token
    assert issued.refresh_token
    assert issued.refresh_expires_at
    assert issued.access_expires_at is not None
    return TokensOut(
        access_token=issued.access_token,
        expires_in=int(issued.access_expires_at - now_epoch),
        refresh_token=issued.refresh_token,
        refresh_expires_at=issued.refresh_expires_at,
        session_id=issued.session_id,
    )


def _login_out(outcome: LoginOutcome, now_epoch: float) -> TokensOut | SecondFactorOut:
    if outcome.pending is not None:
        return SecondFactorOut(
            pending_login=outcome.pending.token,
            factors=outcome.pending.factors,
            expires_at=outcome.pending.expires_at,
        )
    assert outcome.issued is not None
    return _tokens_out(outcome.issued, now_epoch)


@router.post(
    "/v1/auth/register",
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(public), Depends(rate_limit("ip.signup"))],
)
async def register(body: RegisterIn, request: Request) -> Accepted:
    """Create an account; a link to confirm the address is emailed. Same answer for an address
    that has an account (its owner is told by email instead)."""
    await flows.register(get_container(request), body.email, body.password)
    return Accepted(
        status="verification_sent",
        detail="If the address can be used, a confirmation link is on its way to it.",
    )


@router.post("/v1/auth/verify-email", response_model=Accepted, dependencies=[Depends(public)])
async def verify_email(body: TokenIn, request: Request) -> Accepted:
    container = get_container(request)
    await flows.in_transaction(
        container, lambda uow: container.identity.accounts.verify_email(uow, body.token)
    )
    return Accepted(status="verified", detail="The email address is confirmed.")


@router.post("/v1/auth/verify-email/resend", status_code=202, response_model=Accepted)
async def resend_verification(request: Request, me: Person) -> Accepted:
    container = get_container(request)
    user_id = me.user_id or ""
    await flows.in_transaction(
        container, lambda uow: container.identity.accounts.resend_verification(uow, user_id)
    )
    return Accepted(status="verification_sent", detail="A new confirmation link is on its way.")


@router.post(
    "/v1/auth/login",
    response_model=TokensOut | SecondFactorOut,
    responses=problem_responses(401, 403),
    dependencies=[Depends(public), Depends(rate_limit("ip.login"))],
)
async def login(body: LoginIn, request: Request) -> TokensOut | SecondFactorOut:
    """Sign in a program: an access token (15 minutes) and a refresh token (24 hours), or, for
    an account with a second factor, a pending sign-in to complete with it."""
    container = get_container(request)
    outcome = await flows.login_with_password(
        container, body.email, body.password, KIND_API, client_info(request, body.device_id)
    )
    return _login_out(outcome, container.clock.time_ns() / 1e9)


@router.post(
    "/v1/auth/refresh",
    response_model=TokensOut,
    dependencies=[Depends(public)],
    responses=problem_responses(401),
)
async def refresh(body: RefreshIn, request: Request) -> TokensOut:
    """Exchange a refresh token for a new pair; each refresh token works once."""
    container = get_container(request)
    outcome = await flows.in_transaction(
        container, lambda uow: container.identity.login.refresh(uow, body.refresh_token)
    )
    if outcome.idle:
        raise InvalidRefreshTokenError("The session ended after a period of inactivity.")
    if outcome.reused or outcome.issued is None:
        raise RefreshTokenReusedError
    return _tokens_out(outcome.issued, container.clock.time_ns() / 1e9)


@router.post("/v1/auth/logout", status_code=204, responses=problem_responses(401))
async def logout(request: Request, me: Person, body: LogoutIn | None = None) -> Response:
    """End this session (its access tokens stop working at once), or every session: that
    takes a sign-in or second-factor step-up within `identity.reauthentication_minutes`
    (401 `step-up-required` or `reauthentication-required`)."""
    container = get_container(request)
    everywhere = bool(body and body.everywhere)
    if everywhere:
        await flows.require_recent_authentication(container, me)
    user_id = me.user_id or ""
    await flows.in_transaction(
        container,
        lambda uow: container.identity.login.logout(
            uow, user_id, me.credential_id, everywhere=everywhere
        ),
    )
    response = Response(status_code=204)
    if me.method == "session":
        end_browser_session(response)
    else:
        response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response


@router.post(
    "/v1/auth/password/forgot",
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(public), Depends(rate_limit("ip.password-reset"))],
)
async def forgot_password(body: ForgotIn, request: Request) -> Accepted:
    container = get_container(request)
    from rampart.identity.domain import InvalidEmailError, normalise_email

    try:
        email: str | None = normalise_email(body.email)
    except InvalidEmailError:
        email = None
    if email is not None:
        address = email
        await flows.in_transaction(
            container, lambda uow: container.identity.accounts.forgot_password(uow, address)
        )
    return Accepted(
        status="reset_sent",
        detail="If the address has an account, a link to reset the password is on its way.",
    )


@router.post(
    "/v1/auth/password/reset",
    response_model=Accepted,
    dependencies=[Depends(public), Depends(rate_limit("ip.password-reset"))],
)
async def reset_password(body: ResetIn, request: Request) -> Accepted:
    """Set a new password from a reset link. Every session and token of the account ends."""
    await flows.reset_password(get_container(request), body.token, body.password)
    return Accepted(status="password_reset", detail="The password is changed; sign in again.")


@router.post(
    "/v1/auth/password/change-required",
    response_model=Accepted,
    dependencies=[Depends(public), Depends(rate_limit("ip.login"))],
)
async def replace_operator_password(body: ReplaceOperatorPasswordIn, request: Request) -> Accepted:
    """An account whose password an operator set (sign-in answers `password-change-required`)
    chooses its own here, proving the one it was given; then it signs in as usual."""
    await flows.replace_operator_password(
        get_container(request),
        body.email,
        body.current_password,
        body.new_password,
        current_context().client_ip,
    )
    return Accepted(status="changed", detail="Your password is changed; sign in with it now.")


@router.get("/v1/me", response_model=MeOut)
async def me(request: Request, principal: Me) -> MeOut:
    container = get_container(request)
    user_id = principal.user_id or ""

    def read() -> Any:
        with container.db.read() as session:
            return container.identity.accounts.get(session, user_id)

    user = await run_in_threadpool(read)
    return MeOut(
        id=user.id,
        email=user.email,
        email_verified=user.email_verified,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        created_at=user.created_at,
    )


@router.post("/v1/me/password", status_code=204)
async def change_password(
    body: ChangePasswordIn, request: Request, me: PasswordChanger
) -> Response:
    """Change the password (the current one is required, and a second factor passed within
    `mfa.step_up_minutes` when the user has one: else 401 `step-up-required`); every other
    session ends."""
    await flows.change_password(
        get_container(request),
        me.user_id or "",
        body.current_password,
        body.new_password,
        keep_session_id=me.credential_id,
    )
    return Response(status_code=204)


@router.post("/v1/me/email", status_code=202, response_model=Accepted)
async def change_email(body: ChangeEmailIn, request: Request, me: EmailChanger) -> Accepted:
    """Ask to change the sign-in address; it changes once the link sent to it is opened. Needs
    the password, and a fresh second factor when the user has one (401 `step-up-required`)."""
    await flows.change_email(
        get_container(request), me.user_id or "", body.password, body.new_email
    )
    return Accepted(
        status="verification_sent",
        detail="Open the link sent to the new address to complete the change.",
    )


@router.post("/v1/me/close", status_code=204)
async def close_account(body: CloseIn, request: Request, me: Person) -> Response:
    """Close the account (the password is required). Every session and token ends."""
    await flows.close_account(get_container(request), me.user_id or "", body.password)
    return Response(status_code=204)


@router.get("/v1/me/sessions", response_model=list[SessionOut])
async def list_sessions(request: Request, me: Person) -> list[SessionOut]:
    container = get_container(request)
    user_id = me.user_id or ""

    def read() -> Any:
        with container.db.read() as session:
            return container.identity.sessions.list_sessions(session, user_id)

    return [
        SessionOut(
            id=s.id,
            kind=s.kind,
            current=s.id == me.credential_id,
            device_id=s.device_id,
            user_agent=s.user_agent,
            ip=s.ip,
            created_at=s.created_at,
            last_seen_at=s.last_seen_at,
            expires_at=s.expires_at,
        )
        for s in await run_in_threadpool(read)
    ]


@router.delete("/v1/me/sessions/{session_id:id}", status_code=204, responses=problem_responses(401))
async def revoke_session(session_id: Id, request: Request, me: Person) -> Response:
    """End one of your sessions; its tokens stop working at once. Another user's is 404.
    Ending another than the one in use takes a sign-in or second-factor step-up within
    `identity.reauthentication_minutes` (401 `step-up-required` or
    `reauthentication-required`)."""
    container = get_container(request)
    user_id = me.user_id or ""
    if session_id != me.credential_id:
        await flows.require_recent_authentication(container, me)
    await flows.in_transaction(
        container,
        lambda uow: container.identity.sessions.revoke(
            uow, user_id, session_id, reason="revoked-by-user"
        ),
    )
    return Response(status_code=204)


@router.post(
    "/v1/me/sessions/end-others", response_model=SessionsEnded, responses=problem_responses(401)
)
async def end_other_sessions(request: Request, me: Person) -> SessionsEnded:
    """End every session but the one in use (their tokens stop working at once). Takes a
    sign-in or second-factor step-up within `identity.reauthentication_minutes`."""
    container = get_container(request)
    await flows.require_recent_authentication(container, me)
    user_id = me.user_id or ""
    ended = await flows.in_transaction(
        container,
        lambda uow: container.identity.sessions.revoke_all(
            uow, user_id, reason="ended-by-user", keep_session_id=me.credential_id, not_before=False
        ),
    )
    return SessionsEnded(sessions=ended)


@router.get("/v1/me/devices", response_model=list[DeviceOut])
async def list_devices(request: Request, me: Person) -> list[DeviceOut]:
    container = get_container(request)
    user_id = me.user_id or ""

    def read() -> Any:
        with container.db.read() as session:
            return container.identity.sessions.list_devices(session, user_id)

    return [
        DeviceOut(
            id=d.id,
            user_agent=d.user_agent,
            last_ip=d.last_ip,
            created_at=d.created_at,
            last_seen_at=d.last_seen_at,
        )
        for d in await run_in_threadpool(read)
    ]


@router.delete("/v1/me/devices/{device_id:id}", status_code=204, responses=problem_responses(401))
async def revoke_device(device_id: Id, request: Request, me: Person) -> Response:
    """Forget a device and end its sessions; its next sign-in counts as a new device. Takes a
    sign-in or second-factor step-up within `identity.reauthentication_minutes`."""
    container = get_container(request)
    user_id = me.user_id or ""
    await flows.require_recent_authentication(container, me)
    await flows.in_transaction(
        container,
        lambda uow: container.identity.sessions.revoke_device(uow, user_id, device_id),
    )
    return Response(status_code=204)


@router.get(
    "/.well-known/jwks.json",
    dependencies=[Depends(public)],
    response_class=Response,
    responses={
        200: {
            "description": "A JSON Web Key Set (RFC 7517)",
            "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
        }
    },
)
async def jwks(request: Request) -> Response:
    """The public keys that verify access tokens (current and recently retired)."""
    import orjson

    keys = await run_in_threadpool(get_container(request).identity.keys.jwks)
    return Response(
        orjson.dumps(keys),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )
