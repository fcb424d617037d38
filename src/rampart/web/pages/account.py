"""Account pages: sign-up, email confirmation, sign-in, forgotten and reset password, and the
security page (sessions, devices, sign out everywhere, change password or email address; the
last two ask for a fresh second factor through `/security/step-up` when the user has one, and
ending other sessions needs a recent sign-in or step-up, `rampart.identity.reauth`).

Forms shown before sign-in carry a double-submit CSRF token (cookie + hidden field); forms of a
signed-in user carry the session's CSRF token, which `SessionAuthenticator` checks. The public
forms accept either (`check_public_form_csrf`): a signed-in person opens confirmation and reset
links too, and the page rendered for them carries the session's token.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rampart.access.api import authenticate
from rampart.access.domain import MfaEnrolmentRequiredError, Principal, StepUpRequiredError
from rampart.identity import flows
from rampart.identity.authn import (
    DEVICE_COOKIE,
    SESSION_COOKIE,
    end_browser_session,
    previous_session,
)
from rampart.identity.domain import (
    InvalidCredentialsError,
    InvalidEmailError,
    InvalidLinkError,
    LoginThrottledError,
    PasswordChangeNotRequiredError,
    PasswordChangeRequiredError,
    WeakPasswordError,
    new_token,
    normalise_email,
)
from rampart.identity.mfa.domain import SensitiveAction
from rampart.identity.reauth import ReauthenticationRequiredError
from rampart.identity.sessions import KIND_BROWSER, ClientInfo
from rampart.kernel.context import current_context
from rampart.kernel.errors import UnauthorizedError
from rampart.platform.http.access import declare_access, public
from rampart.platform.http.inputs import Id
from rampart.platform.http.inputs import Text as Line
from rampart.platform.security_events import RATE_LIMITED, log_security_event
from rampart.ratelimit.api import rate_limit
from rampart.web.pages.templating import check_public_form_csrf, render, set_cookie

router = APIRouter(include_in_schema=False)
Public = [Depends(public)]

PENDING_COOKIE = "__Host-rampart_pending"
DEVICE_COOKIE_DAYS = 400

Text = Annotated[Line, Form(max_length=4096)]
Csrf = Annotated[Line, Form(max_length=128)]


class SignInRequired(Exception):
    """A page that needs a signed-in user was asked for without one: go to the sign-in page."""


async def page_user(request: Request) -> Principal:
    try:
        principal = await authenticate(request)
    except UnauthorizedError:
        raise SignInRequired from None
    if principal.method == "apikey":
        # The pages are the person's; a bot's key (whatever its scope) signs in to none of them.
        raise SignInRequired
    return principal


declare_access(page_user, "authenticated")
User = Annotated[Principal, Depends(page_user)]


def _policy_context(request: Request) -> dict[str, Any]:
    cfg = request.app.state.container.settings.identity
    return {"min_length": cfg.password_min_length, "max_length": cfg.password_max_length}


def _container(request: Request) -> Any:
    return request.app.state.container


# --- sign-up and confirmation ---------------------------------------------------------------
@router.get("/signup", response_class=HTMLResponse, dependencies=Public)
async def signup_page(request: Request) -> HTMLResponse:
    return render(request, "signup.html", {"email": "", **_policy_context(request)})


@router.post(
    "/signup",
    response_class=HTMLResponse,
    dependencies=[*Public, Depends(rate_limit("ip.signup"))],
)
async def signup(
    request: Request, email: Text, password: Text, csrf_token: Csrf = ""
) -> HTMLResponse:
    check_public_form_csrf(request, csrf_token)
    try:
        await flows.register(_container(request), email, password)
    except (WeakPasswordError, InvalidEmailError) as exc:
        problems = exc.extra.get("problems") or [exc.detail]
        return render(
            request,
            "signup.html",
            {"email": email, "errors": problems, **_policy_context(request)},
            status=422,
        )
    return render(
        request,
        "message.html",
        {
            "heading": "Check your email",
            "message": "If the address can be used, a confirmation link is on its way to it.",
            "next_href": "/login",
            "next_label": "Sign in",
        },
    )


# --- links from emails -------------------------------------------------------------------------
#: Holds a link's token between its landing and the form's post (HttpOnly, `__Host-`), so that
#: the token leaves the address bar at once: an address is kept in the history, sent in
#: `Referer`, written to proxy and server logs, and synced across devices. SameSite lax, not
#: strict: a link clicked in a webmail is a cross-site navigation, and the page it redirects to
#: must still see the cookie (a lax cookie never rides a cross-site POST).
LINK_COOKIE = "__Host-rampart_link"
LINK_COOKIE_SECONDS = 15 * 60


def _land_link(path: str, token: str) -> Response | None:
    """The answer to a link's first landing (`?token=` in the address): keep the token in a
    short-lived cookie and go to the same page without it. None when there is no token."""
    if not token:
        return None
    response = RedirectResponse(path, status_code=303)
    response.set_cookie(
        LINK_COOKIE,
        token[:128],
        max_age=LINK_COOKIE_SECONDS,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def land_link(path: str, token: str) -> Response | None:
    """`_land_link` for the other pages reached from a link (the staff enrolment page)."""
    return _land_link(path, token)


def landed_link(request: Request) -> str:
    """The token the last link landing kept, or ""."""
    return request.cookies.get(LINK_COOKIE, "")[:128]


def _link_token(request: Request, posted: str) -> str:
    """The token a link form acts on: the one its landing kept in the cookie (a token posted in
    the body, never in an address, is accepted too: scripted clients keep working)."""
    return posted or landed_link(request)


def _forget_link(response: Response) -> Response:
    response.delete_cookie(LINK_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.get("/verify-email", response_class=HTMLResponse, dependencies=Public)
async def verify_email_page(request: Request, token: str = "") -> Response:
    landed = _land_link("/verify-email", token)
    if landed is not None:
        return landed
    return render(request, "verify_email.html", {"link": True})


@router.post("/verify-email", response_class=HTMLResponse, dependencies=Public)
async def verify_email(request: Request, token: Csrf = "", csrf_token: Csrf = "") -> Response:
    check_public_form_csrf(request, csrf_token)
    container = _container(request)
    link = _link_token(request, token)
    try:
        if not link:
            raise InvalidLinkError
        await flows.in_transaction(
            container, lambda uow: container.identity.accounts.verify_email(uow, link)
        )
    except InvalidLinkError as exc:
        return _forget_link(
            render(
                request, "verify_email.html", {"link": False, "errors": [exc.detail]}, status=422
            )
        )
    return _forget_link(
        render(
            request,
            "message.html",
            {
                "heading": "Email confirmed",
                "message": "Your email address is confirmed.",
                "next_href": "/security",
                "next_label": "Go to your security page",
            },
        )
    )


# --- sign-in and out -------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse, dependencies=Public)
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", {"email": ""})


@router.post("/login", dependencies=[*Public, Depends(rate_limit("ip.login"))])
async def login(request: Request, email: Text, password: Text, csrf_token: Csrf = "") -> Response:
    check_public_form_csrf(request, csrf_token)
    container = _container(request)
    device = request.cookies.get(DEVICE_COOKIE)
    new_device_cookie = None
    if not device or len(device) > 128:
        device = new_device_cookie = new_token()
    ctx = current_context()
    client = ClientInfo(
        device_key=device,
        user_agent=ctx.user_agent,
        ip=ctx.client_ip,
        previous_session=previous_session(request),
    )
    try:
        outcome = await flows.login_with_password(container, email, password, KIND_BROWSER, client)
    except InvalidCredentialsError as exc:
        return render(request, "login.html", {"email": email, "errors": [exc.title]}, status=401)
    except PasswordChangeRequiredError as exc:
        return _password_change_page(request, email, [exc.detail], status=403)
    except LoginThrottledError as exc:
        # The page answers this refusal itself, so it is logged here as the handler would.
        log_security_event(RATE_LIMITED, path=request.url.path, status=429, code=exc.code)
        refused = render(
            request,
            "login.html",
            {"email": email, "errors": [f"{exc.title} (about {int(exc.retry_after) + 1} s)."]},
            status=429,
        )
        refused.headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return refused
    response: Response
    if outcome.pending is not None:
        # The MFA pages finish this sign-in; the pending token stays in an HttpOnly cookie.
        response = RedirectResponse("/login/second-factor", status_code=303)
        set_cookie(
            response,
            PENDING_COOKIE,
            outcome.pending.token,
            max_age=container.settings.identity.pending_login_minutes * 60,
        )
    else:
        assert outcome.issued is not None
        assert outcome.issued.session_secret is not None
        response = RedirectResponse("/security", status_code=303)
        apply_browser_session(response, container, outcome.issued.session_secret)
    if new_device_cookie:
        set_cookie(response, DEVICE_COOKIE, new_device_cookie, max_age=DEVICE_COOKIE_DAYS * 86_400)
    return response


def _password_change_page(
    request: Request, email: str, errors: list[str], *, status: int
) -> HTMLResponse:
    return render(
        request,
        "password_change_required.html",
        {"email": email, "errors": errors, **_policy_context(request)},
        status=status,
    )


@router.post(
    "/login/password-change",
    response_class=HTMLResponse,
    dependencies=[*Public, Depends(rate_limit("ip.login"))],
)
async def replace_operator_password(
    request: Request,
    email: Text,
    current_password: Text,
    new_password: Text,
    csrf_token: Csrf = "",
) -> HTMLResponse:
    """An operator-set password is replaced by the owner's own before any sign-in."""
    check_public_form_csrf(request, csrf_token)
    try:
        await flows.replace_operator_password(
            _container(request), email, current_password, new_password, current_context().client_ip
        )
    except WeakPasswordError as exc:
        problems = exc.extra.get("problems") or [exc.detail]
        return _password_change_page(request, email, problems, status=422)
    except (InvalidCredentialsError, PasswordChangeNotRequiredError) as exc:
        return _password_change_page(request, email, [exc.title], status=_status_of(exc))
    return render(
        request,
        "message.html",
        {
            "heading": "Password changed",
            "message": "Your own password is set. Sign in with it now.",
            "next_href": "/login",
            "next_label": "Sign in",
        },
    )


def _status_of(exc: Exception) -> int:
    return 401 if isinstance(exc, InvalidCredentialsError) else 403


def apply_browser_session(response: Response, container: Any, secret: str) -> None:
    """Set the session cookie of a completed browser sign-in (also used by the MFA pages)."""
    set_cookie(
        response,
        SESSION_COOKIE,
        secret,
        max_age=container.settings.identity.session_absolute_hours * 3600,
    )


@router.post("/logout")
async def logout(request: Request, me: User) -> Response:
    container = _container(request)
    user_id, session_id = me.user_id or "", me.credential_id
    await flows.in_transaction(
        container,
        lambda uow: container.identity.login.logout(uow, user_id, session_id, everywhere=False),
    )
    response = RedirectResponse("/login", status_code=303)
    end_browser_session(response)
    return response


# --- passwords -------------------------------------------------------------------------------
@router.get("/forgot-password", response_class=HTMLResponse, dependencies=Public)
async def forgot_page(request: Request) -> HTMLResponse:
    return render(request, "forgot_password.html")


@router.post(
    "/forgot-password",
    response_class=HTMLResponse,
    dependencies=[*Public, Depends(rate_limit("ip.password-reset"))],
)
async def forgot(request: Request, email: Text, csrf_token: Csrf = "") -> HTMLResponse:
    check_public_form_csrf(request, csrf_token)
    container = _container(request)
    try:
        address = normalise_email(email)
    except InvalidEmailError:
        address = None
    if address is not None:
        target = address
        await flows.in_transaction(
            container, lambda uow: container.identity.accounts.forgot_password(uow, target)
        )
    return render(
        request,
        "message.html",
        {
            "heading": "Check your email",
            "message": "If the address has an account, a link to reset the password is on its way.",
            "next_href": "/login",
            "next_label": "Sign in",
        },
    )


@router.get("/reset-password", response_class=HTMLResponse, dependencies=Public)
async def reset_page(request: Request, token: str = "") -> Response:
    landed = _land_link("/reset-password", token)
    if landed is not None:
        return landed
    return render(request, "reset_password.html", {"link": True, **_policy_context(request)})


@router.post(
    "/reset-password",
    response_class=HTMLResponse,
    dependencies=[*Public, Depends(rate_limit("ip.password-reset"))],
)
async def reset(
    request: Request, password: Text, token: Csrf = "", csrf_token: Csrf = ""
) -> Response:
    check_public_form_csrf(request, csrf_token)
    link = _link_token(request, token)
    try:
        if not link:
            raise InvalidLinkError
        await flows.reset_password(_container(request), link, password)
    except WeakPasswordError as exc:
        problems = exc.extra.get("problems") or [exc.detail]
        return render(
            request,
            "reset_password.html",
            {"link": True, "errors": problems, **_policy_context(request)},
            status=422,
        )
    except InvalidLinkError as exc:
        return _forget_link(
            render(
                request,
                "reset_password.html",
                {"link": False, "errors": [exc.detail], **_policy_context(request)},
                status=422,
            )
        )
    return _forget_link(
        render(
            request,
            "message.html",
            {
                "heading": "Password changed",
                "message": "Your password is changed and every session was signed out.",
                "next_href": "/login",
                "next_label": "Sign in",
            },
        )
    )


# --- the security page -----------------------------------------------------------------------
async def _security(request: Request, me: Principal, **extra: Any) -> HTMLResponse:
    container = _container(request)
    user_id = me.user_id or ""

    def read() -> tuple[Any, Any, Any]:
        with container.db.read() as session:
            identity = container.identity
            return (
                identity.accounts.get(session, user_id),
                identity.sessions.list_sessions(session, user_id),
                identity.sessions.list_devices(session, user_id),
            )

    user, sessions, devices = await run_in_threadpool(read)
    status = extra.pop("status", 200)
    return render(
        request,
        "security.html",
        {
            "user": user,
            "sessions": sessions,
            "devices": devices,
            "current_session": me.credential_id,
            "reauthentication_minutes": container.settings.identity.reauthentication_minutes,
            **_policy_context(request),
            **extra,
        },
        status=status,
    )


@router.get("/security", response_class=HTMLResponse)
async def security_page(request: Request, me: User) -> HTMLResponse:
    return await _security(request, me)


async def _not_recently_authenticated(request: Request, me: Principal) -> Response | None:
    """None when `me` may end other sessions now (`rampart.identity.reauth`); otherwise where
    to go first: the step-up page (a second factor), or this page saying to sign in again."""
    try:
        await flows.require_recent_authentication(_container(request), me)
    except StepUpRequiredError:
        return _to_step_up("sessions")
    except ReauthenticationRequiredError as exc:
        return await _security(request, me, errors=[exc.detail], status=401)
    return None


@router.post("/security/sessions/{session_id:id}/revoke")
async def revoke_session(session_id: Id, request: Request, me: User) -> Response:
    container = _container(request)
    user_id = me.user_id or ""
    if session_id != me.credential_id and (
        refused := await _not_recently_authenticated(request, me)
    ):
        return refused
    await flows.in_transaction(
        container,
        lambda uow: container.identity.sessions.revoke(
            uow, user_id, session_id, reason="revoked-by-user"
        ),
    )
    return RedirectResponse("/security", status_code=303)


@router.post("/security/sessions/end-others")
async def end_other_sessions(request: Request, me: User) -> Response:
    if refused := await _not_recently_authenticated(request, me):
        return refused
    container = _container(request)
    user_id = me.user_id or ""
    await flows.in_transaction(
        container,
        lambda uow: container.identity.sessions.revoke_all(
            uow, user_id, reason="ended-by-user", keep_session_id=me.credential_id, not_before=False
        ),
    )
    return RedirectResponse("/security", status_code=303)


@router.post("/security/devices/{device_id:id}/revoke")
async def revoke_device(device_id: Id, request: Request, me: User) -> Response:
    if refused := await _not_recently_authenticated(request, me):
        return refused
    container = _container(request)
    user_id = me.user_id or ""
    await flows.in_transaction(
        container,
        lambda uow: container.identity.sessions.revoke_device(uow, user_id, device_id),
    )
    return RedirectResponse("/security", status_code=303)


@router.post("/security/logout-everywhere")
async def logout_everywhere(request: Request, me: User) -> Response:
    if refused := await _not_recently_authenticated(request, me):
        return refused
    container = _container(request)
    user_id = me.user_id or ""
    await flows.in_transaction(
        container,
        lambda uow: container.identity.login.logout(uow, user_id, None, everywhere=True),
    )
    response = RedirectResponse("/login", status_code=303)
    end_browser_session(response)
    return response


async def _stepped_up(request: Request, me: Principal, action: SensitiveAction) -> bool:
    """Whether `me` may do `action` now; False when a second factor must be passed first (the
    caller sends the user to the step-up page, which brings them back here)."""
    container = _container(request)

    def check() -> None:
        with container.db.read() as session:
            container.mfa.require_step_up(session, me, action)

    try:
        await run_in_threadpool(check)
    except (StepUpRequiredError, MfaEnrolmentRequiredError):
        return False
    return True


def _to_step_up(section: str) -> Response:
    return RedirectResponse(
        f"/security/step-up?next={quote('/security#' + section)}", status_code=303
    )


@router.post("/security/password", response_class=HTMLResponse)
async def change_password(
    request: Request, me: User, current_password: Text, new_password: Text
) -> Response:
    # Checked before the password: a stolen session learns nothing about it without the factor.
    if not await _stepped_up(request, me, SensitiveAction.PASSWORD_CHANGE):
        return _to_step_up("password")
    try:
        await flows.change_password(
            _container(request),
            me.user_id or "",
            current_password,
            new_password,
            keep_session_id=me.credential_id,
        )
    except (WeakPasswordError, InvalidCredentialsError) as exc:
        problems = exc.extra.get("problems") or [exc.detail]
        return await _security(request, me, errors=problems, status=422)
    return await _security(request, me, notice="Your password is changed.")


@router.post("/security/email", response_class=HTMLResponse)
async def change_email(request: Request, me: User, password: Text, new_email: Text) -> Response:
    if not await _stepped_up(request, me, SensitiveAction.EMAIL_CHANGE):
        return _to_step_up("email")
    try:
        await flows.change_email(_container(request), me.user_id or "", password, new_email)
    except (InvalidCredentialsError, InvalidEmailError) as exc:
        return await _security(request, me, errors=[exc.detail], status=422)
    return await _security(
        request, me, notice="Open the link we sent to the new address to complete the change."
    )


__all__ = ["SignInRequired", "apply_browser_session", "router"]
