"""Risk over HTTP: halts and the four-eyes resume (compliance, admins), limits (admins), trading
states, the restricted list, locates, the risk event log, and cancel-on-disconnect.

Halting, resuming, changing a trading state and changing limits are sensitive staff actions: each
needs a WebAuthn step-up within `mfa.staff_step_up_minutes` (`require_step_up`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal
from rampart.identity.mfa.api import require_step_up
from rampart.identity.mfa.domain import SensitiveAction
from rampart.kernel.errors import ValidationError
from rampart.kernel.money import MoneyError, to_decimal
from rampart.platform.http.deps import DatabaseDep, get_uow
from rampart.platform.http.inputs import MAX_INT64, Id, Multiline, Text
from rampart.platform.http.problems import problem_responses
from rampart.platform.http.services import ServiceSlot
from rampart.platform.uow import UnitOfWork
from rampart.risk.domain import HaltScope, TradingState
from rampart.risk.gate import RiskGate
from rampart.risk.overview import account_risk
from rampart.risk.service import MAX_PAGE, MAX_REASON, FourEyesError, RiskService

router = APIRouter(prefix="/v1/risk", tags=["risk"])
#: The trader's own view of the controls that apply to their account.
account_router = APIRouter(prefix="/v1/account", tags=["risk"])

Halter = Annotated[Principal, Depends(requires(Permission.COMPLIANCE_HALT))]
LimitsAdmin = Annotated[Principal, Depends(requires(Permission.RISK_LIMITS))]
Halting = Annotated[
    Principal, Depends(require_step_up(Permission.COMPLIANCE_HALT, SensitiveAction.MARKET_HALT))
]
Resuming = Annotated[
    Principal, Depends(require_step_up(Permission.COMPLIANCE_HALT, SensitiveAction.MARKET_RESUME))
]
LimitsChanger = Annotated[
    Principal, Depends(require_step_up(Permission.RISK_LIMITS, SensitiveAction.RISK_LIMITS_CHANGE))
]
Auditor = Annotated[Principal, Depends(requires(Permission.COMPLIANCE_AUDIT))]
Trader = Annotated[Principal, Depends(requires(Permission.ORDER_PLACE))]
Viewer = Annotated[Principal, Depends(requires(Permission.ACCOUNT_VIEW))]
Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]

#: Limits, trading states, halts, locates and risk events.
risk_service_slot: ServiceSlot[RiskService] = ServiceSlot("risk service")
#: The pre-trade risk pipeline (its view of each account).
risk_gate_slot: ServiceSlot[RiskGate] = ServiceSlot("risk gate")
Risk = Annotated[RiskService, Depends(risk_service_slot)]
Gate = Annotated[RiskGate, Depends(risk_gate_slot)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HaltIn(_In):
    scope: Literal["market", "symbol", "account"]
    #: The symbol or account id (omitted for a market-wide halt).
    target: Text | None = Field(default=None, max_length=100)
    reason: Multiline = Field(min_length=1, max_length=MAX_REASON)


class ReasonIn(_In):
    reason: Multiline = Field(min_length=1, max_length=MAX_REASON)


LimitName = Annotated[Text, Field(min_length=1, max_length=64)]
LimitValue = Annotated[Text, Field(max_length=40)] | Annotated[int, Field(ge=0, le=MAX_INT64)]


class LimitsIn(_In):
    #: Omitted: the platform's defaults.
    account_id: Id | None = None
    #: Limit name -> decimal string or integer; null removes the override.
    limits: dict[LimitName, LimitValue | None] = Field(max_length=32)
    reason: Multiline = Field(min_length=1, max_length=MAX_REASON)


class StateIn(_In):
    account_id: Id | None = None
    state: Literal["active", "reducing"]
    reason: Multiline = Field(min_length=1, max_length=MAX_REASON)


class LocateIn(_In):
    account_id: Id
    symbol: Text = Field(max_length=16)
    quantity: Text = Field(max_length=40)
    source: Text = Field(min_length=1, max_length=200)


def _no_content() -> Response:
    return Response(status_code=204)


@router.post("/halts", status_code=201, responses=problem_responses(409))
def halt(body: HaltIn, principal: Halting, uow: Uow, risk: Risk) -> dict[str, Any]:
    """Halt one symbol, one account, or the whole market: new orders are refused at once and
    pending orders are cancelled before this responds."""
    ticket = risk.halt(uow, principal, HaltScope(body.scope), body.target, body.reason)
    uow.commit()
    return ticket.as_dict()


@router.get("/halts")
def halts(
    principal: Halter,
    risk: Risk,
    db: DatabaseDep,
    active: bool = True,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    with db.read() as session:
        items = risk.halts(session, active_only=active, limit=limit)
    return {"items": [h.as_dict() for h in items]}


@router.post("/halts/{halt_id:id}/resume-request")
def request_resume(
    halt_id: Id, body: ReasonIn, principal: Resuming, uow: Uow, risk: Risk
) -> dict[str, Any]:
    """First of four eyes: ask to resume. Trading stays halted until someone else approves."""
    view = risk.request_resume(uow, principal, halt_id, body.reason)
    uow.commit()
    return view.as_dict()


@router.post("/halts/{halt_id:id}/approve")
def approve_resume(halt_id: Id, principal: Resuming, uow: Uow, risk: Risk) -> dict[str, Any]:
    """Second of four eyes: a different person approves, and trading resumes."""
    try:
        view = risk.approve_resume(uow, principal, halt_id)
    except FourEyesError:
        # The refused attempt is itself a record compliance wants: audit it on its own.
        uow.rollback()
        risk.record_four_eyes_refusal(uow, principal, halt_id)
        uow.commit()
        raise
    uow.commit()
    return view.as_dict()


@router.get("/halts/{halt_id:id}/regulator-notifications")
def regulator_notifications(
    halt_id: Id, principal: Halter, risk: Risk, db: DatabaseDep
) -> dict[str, Any]:
    with db.read() as session:
        return {"items": risk.regulator_notifications(session, halt_id)}


@router.get("/limits")
def limits(
    principal: LimitsAdmin,
    risk: Risk,
    db: DatabaseDep,
    account_id: Annotated[Id | None, Query()] = None,
) -> dict[str, Any]:
    with db.read() as session:
        return risk.limits(session, account_id)


@router.put("/limits")
def set_limits(body: LimitsIn, principal: LimitsChanger, uow: Uow, risk: Risk) -> dict[str, Any]:
    changes = {k: (None if v is None else str(v)) for k, v in body.limits.items()}
    result = risk.set_limits(uow, principal, body.account_id, changes, body.reason)
    uow.commit()
    return result


@router.put("/states", status_code=204)
def set_state(body: StateIn, principal: Halting, uow: Uow, risk: Risk) -> Response:
    risk.set_trading_state(uow, principal, body.account_id, TradingState(body.state), body.reason)
    uow.commit()
    return _no_content()


@router.get("/restricted")
def restricted(principal: Halter, risk: Risk, db: DatabaseDep) -> dict[str, Any]:
    with db.read() as session:
        return {"items": risk.restricted(session)}


@router.put("/restricted/{symbol}", status_code=204)
def restrict(
    symbol: Annotated[Text, Path(min_length=1, max_length=16)],
    body: ReasonIn,
    principal: Halter,
    uow: Uow,
    risk: Risk,
) -> Response:
    risk.restrict(uow, principal, symbol, body.reason)
    uow.commit()
    return _no_content()


@router.delete("/restricted/{symbol}", status_code=204)
def unrestrict(
    symbol: Annotated[Text, Path(min_length=1, max_length=16)],
    principal: Halter,
    uow: Uow,
    risk: Risk,
    reason: Annotated[Multiline, Query(min_length=1, max_length=MAX_REASON)],
) -> Response:
    risk.unrestrict(uow, principal, symbol, reason)
    uow.commit()
    return _no_content()


@router.post("/locates", status_code=201)
def record_locate(body: LocateIn, principal: LimitsAdmin, uow: Uow, risk: Risk) -> dict[str, Any]:
    try:
        quantity = to_decimal(body.quantity)
    except MoneyError as exc:
        raise ValidationError(str(exc)) from None
    result = risk.record_locate(uow, principal, body.account_id, body.symbol, quantity, body.source)
    uow.commit()
    return result


@router.get("/events")
def events(
    principal: Auditor,
    risk: Risk,
    db: DatabaseDep,
    account_id: Annotated[Id | None, Query()] = None,
    kind: Annotated[Text | None, Query(max_length=32)] = None,
    code: Annotated[Text | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Annotated[Id | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """Risk events (rejections, halts, resumes, limit and state changes), newest first."""
    for value in (since, until):
        if value is not None and value.tzinfo is None:
            raise ValidationError("Times need a timezone.")
    with db.read() as session:
        items = risk.events(
            session, principal, account_id=account_id, kind=kind, code=code, since=since,
            until=until, before=before, limit=limit,
        )  # fmt: skip
    return {
        "items": [e.as_dict() for e in items],
        "next_before": items[-1].id if len(items) == limit else None,
    }


@router.put("/cancel-on-disconnect", status_code=204)
def enable_cancel_on_disconnect(principal: Trader, uow: Uow, risk: Risk) -> Response:
    """Cancel this credential's account's open orders when its stream connection drops."""
    risk.enable_cancel_on_disconnect(uow, principal)
    uow.commit()
    return _no_content()


@router.delete("/cancel-on-disconnect", status_code=204)
def disable_cancel_on_disconnect(principal: Trader, uow: Uow, risk: Risk) -> Response:
    risk.disable_cancel_on_disconnect(uow, principal)
    uow.commit()
    return _no_content()


@account_router.get("/risk")
def my_risk(principal: Viewer, gate: Gate, db: DatabaseDep) -> dict[str, Any]:
    """Your trading state (ACTIVE, REDUCING or HALTED) and why, the limits that apply to you, how
    much of each you have used, the halts and restrictions in force, and your recent refusals
    with the figures that failed."""
    if principal.user_id is None:
        raise ValidationError("Only an account's own credentials have an account.")
    with db.read() as session:
        return account_risk(gate, session, principal.user_id)
