"""The compliance console's halts page: the kill switch, the four-eyes resume queue, risk events
and trading states.

`/compliance/halts` (signed in, `compliance:halt`, which as a staff permission counts only for a
sign-in that proved a security key) shows the halts in force (market, symbols, accounts) with who
declared them, why and when; the forms that halt a symbol, an account or the whole market (each
through a confirmation page); the resume queue; the newest risk events (bounded) and the accounts
the engine holds in REDUCING or HALTED.

The rules are the risk API's (`rampart.risk.api`): halting and resuming are sensitive staff
actions that need a security-key step-up within `mfa.staff_step_up_minutes`, and a resume is
asked for by one officer and approved by a different one (`HaltsService` enforces it; the page
only hides the approve button from the requester, and a refused attempt is audited as the API
audits it). When the step-up is due the form comes back as typed with a link to the step-up
page, which returns here with the same values filled in. Forms carry the session's CSRF token,
checked by the session authenticator before any handler runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rampart.access.api import requires
from rampart.access.domain import MfaEnrolmentRequiredError, Permission, Principal
from rampart.access.domain import StepUpRequiredError as StepUpDue
from rampart.identity.mfa.domain import SensitiveAction
from rampart.kernel.errors import NotFoundError, RampartError
from rampart.platform.http.inputs import Id, Multiline, Text
from rampart.platform.http.problems import status_for
from rampart.risk.domain import HaltScope, TradingState
from rampart.risk.halts import FourEyesError, HaltView
from rampart.risk.inputs import MAX_REASON
from rampart.risk.service import RiskService
from rampart.web.pages.account import page_user
from rampart.web.pages.templating import render
from rampart.web.wiring import container_of

router = APIRouter(include_in_schema=False)

halter = requires(Permission.COMPLIANCE_HALT)
Reason = Annotated[Multiline, Form(max_length=MAX_REASON)]

SCOPES = ("symbol", "account", "market")
#: Risk events the page shows, newest first (the API pages through the rest).
RECENT_EVENTS = 50
#: The step-up page follows only paths this long.
_NEXT_LIMIT = 200
_DONE = {
    "halted": "Trading is halted: new orders are refused and pending ones were cancelled.",
    "requested": "The resume is requested: a different officer must approve it.",
    "resumed": "The halt is lifted: trading resumes.",
}


@dataclass(frozen=True, slots=True)
class HaltForm:
    """The halt form as typed (shown again after an error or a step-up)."""

    scope: str = "symbol"
    target: str = ""
    reason: str = ""

    @classmethod
    def of(cls, scope: str, target: str, reason: str) -> HaltForm:
        return cls(
            scope if scope in SCOPES else "symbol",
            "" if scope == "market" else target.strip()[:100],
            reason[:MAX_REASON],
        )


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    state: str
    reason: str


def _risk(request: Request) -> RiskService:
    risk: RiskService = container_of(request).risk
    return risk


def _step_up_href(back_to: str) -> str:
    return f"/security/step-up?next={quote(back_to, safe='')}"


def _back_to(fields: dict[str, str]) -> str:
    """`/compliance/halts` with what was typed, as long as the step-up page follows it (the
    reason is cut short first, then left out)."""
    kept = {k: v for k, v in fields.items() if v}
    path = "/compliance/halts?" + urlencode(kept)
    reason = kept.get("reason") or kept.get("resume_reason")
    while len(path) > _NEXT_LIMIT and reason:
        reason = reason[: max(0, len(reason) - (len(path) - _NEXT_LIMIT) - 3)]
        key = "reason" if "reason" in kept else "resume_reason"
        kept[key] = reason
        path = "/compliance/halts?" + urlencode({k: v for k, v in kept.items() if v})
    return path if len(path) <= _NEXT_LIMIT else "/compliance/halts"


def _due(exc: RampartError, back_to: str, doing: str) -> dict[str, Any]:
    """Where to go before trying again: the security-key step-up, or enrolling a key."""
    if isinstance(exc, MfaEnrolmentRequiredError):
        return {"enrol_href": "/security/mfa", "errors": [exc.detail or exc.title]}
    return {
        "step_up_href": _step_up_href(back_to),
        "errors": [f"{exc.title}: {doing} needs a security-key step-up within minutes."],
    }


def _account_states(risk: RiskService) -> list[AccountState]:
    """The accounts the engine holds in REDUCING or HALTED, from the controls it applies."""
    controls = risk.book.controls
    reasons = risk.book.state_reasons
    rows = [
        AccountState(account, state.value, reasons.get(account, ""))
        for account, state in controls.account_states.items()
        if state is not TradingState.ACTIVE
    ]
    rows += [
        AccountState(account, TradingState.HALTED.value, "account halt")
        for account in controls.halted_accounts
    ]
    return sorted(rows, key=lambda r: (r.state, r.account_id))


def _board(request: Request, principal: Principal) -> dict[str, Any]:
    risk = _risk(request)
    with container_of(request).db.read() as session:
        halts = risk.halts(session, active_only=True, limit=100)
        events = risk.events(session, principal, limit=RECENT_EVENTS)
    controls = risk.book.controls
    return {
        "halts": halts,
        "by_scope": {
            s: [h for h in halts if h.scope == s] for s in ("market", "symbol", "account")
        },
        "queue": [h for h in halts if h.resume_requested_by is not None],
        "events": events,
        "account_states": _account_states(risk),
        "platform_state": controls.platform_state.value,
        "platform_reason": risk.book.state_reasons.get("*", ""),
        "me": principal.actor,
    }


async def _page(
    request: Request,
    principal: Principal,
    form: HaltForm,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    board = await run_in_threadpool(_board, request, principal)
    values: dict[str, Any] = {
        **board,
        "form": form,
        "scopes": SCOPES,
        "resume_form": {"halt_id": "", "reason": ""},
        "step_up_href": None,
        "enrol_href": None,
        "max_reason": MAX_REASON,
        **context,
    }
    response = render(request, "compliance_halts.html", values, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _require_step_up(request: Request, principal: Principal, action: SensitiveAction) -> None:
    container = container_of(request)
    with container.db.read() as session:
        container.mfa.require_step_up(session, principal, action)


@router.get("/compliance/halts", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def halts_page(
    request: Request,
    principal: Principal = Depends(halter),
    scope: str = Query("symbol", max_length=10),
    target: str = Query("", max_length=100),
    reason: str = Query("", max_length=MAX_REASON),
    resume: str = Query("", max_length=36),
    resume_reason: str = Query("", max_length=MAX_REASON),
    done: str = Query("", max_length=16),
) -> HTMLResponse:
    """The halts in force, the forms, the resume queue, risk events and trading states."""
    return await _page(
        request,
        principal,
        HaltForm.of(scope, target, reason),
        resume_form={"halt_id": resume, "reason": resume_reason},
        notice=_DONE.get(done),
    )


@router.post("/compliance/halts", response_class=HTMLResponse)
async def halt(
    request: Request,
    scope: Annotated[Text, Form(max_length=10)] = "symbol",
    target: Annotated[Text, Form(max_length=100)] = "",
    reason: Reason = "",
    confirmed: Annotated[Text, Form(max_length=3)] = "",
    principal: Principal = Depends(halter),
) -> Response:
    """Halt a symbol, an account or the whole market (the kill switch), after a confirmation."""
    form = HaltForm.of(scope, target, reason)
    errors = []
    if scope not in SCOPES:
        errors.append("Choose what to halt: a symbol, an account or the market.")
    if form.scope != "market" and not form.target:
        errors.append(f"Name the {form.scope} to halt.")
    if not form.reason.strip():
        errors.append("Give the reason for the halt: it is recorded and sent to the regulator.")
    if errors:
        return await _page(request, principal, form, status=422, errors=errors)
    if confirmed != "yes":
        return render(request, "compliance_halts_confirm.html", {"form": form})
    back_to = _back_to({"scope": form.scope, "target": form.target, "reason": form.reason})
    container = container_of(request)
    risk = _risk(request)

    def declare() -> None:
        _require_step_up(request, principal, SensitiveAction.MARKET_HALT)
        target_id = None if form.scope == "market" else form.target
        with container.uow() as uow:
            risk.halt(uow, principal, HaltScope(form.scope), target_id, form.reason)
            uow.commit()

    try:
        await run_in_threadpool(declare)
    except (StepUpDue, MfaEnrolmentRequiredError) as exc:
        due = _due(exc, back_to, "halting trading")
        return await _page(request, principal, form, status=status_for(exc), **due)
    except RampartError as exc:
        errors = [exc.detail or exc.title]
        return await _page(request, principal, form, status=status_for(exc), errors=errors)
    return RedirectResponse("/compliance/halts?done=halted", status_code=303)


@router.post("/compliance/halts/{halt_id:id}/resume-request", response_class=HTMLResponse)
async def request_resume(
    halt_id: Id,
    request: Request,
    reason: Reason = "",
    principal: Principal = Depends(halter),
) -> Response:
    """First of four eyes: ask to resume; trading stays halted until another officer approves."""
    typed = {"halt_id": halt_id, "reason": reason}
    if not reason.strip():
        errors = ["Give the reason for resuming."]
        return await _page(
            request, principal, HaltForm(), status=422, resume_form=typed, errors=errors
        )
    container = container_of(request)
    risk = _risk(request)

    def ask() -> HaltView:
        _require_step_up(request, principal, SensitiveAction.MARKET_RESUME)
        with container.uow() as uow:
            view = risk.request_resume(uow, principal, halt_id, reason)
            uow.commit()
        return view

    try:
        await run_in_threadpool(ask)
    except (StepUpDue, MfaEnrolmentRequiredError) as exc:
        due = _due(exc, _back_to({"resume": halt_id, "resume_reason": reason}), "resuming")
        return await _page(
            request, principal, HaltForm(), status=status_for(exc), resume_form=typed, **due
        )
    except RampartError as exc:
        if isinstance(exc, NotFoundError):
            raise
        errors = [exc.detail or exc.title]
        return await _page(
            request, principal, HaltForm(), status=status_for(exc), resume_form=typed, errors=errors
        )
    return RedirectResponse("/compliance/halts?done=requested", status_code=303)


@router.post("/compliance/halts/{halt_id:id}/approve", response_class=HTMLResponse)
async def approve_resume(
    halt_id: Id, request: Request, principal: Principal = Depends(halter)
) -> Response:
    """Second of four eyes: a different officer approves, and trading resumes."""
    container = container_of(request)
    risk = _risk(request)

    def approve() -> None:
        _require_step_up(request, principal, SensitiveAction.MARKET_RESUME)
        with container.uow() as uow:
            try:
                risk.approve_resume(uow, principal, halt_id)
            except FourEyesError:
                # The refused attempt is itself a record compliance wants, as over the API.
                uow.rollback()
                risk.record_four_eyes_refusal(uow, principal, halt_id)
                uow.commit()
                raise
            uow.commit()

    try:
        await run_in_threadpool(approve)
    except (StepUpDue, MfaEnrolmentRequiredError) as exc:
        due = _due(exc, "/compliance/halts", "approving a resume")
        return await _page(request, principal, HaltForm(), status=status_for(exc), **due)
    except RampartError as exc:
        if isinstance(exc, NotFoundError):
            raise
        errors = [exc.detail or exc.title]
        return await _page(request, principal, HaltForm(), status=status_for(exc), errors=errors)
    return RedirectResponse("/compliance/halts?done=resumed", status_code=303)


__all__ = ["router"]
