"""Pages for second factors: management on the security page, enrolment, the sign-in challenge
and the step-up prompt. Server-rendered (Jinja2, autoescaped); the WebAuthn calls live in
`/static/mfa-webauthn.js`, loaded with the request's CSP nonce.

A pending browser sign-in (password proven, factor owed) is carried by the `__Host-` cookie
`PENDING_COOKIE`, set by the sign-in page (`rampart.web.pages.account`): HttpOnly, Secure,
SameSite=Strict, a few minutes. The pending token never appears in a URL or a page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from rampart.access.domain import MfaEnrolmentRequiredError, Principal, StepUpRequiredError
from rampart.identity.deps import flow_services_slot
from rampart.identity.domain import PendingLoginError
from rampart.identity.mfa.api import factor_attempt, factor_challenge, guard_factor_change
from rampart.identity.mfa.domain import FactorKind, step_up_purpose
from rampart.identity.mfa.login_api import complete_login, pending_purpose
from rampart.identity.mfa.service import FactorResponse
from rampart.kernel.errors import RampartError
from rampart.platform.http.access import public
from rampart.web.pages.account import (
    PENDING_COOKIE,
    User,
    apply_browser_session,
    land_link,
    landed_link,
)
from rampart.web.pages.templating import render as render_page
from rampart.web.wiring import container_of

router = APIRouter(include_in_schema=False)

#: Where a step-up may send the user back to: our own pages only, never another site.
_SAFE_NEXT = (
    "/security",
    "/account",
    "/api-keys",
    "/keys",
    "/trade",
    "/withdraw",
    "/compliance/halts",
)


def _safe_next(raw: str | None) -> str:
    if raw and raw.startswith(_SAFE_NEXT) and "//" not in raw and "\\" not in raw:
        return raw[:200]
    return "/security/mfa"


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    defaults: dict[str, Any] = {"sent": None, "next": "/security/mfa", "minutes": 0}
    return render_page(request, template, defaults | context, status=status)


def _to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def _step_up_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/security/step-up?next={quote(next_path)}", status_code=303)


# --- management ----------------------------------------------------------------------------
def _management(request: Request, principal: Principal, **extra: Any) -> HTMLResponse:
    container = container_of(request)
    user_id = principal.user_id
    assert user_id is not None
    with container.db.read() as session:
        summary = container.mfa.summary(session, user_id)
        keys = container.mfa.authenticators(session, user_id)
    return render(
        request,
        "mfa_manage.html",
        summary=summary,
        keys=keys,
        step_up_minutes=container.settings.mfa.step_up_minutes,
        email_factor=container.settings.email_factor_allowed,
        **extra,
    )


@router.get("/security/mfa")
def manage(request: Request, principal: User) -> Response:
    return _management(request, principal)


def _guarded(
    request: Request,
    principal: Principal,
    work: Callable[[Any, str], Any],
    *,
    always_step_up: bool = False,
) -> Any:
    """Run `work(uow, user_id)` after the factor-change guard; commits."""
    container = container_of(request)
    user_id = principal.user_id
    assert user_id is not None
    with container.uow() as uow:
        guard_factor_change(container.mfa, uow.session, principal, always_step_up=always_step_up)
        result = work(uow, user_id)
        uow.commit()
    return result


def _form_action(
    request: Request,
    principal: Principal,
    work: Callable[[Any, str], Any],
    on_success: Callable[[Any], Response],
    *,
    always_step_up: bool = False,
) -> Response:
    try:
        result = _guarded(request, principal, work, always_step_up=always_step_up)
    except (StepUpRequiredError, MfaEnrolmentRequiredError):
        return _step_up_redirect("/security/mfa")
    except RampartError as exc:
        return _management(request, principal, errors=[exc.detail])
    return on_success(result)


@router.post("/security/mfa/totp")
def totp_begin(request: Request, principal: User) -> Response:
    container = container_of(request)

    def work(uow: Any, user_id: str) -> Any:
        label = container.mfa.account_label(uow.session, user_id)
        return container.mfa.begin_totp(uow, user_id, label)

    return _form_action(
        request,
        principal,
        work,
        lambda enrolment: render(
            request,
            "mfa_totp.html",
            enrolment=enrolment,
            # segno's own SVG of our own otpauth URI: paths and rects, no text, no script.
            qr=Markup(enrolment.qr_svg),  # noqa: S704
        ),
    )


@router.post("/security/mfa/totp/confirm")
async def totp_confirm(request: Request, principal: User) -> Response:
    form = await request.form()
    code = str(form.get("code", ""))[:32]
    return await run_in_threadpool(_confirm, request, principal, "totp", code)


def _confirm(request: Request, principal: Principal, kind: str, code: str) -> Response:
    container = container_of(request)
    user_id = principal.user_id
    assert user_id is not None
    try:
        with factor_attempt(container.ratelimits, user_id, enrolment=True), container.uow() as uow:
            if kind == "totp":
                check = container.mfa.confirm_totp(uow, user_id, code)
            else:
                check = container.mfa.confirm_channel(uow, user_id, FactorKind(kind), code)
            codes: list[str] = []
            if check.ok and not container.mfa.backup_codes_remaining(uow.session, user_id):
                codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user_id)]
            uow.commit()
            # Inside the attempt: a wrong code keeps its unit of the limiter.
            check.raise_for_failure()
    except RampartError as exc:
        return _management(request, principal, errors=[exc.detail])
    if codes:
        return render(request, "mfa_backup_codes.html", codes=codes)
    return _management(request, principal, notice="Second factor added.")


@router.post("/security/mfa/backup-codes")
def backup_codes(request: Request, principal: User) -> Response:
    container = container_of(request)
    return _form_action(
        request,
        principal,
        lambda uow, user_id: [
            c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user_id)
        ],
        lambda codes: render(request, "mfa_backup_codes.html", codes=codes),
    )


@router.post("/security/mfa/{channel}/enrol")
async def channel_enrol(channel: str, request: Request, principal: User) -> Response:
    if channel not in ("sms", "email"):
        return RedirectResponse("/security/mfa", status_code=303)
    form = await request.form()
    phone = str(form.get("phone", ""))[:40]
    container = container_of(request)

    def work(uow: Any, user_id: str) -> str:
        if channel == "sms":
            return str(container.mfa.enrol_sms(uow, user_id, phone))
        return str(container.mfa.enrol_email(uow, user_id))

    return await run_in_threadpool(
        _form_action,
        request,
        principal,
        work,
        lambda hint: render(request, "mfa_channel.html", channel=channel, sent_to=hint),
    )


@router.post("/security/mfa/{channel}/confirm")
async def channel_confirm(channel: str, request: Request, principal: User) -> Response:
    if channel not in ("sms", "email"):
        return RedirectResponse("/security/mfa", status_code=303)
    form = await request.form()
    return await run_in_threadpool(
        _confirm, request, principal, channel, str(form.get("code", ""))[:32]
    )


@router.post("/security/mfa/remove/{what}")
async def remove(what: str, request: Request, principal: User) -> Response:
    form = await request.form()
    key_id = str(form.get("authenticator_id", ""))[:36]
    container = container_of(request)

    def work(uow: Any, user_id: str) -> None:
        if what == "totp":
            container.mfa.remove_totp(uow, user_id)
        elif what in ("sms", "email"):
            container.mfa.remove_channel(uow, user_id, FactorKind(what))
        elif what == "webauthn":
            container.mfa.remove_authenticator(uow, user_id, key_id)

    return await run_in_threadpool(
        _form_action,
        request,
        principal,
        work,
        lambda _r: RedirectResponse("/security/mfa", status_code=303),
        always_step_up=True,
    )


# --- step-up -------------------------------------------------------------------------------
@router.get("/security/step-up")
def step_up_page(request: Request, principal: User, next: str | None = None) -> Response:
    container = container_of(request)
    with container.db.read() as session:
        summary = container.mfa.summary(session, principal.user_id or "")
    return render(
        request,
        "mfa_challenge.html",
        mode="step-up",
        summary=summary,
        next=_safe_next(next),
        options_url="/v1/mfa/step-up/challenge",
        verify_url="/v1/mfa/step-up",
        form_url="/security/step-up",
        send_url="/security/step-up/send",
        minutes=container.settings.mfa.step_up_minutes,
    )


@router.post("/security/step-up")
async def step_up_submit(request: Request, principal: User) -> Response:
    form = await request.form()
    kind = str(form.get("kind", "totp"))
    code = str(form.get("code", ""))[:32]
    next_path = _safe_next(str(form.get("next", "")))
    container = container_of(request)
    user_id = principal.user_id or ""

    def run() -> Response:
        try:
            if kind not in {k.value for k in FactorKind} or kind == "webauthn":
                raise PendingLoginError
            with factor_attempt(container.ratelimits, user_id), container.uow() as uow:
                check = container.mfa.verify(
                    uow,
                    user_id,
                    step_up_purpose(principal.credential_id),
                    FactorResponse(FactorKind(kind), code=code),
                )
                secret = None
                if check.ok:
                    sessions = container.identity.sessions
                    session_id = principal.credential_id or ""
                    sessions.record_second_factor(uow, user_id, session_id)
                    if principal.method == "session":
                        # A new cookie for the stepped-up session: the old one stops working.
                        secret = sessions.rotate_secret(uow, user_id, session_id)
                uow.commit()
                check.raise_for_failure()
        except RampartError as exc:
            with container.db.read() as session:
                summary = container.mfa.summary(session, user_id)
            return render(
                request,
                "mfa_challenge.html",
                status=400,
                mode="step-up",
                summary=summary,
                next=next_path,
                errors=[exc.detail],
                options_url="/v1/mfa/step-up/challenge",
                verify_url="/v1/mfa/step-up",
                form_url="/security/step-up",
                send_url="/security/step-up/send",
                minutes=container.settings.mfa.step_up_minutes,
            )
        response = RedirectResponse(next_path, status_code=303)
        if secret is not None:
            apply_browser_session(response, container, secret)
        return response

    return await run_in_threadpool(run)


@router.post("/security/step-up/send")
async def step_up_send(request: Request, principal: User) -> Response:
    form = await request.form()
    kind = str(form.get("kind", ""))
    next_path = _safe_next(str(form.get("next", "")))
    container = container_of(request)

    def run() -> Response:
        notice = None
        errors = None
        try:
            if kind not in ("sms", "email"):
                raise PendingLoginError
            with container.uow() as uow:
                hint = container.mfa.send_code(
                    uow,
                    principal.user_id or "",
                    FactorKind(kind),
                    step_up_purpose(principal.credential_id),
                )
                uow.commit()
            notice = f"A code was sent to {hint}."
        except RampartError as exc:
            errors = [exc.detail]
        with container.db.read() as session:
            summary = container.mfa.summary(session, principal.user_id or "")
        return render(
            request,
            "mfa_challenge.html",
            mode="step-up",
            summary=summary,
            next=next_path,
            notice=notice,
            errors=errors,
            sent=kind,
            options_url="/v1/mfa/step-up/challenge",
            verify_url="/v1/mfa/step-up",
            form_url="/security/step-up",
            send_url="/security/step-up/send",
            minutes=container.settings.mfa.step_up_minutes,
        )

    return await run_in_threadpool(run)


# --- the second step of a browser sign-in ---------------------------------------------------
def _pending_token(request: Request) -> str | None:
    token = request.cookies.get(PENDING_COOKIE)
    return token if token and 16 <= len(token) <= 128 else None


def _challenge_page(request: Request, token: str, **extra: Any) -> Response:
    container = container_of(request)
    try:
        with container.db.read() as session:
            user_id = container.identity.login.pending_user(session, token)
            summary = container.mfa.summary(session, user_id)
    except PendingLoginError:
        return _expired()
    return render(
        request,
        "mfa_challenge.html",
        mode="login",
        summary=summary,
        signed_in=False,
        next="/security",
        options_url="/login/second-factor/options",
        verify_url="/login/second-factor/verify",
        form_url="/login/second-factor",
        send_url="/login/second-factor/send",
        **extra,
    )


def _expired() -> Response:
    response = RedirectResponse("/login?expired=1", status_code=303)
    response.delete_cookie(PENDING_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/login/second-factor", dependencies=[Depends(public)])
def login_challenge(request: Request) -> Response:
    token = _pending_token(request)
    if token is None:
        return _to_login()
    return _challenge_page(request, token)


def _signed_in(request: Request, issued: Any, next_path: str, *, as_json: bool) -> Response:
    response: Response = (
        JSONResponse({"next": next_path})
        if as_json
        else RedirectResponse(next_path, status_code=303)
    )
    container = container_of(request)
    apply_browser_session(response, container, issued.session_secret)
    response.delete_cookie(PENDING_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.post("/login/second-factor", dependencies=[Depends(public)])
async def login_submit(request: Request) -> Response:
    token = _pending_token(request)
    if token is None:
        return _to_login()
    form = await request.form()
    kind = str(form.get("kind", "totp"))
    code = str(form.get("code", ""))[:32]
    container = container_of(request)

    def run() -> Response:
        try:
            if kind not in {k.value for k in FactorKind} or kind == "webauthn":
                raise PendingLoginError
            issued = complete_login(
                flow_services_slot.of(request.app),
                container.mfa,
                container.ratelimits,
                request,
                token,
                FactorResponse(FactorKind(kind), code=code),
                kind="browser",
            )
        except PendingLoginError:
            return _expired()
        except RampartError as exc:
            return _challenge_page(request, token, errors=[exc.detail])
        return _signed_in(request, issued, "/security", as_json=False)

    return await run_in_threadpool(run)


@router.post("/login/second-factor/send", dependencies=[Depends(public)])
async def login_send(request: Request) -> Response:
    token = _pending_token(request)
    if token is None:
        return _to_login()
    form = await request.form()
    kind = str(form.get("kind", ""))
    container = container_of(request)

    def run() -> Response:
        try:
            if kind not in ("sms", "email"):
                raise PendingLoginError
            with container.uow() as uow:
                user_id = container.identity.login.pending_user(uow.session, token)
                result = factor_challenge(container.mfa, uow, user_id, kind, pending_purpose(token))
                uow.commit()
        except PendingLoginError:
            return _expired()
        except RampartError as exc:
            return _challenge_page(request, token, errors=[exc.detail])
        return _challenge_page(
            request, token, sent=kind, notice=f"A code was sent to {result.get('sent_to', '')}."
        )

    return await run_in_threadpool(run)


@router.post("/login/second-factor/options", dependencies=[Depends(public)])
async def login_options(request: Request) -> Response:
    token = _pending_token(request)
    if token is None:
        raise PendingLoginError
    container = container_of(request)

    def run() -> dict[str, Any]:
        with container.uow() as uow:
            user_id = container.identity.login.pending_user(uow.session, token)
            result = factor_challenge(
                container.mfa, uow, user_id, "webauthn", pending_purpose(token)
            )
            uow.commit()
        return result

    return JSONResponse(await run_in_threadpool(run))


@router.post("/login/second-factor/verify", dependencies=[Depends(public)])
async def login_verify(request: Request) -> Response:
    token = _pending_token(request)
    if token is None:
        raise PendingLoginError
    from rampart.identity.mfa.api import FactorBody

    body = FactorBody.model_validate_json(await request.body())
    container = container_of(request)

    def run() -> Response:
        issued = complete_login(
            flow_services_slot.of(request.app),
            container.mfa,
            container.ratelimits,
            request,
            token,
            body.response(),
            kind="browser",
        )
        return _signed_in(request, issued, "/security", as_json=True)

    return await run_in_threadpool(run)


__all__ = ["router"]


# --- a staff account's enrolment link ---------------------------------------------------------
@router.get("/staff/enrol", dependencies=[Depends(public)])
def staff_enrol(request: Request, token: str = "") -> Response:
    """The page of an enrolment link (`rampart users create --role ADMIN`): a password and a
    security key, registered by `/v1/auth/staff-enrolment` with the link's token. The link's
    first landing moves the token out of the address (`land_link`); the page carries it to its
    script, never in a URL."""
    landed = land_link("/staff/enrol", token)
    if landed is not None:
        return landed
    container = container_of(request)
    identity = container.settings.identity
    token = landed_link(request)
    try:
        with container.db.read() as session:
            container.identity.accounts.staff_enrolment_target(session, token)
    except RampartError:
        token = ""
    return render(
        request,
        "staff_enrol.html",
        status=200 if token else 404,
        token=token,
        min_length=identity.password_min_length,
        max_length=identity.password_max_length,
    )
