"""The API keys page: create, list, rotate and revoke the signed-in person's keys.

`/keys` lists the keys (never a secret: the prefix the key's secret starts with, its scopes,
algorithm, IP allow-list, dates, last use and state) beside the form that creates one. Creating
and rotating follow the API's rules (`ApiKeyService`): `apikey:manage`, a second factor within
`mfa.step_up_minutes`, a key never manages keys. When the step-up is due the form comes back as
typed, with a link to the step-up page that returns here with the same values filled in.

A new secret is in one response only, the one answering the form's post (`Cache-Control:
no-store`): it is in no address, no cookie, no redirect, and `/keys` never shows it again.
Revoking and rotating each go through a confirmation page; forms carry the session's CSRF token,
which the session authenticator checks before any handler runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rampart.access.api import requires
from rampart.access.domain import MfaEnrolmentRequiredError, Permission, Principal
from rampart.access.domain import StepUpRequiredError as StepUpDue
from rampart.apikeys.service import ApiKeyService
from rampart.apikeys.views import ApiKeyView, CreatedKey
from rampart.kernel.errors import NotFoundError, RampartError, ValidationError
from rampart.platform.http.inputs import Id, Multiline, Text
from rampart.platform.http.problems import status_for
from rampart.ratelimit.api import rate_limit
from rampart.web.pages.account import page_user
from rampart.web.pages.keys_examples import signing_examples
from rampart.web.pages.templating import render
from rampart.web.wiring import container_of

router = APIRouter(include_in_schema=False)

manage = requires(Permission.APIKEY_MANAGE)
Field = Annotated[Text, Form(max_length=200)]
Area = Annotated[Multiline, Form(max_length=4096)]

SCOPES = ("read", "data", "trade")
ALGORITHMS = ("hmac-sha256", "ed25519")
STATE_WORDS = {
    "active": "Active",
    "rotating": "Rotated: works until its grace period ends",
    "rotated": "Rotated",
    "revoked": "Revoked",
    "expired": "Expired",
}
NO_STORE = {"Cache-Control": "no-store"}


def _service(request: Request) -> ApiKeyService:
    service: ApiKeyService = container_of(request).apikeys
    return service


def _typed(
    label: str, scopes: list[str], allowed_cidrs: str, expires_on: str, algorithm: str, key: str
) -> dict[str, Any]:
    """What the create form holds, as typed (shown again after an error or a step-up)."""
    return {
        "label": label[:100],
        "scopes": [s for s in scopes if s in SCOPES],
        "allowed_cidrs": allowed_cidrs[:4096],
        "expires_on": expires_on[:10],
        "algorithm": algorithm if algorithm in ALGORITHMS else ALGORITHMS[0],
        "public_key": key[:400],
    }


def _cidrs(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _expiry(text: str) -> datetime | None:
    """The form's date: the key stops at the start of that day (UTC)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValidationError("The expiry date is not a date (YYYY-MM-DD).") from None
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def _step_up_href(back_to: str) -> str:
    return f"/security/step-up?next={quote(back_to, safe='')}"


def _back_to_form(typed: dict[str, Any]) -> str:
    """`/keys` with the typed values in its query, for the step-up page to return to (the
    step-up page only follows paths under 200 characters: a long public key is left out)."""
    fields: list[tuple[str, str]] = [(k, v) for k, v in typed.items() if k != "scopes" and v]
    fields += [("scopes", s) for s in typed["scopes"]]
    path = "/keys?" + urlencode(fields)
    if len(path) > 200:
        path = "/keys?" + urlencode([(k, v) for k, v in fields if k != "public_key"])
    return path[:200] if len(path) <= 200 else "/keys"


def _keys(request: Request, principal: Principal) -> list[ApiKeyView]:
    with container_of(request).db.read() as session:
        return _service(request).list(session, principal)


async def _page(
    request: Request,
    principal: Principal,
    typed: dict[str, Any],
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    keys = await run_in_threadpool(_keys, request, principal)
    settings = container_of(request).settings
    return render(
        request,
        "keys.html",
        {
            "keys": keys,
            "form": typed,
            "scopes": SCOPES,
            "algorithms": ALGORITHMS,
            "states": STATE_WORDS,
            "grace_hours": settings.apikeys.rotation_grace_hours,
            "step_up_href": None,
            "enrol_href": None,
            **context,
        },
        status=status,
    )


def _created_page(
    request: Request, created: CreatedKey, *, rotated_from: ApiKeyView | None = None
) -> HTMLResponse:
    key = created.key
    response = render(
        request,
        "keys_created.html",
        {
            "key": key,
            "secret": created.secret.reveal() if created.secret is not None else None,
            "examples": signing_examples(),
            "base_url": str(request.base_url).rstrip("/"),
            "rotated_from": rotated_from,
            "notice": "The key was rotated." if rotated_from else "The key was created.",
        },
        status=200 if rotated_from else 201,
    )
    response.headers.update(NO_STORE)
    return response


def _due_links(exc: RampartError, back_to: str) -> dict[str, Any]:
    """Where to go before trying again: the step-up page, or setting up a second factor."""
    if isinstance(exc, MfaEnrolmentRequiredError):
        return {"enrol_href": "/security/mfa", "errors": [exc.detail or exc.title]}
    return {
        "step_up_href": _step_up_href(back_to),
        "errors": [f"{exc.title}: creating or rotating a key needs a recent second factor."],
    }


@router.get("/keys", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def keys_page(
    request: Request,
    principal: Principal = Depends(manage),
    label: str = Query("", max_length=100),
    scopes: list[str] = Query([], max_length=3),
    allowed_cidrs: str = Query("", max_length=4096),
    expires_on: str = Query("", max_length=10),
    algorithm: str = Query("", max_length=16),
    public_key: str = Query("", max_length=400),
    done: str = Query("", max_length=16),
) -> HTMLResponse:
    """The person's keys and the form for a new one (filled in after a step-up)."""
    typed = _typed(label, scopes, allowed_cidrs, expires_on, algorithm, public_key)
    notice = {"revoked": "The key was revoked: requests signed with it are refused."}.get(done)
    response = await _page(request, principal, typed, notice=notice)
    response.headers.update(NO_STORE)
    return response


@router.post(
    "/keys",
    response_class=HTMLResponse,
    dependencies=[Depends(rate_limit("user.apikeys", after=manage))],
)
async def create_key(
    request: Request,
    label: Field = "",
    scopes: Annotated[list[str], Form(max_length=3)] = [],  # noqa: B006 - FastAPI's way
    allowed_cidrs: Area = "",
    expires_on: Field = "",
    algorithm: Field = "hmac-sha256",
    public_key: Area = "",
    principal: Principal = Depends(manage),
) -> Response:
    """Create a key from the form; the answer shows its secret, this once."""
    typed = _typed(label, scopes, allowed_cidrs, expires_on, algorithm, public_key)
    container = container_of(request)

    def create() -> CreatedKey:
        with container.uow() as uow:
            created = _service(request).create(
                uow,
                principal,
                algorithm=typed["algorithm"],
                scopes=typed["scopes"] or list(scopes),
                label=typed["label"] or None,
                allowed_cidrs=_cidrs(typed["allowed_cidrs"]),
                expires_at=_expiry(typed["expires_on"]),
                public_key=typed["public_key"] or None,
            )
            uow.commit()
        return created

    try:
        created = await run_in_threadpool(create)
    except (StepUpDue, MfaEnrolmentRequiredError) as exc:
        due = _due_links(exc, _back_to_form(typed))
        return await _page(request, principal, typed, status=status_for(exc), **due)
    except RampartError as exc:
        if isinstance(exc, NotFoundError):
            raise
        return await _page(
            request, principal, typed, status=status_for(exc), errors=[exc.detail or exc.title]
        )
    return _created_page(request, created)


def _own_key(request: Request, principal: Principal, key_id: str) -> ApiKeyView:
    with container_of(request).db.read() as session:
        return _service(request).get(session, principal, key_id)


async def _confirm(
    request: Request, principal: Principal, key_id: str, action: str, **context: Any
) -> HTMLResponse:
    # Another person's key is "not found" (404), exactly like a key that does not exist.
    key = await run_in_threadpool(_own_key, request, principal, key_id)
    status = context.pop("status", 200)
    settings = container_of(request).settings
    return render(
        request,
        "keys_confirm.html",
        {
            "key": key,
            "action": action,
            "grace_hours": settings.apikeys.rotation_grace_hours,
            "step_up_href": None,
            "enrol_href": None,
            **context,
        },
        status=status,
    )


@router.get(
    "/keys/{key_id:id}/revoke", response_class=HTMLResponse, dependencies=[Depends(page_user)]
)
async def confirm_revoke(
    key_id: Id, request: Request, principal: Principal = Depends(manage)
) -> HTMLResponse:
    return await _confirm(request, principal, key_id, "revoke")


@router.post("/keys/{key_id:id}/revoke")
async def revoke_key(
    key_id: Id, request: Request, principal: Principal = Depends(manage)
) -> Response:
    """Revoke at once (no step-up: stopping a key must never be hard)."""
    container = container_of(request)

    def revoke() -> None:
        with container.uow() as uow:
            _service(request).revoke(uow, principal, key_id)
            uow.commit()

    await run_in_threadpool(revoke)
    return RedirectResponse("/keys?done=revoked", status_code=303)


@router.get(
    "/keys/{key_id:id}/rotate", response_class=HTMLResponse, dependencies=[Depends(page_user)]
)
async def confirm_rotate(
    key_id: Id, request: Request, principal: Principal = Depends(manage)
) -> HTMLResponse:
    return await _confirm(request, principal, key_id, "rotate")


@router.post(
    "/keys/{key_id:id}/rotate",
    response_class=HTMLResponse,
    dependencies=[Depends(rate_limit("user.apikeys", after=manage))],
)
async def rotate_key(
    key_id: Id,
    request: Request,
    public_key: Area = "",
    principal: Principal = Depends(manage),
) -> Response:
    """A replacement with the same settings; the old key works for the grace period."""
    container = container_of(request)

    def rotate() -> tuple[CreatedKey, ApiKeyView]:
        with container.uow() as uow:
            created = _service(request).rotate(
                uow, principal, key_id, public_key=public_key or None
            )
            uow.commit()
        with container.db.read() as session:
            old = _service(request).get(session, principal, key_id)
        return created, old

    try:
        created, old = await run_in_threadpool(rotate)
    except (StepUpDue, MfaEnrolmentRequiredError) as exc:
        due = _due_links(exc, f"/keys/{key_id}/rotate")
        return await _confirm(request, principal, key_id, "rotate", status=status_for(exc), **due)
    except RampartError as exc:
        if isinstance(exc, NotFoundError):
            raise
        return await _confirm(
            request,
            principal,
            key_id,
            "rotate",
            status=status_for(exc),
            errors=[exc.detail or exc.title],
        )
    return _created_page(request, created, rotated_from=old)


__all__ = ["router"]
