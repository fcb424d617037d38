"""The admin console's user pages: find a user by address, see their account, act on it.

`/admin/users` (signed in, `admin:users`, which as a staff permission counts only for a sign-in
that proved a security key) finds an account by its exact address: addresses are sealed and
looked up by their blind index, so there is no partial search. `/admin/users/{id}` shows the
account's status, its role grants (past and present, with reason and end), the kinds of its
second factors (never a secret) and how many sessions it has open, beside the actions: lock,
unlock, grant a role (with a reason, until a time when given), revoke one, email a password reset
link, ask for a support-assisted factor reset, and approve someone else's request for one (four
eyes: the service refuses the person who asked). Without an address typed, the list shows the
newest accounts, bounded.

Each action follows the rules of its API: every one but locking (which only takes access away)
needs a security-key step-up within `mfa.staff_step_up_minutes`. When it is due the page comes
back with what was typed and a link to the step-up page that returns here with it filled in.
Every form carries the session's CSRF token and a confirmation tick box.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal, check_staff_step_up
from rampart.access.domain import StepUpRequiredError as StepUpDue
from rampart.identity.domain import InvalidEmailError, normalise_email
from rampart.identity.mfa.domain import SensitiveAction
from rampart.identity.mfa.recovery import RESET_VERIFICATION_METHODS, pending_reset_requests
from rampart.kernel.errors import RampartError, ValidationError
from rampart.platform.http.inputs import Multiline, Text
from rampart.platform.http.problems import status_for
from rampart.web.pages.account import page_user
from rampart.web.pages.templating import render
from rampart.web.wiring import container_of

router = APIRouter(include_in_schema=False)

admin_users = requires(Permission.ADMIN_USERS)
UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Field = Annotated[Text, Form(max_length=200)]
Reason = Annotated[Multiline, Form(max_length=500)]
ACTIONS = ("lock", "unlock", "grant", "revoke", "password-reset", "mfa-reset", "mfa-approve")
#: How many of the newest accounts the user list shows (no address typed).
RECENT_LIMIT = 50
NOTICES = {
    "lock": "The account is locked: its sessions and tokens have ended.",
    "unlock": "The account is unlocked.",
    "grant": "The role was granted.",
    "revoke": "The role was revoked.",
    "password-reset": "A password reset link is on its way to the user's address.",
    "mfa-reset": "The factor reset is requested: a second staff member must approve it.",
    "mfa-approve": "The factor reset is approved: every second factor of the user is gone.",
}
VERIFICATION_METHODS = tuple(sorted(RESET_VERIFICATION_METHODS))


def _step_up_href(back_to: str) -> str:
    return f"/security/step-up?next={quote(back_to, safe='')}"


def _expiry(text: str) -> datetime | None:
    """The form's `datetime-local` value, read as UTC."""
    if not text:
        return None
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValidationError("Until: give a UTC time as YYYY-MM-DDTHH:MM.")


def _recent(request: Request) -> list[Any]:
    container = container_of(request)
    with container.db.read() as session:
        return container.identity.accounts.recent(session, RECENT_LIMIT)


def _find(request: Request, email: str) -> str | None:
    container = container_of(request)
    with container.db.read() as session:
        row = container.identity.accounts.by_email(session, email)
        return None if row is None else str(row.id)


@router.get("/admin/users", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def users_page(
    request: Request,
    _: Principal = Depends(admin_users),
    email: str = Query("", max_length=320),
) -> Response:
    """Find an account by its exact address (the address is sealed: no partial search); the
    newest accounts otherwise."""
    errors: list[str] = []
    if email.strip():
        try:
            address = normalise_email(email)
        except InvalidEmailError:
            errors.append("That is not an email address.")
        else:
            user_id = await run_in_threadpool(_find, request, address)
            if user_id is not None:
                return RedirectResponse(f"/admin/users/{user_id}", status_code=303)
            errors.append("No account has that address.")
    recent = [] if email.strip() else await run_in_threadpool(_recent, request)
    return render(
        request,
        "admin_users.html",
        {"email": email, "errors": errors, "recent": recent, "recent_limit": RECENT_LIMIT},
        status=404 if errors else 200,
    )


def _account(request: Request, user_id: str) -> dict[str, Any]:
    container = container_of(request)
    now = container.clock.now()
    with container.db.read() as session:
        user = container.identity.accounts.get(session, user_id)
        grants = container.access.grants_of(session, user_id)
        roles = sorted(container.access.list_roles(session))
        factors = container.mfa.summary(session, user_id)
        sessions = container.identity.sessions.list_sessions(session, user_id)
        resets = pending_reset_requests(session, user_id, now)
    return {
        "user": user,
        "grants": [
            {"grant": g, "active": g.active_at(now)}
            for g in sorted(grants, key=lambda g: g.created_at, reverse=True)
        ],
        "active_roles": sorted({g.role for g in grants if g.active_at(now)}),
        "roles": roles,
        "factor_kinds": factors.kinds(),
        "backup_codes": factors.backup_codes_remaining,
        "sessions": len(sessions),
        "resets": resets,
    }


async def _detail(
    request: Request,
    user_id: str,
    typed: dict[str, str],
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    account = await run_in_threadpool(_account, request, user_id)
    return render(
        request,
        "admin_user.html",
        {
            **account,
            "form": typed,
            "methods": VERIFICATION_METHODS,
            "step_up_href": None,
            **context,
        },
        status=status,
    )


def _typed(**values: str) -> dict[str, str]:
    keys = ("action", "role", "reason", "until", "method", "reference", "request_id")
    return {k: str(values.get(k, ""))[:500] for k in keys}


@router.get(
    "/admin/users/{user_id}", response_class=HTMLResponse, dependencies=[Depends(page_user)]
)
async def user_page(
    request: Request,
    user_id: UserId,
    _: Principal = Depends(admin_users),
    action: str = Query("", max_length=20),
    role: str = Query("", max_length=64),
    reason: str = Query("", max_length=500),
    until: str = Query("", max_length=32),
    method: str = Query("", max_length=32),
    reference: str = Query("", max_length=200),
    done: str = Query("", max_length=20),
) -> HTMLResponse:
    """One account and its actions (their forms filled in again after a step-up)."""
    typed = _typed(
        action=action, role=role, reason=reason, until=until, method=method, reference=reference
    )
    return await _detail(request, user_id, typed, notice=NOTICES.get(done))


def _act(request: Request, principal: Principal, user_id: str, form: dict[str, str]) -> None:
    container = container_of(request)
    action = form["action"]
    if action != "lock":
        # Taking access away needs no step-up; giving it back, or anything else, does.
        check_staff_step_up(
            principal,
            container.clock.time_ns() / 1e9,
            step_up_minutes=container.settings.mfa.staff_step_up_minutes,
        )
    reason = form["reason"].strip()
    if action == "mfa-approve":
        # The request carries its reason; the approver's own is not asked for.
        with container.uow() as uow:
            container.mfa.require_step_up(uow.session, principal, SensitiveAction.MFA_RESET)
            container.mfa.approve_support_reset(uow, principal, form["request_id"][:36])
            uow.commit()
        return
    if len(reason) < 5:
        raise ValidationError("Say why, in at least 5 characters: it is kept in the audit log.")
    with container.uow() as uow:
        if action in ("lock", "unlock"):
            container.identity.accounts.set_locked(uow, user_id, action == "lock", reason=reason)
        elif action == "grant":
            container.access.grant_as(
                uow,
                principal,
                user_id,
                form["role"],
                expires_at=_expiry(form["until"]),
                reason=reason,
            )
        elif action == "revoke":
            container.access.revoke_role(
                uow, user_id, form["role"], revoked_by=principal.actor, reason=reason
            )
        elif action == "password-reset":
            container.identity.accounts.send_password_reset_for_operator(
                uow, user_id, reason=reason, actor=principal.actor
            )
        elif action == "mfa-reset":
            container.mfa.require_step_up(uow.session, principal, SensitiveAction.MFA_RESET)
            container.mfa.request_support_reset(
                uow,
                principal,
                user_id,
                verification_method=form["method"],
                verification_reference=form["reference"],
                reason=reason,
            )
        else:
            raise ValidationError("Unknown action.")
        uow.commit()


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
async def user_action(
    request: Request,
    user_id: UserId,
    principal: Principal = Depends(admin_users),
    action: Field = "",
    role: Annotated[Text, Form(max_length=64)] = "",
    reason: Reason = "",
    until: Field = "",
    method: Field = "",
    reference: Field = "",
    request_id: Annotated[Text, Form(max_length=36)] = "",
    confirm: Field = "",
) -> Response:
    """Take one action on the account, once confirmed; the page comes back as typed when the
    action is refused or a step-up is due."""
    typed = _typed(
        action=action,
        role=role,
        reason=reason,
        until=until,
        method=method,
        reference=reference,
        request_id=request_id,
    )
    if action not in ACTIONS:
        return await _detail(request, user_id, typed, status=422, errors=["Unknown action."])
    if confirm != "yes":
        return await _detail(
            request, user_id, typed, status=422, errors=["Tick the box to confirm the action."]
        )
    try:
        await run_in_threadpool(_act, request, principal, user_id, typed)
    except StepUpDue as exc:
        back = f"/admin/users/{user_id}?" + urlencode({k: v for k, v in typed.items() if v})
        return await _detail(
            request,
            user_id,
            typed,
            status=401,
            errors=[f"{exc.title}: confirm with your security key, then send the form again."],
            step_up_href=_step_up_href(back if len(back) <= 200 else f"/admin/users/{user_id}"),
        )
    except RampartError as exc:
        status = status_for(exc)
        if status == 404:
            raise
        return await _detail(
            request, user_id, typed, status=status, errors=[exc.detail or exc.title]
        )
    return RedirectResponse(f"/admin/users/{user_id}?done={action}", status_code=303)


__all__ = ["router"]
