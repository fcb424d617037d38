"""The portfolio page: a signed-in trader's account at a glance.

`/portfolio` (signed in, `account:view`) shows the summary (equity, cash, buying power, day P&L),
the positions with their realised and unrealised P&L, the order history (filtered by status, with
rejection and cancellation reasons in words, paged by a cursor with a bounded page size), the
recent fills and the cash ledger. Everything is read through the trading and ledger services and
only ever for the signed-in user: there is no parameter naming whose account to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal
from rampart.access.rls import scope_to_user
from rampart.kernel.errors import ValidationError
from rampart.kernel.ids import is_id
from rampart.kernel.money import ZERO
from rampart.risk.domain import RejectCode
from rampart.trading.domain import Reason
from rampart.trading.service import OrderService
from rampart.web.pages.account import page_user
from rampart.web.pages.templating import render

router = APIRouter(include_in_schema=False)

view_account = requires(Permission.ACCOUNT_VIEW)

#: The order-history filter: label shown -> the status the order service filters on.
STATUS_FILTERS: dict[str, str | None] = {
    "all": None,
    "open": "open",
    "filled": "filled",
    "cancelled": "cancelled",
    "rejected": "rejected",
    "expired": "expired",
}
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
FILLS_SHOWN = 25
ACTIVITY_SHOWN = 25

#: Why an order was rejected or cancelled, as a person reads it (the codes are the API's).
REASON_WORDS: dict[str, str] = {
    Reason.INVALID_QUANTITY: "The quantity is not valid.",
    Reason.INVALID_PRICE: "The price is not valid.",
    Reason.OFF_TICK: "The price is not a multiple of the instrument's tick size.",
    Reason.OFF_LOT: "The quantity is not a multiple of the instrument's lot size.",
    Reason.UNKNOWN_INSTRUMENT: "There is no such instrument.",
    Reason.INSTRUMENT_HALTED: "Trading in this instrument is halted.",
    Reason.INSTRUMENT_RESTRICTED: "This instrument is on the restricted list.",
    Reason.INSUFFICIENT_BUYING_POWER: "Not enough buying power for this order.",
    Reason.INSUFFICIENT_POSITION: "You do not hold enough of this instrument to sell.",
    Reason.SHORT_SALE_NOT_ALLOWED: "Short selling is not allowed for this order.",
    Reason.THRESHOLD_SECURITY: "A threshold security: short sales need a locate.",
    Reason.NO_LIQUIDITY: "There was nothing in the book to trade against.",
    Reason.USER_CANCELLED: "You cancelled it.",
    Reason.IOC_REMAINDER: "Immediate-or-cancel: the unfilled rest was cancelled.",
    Reason.FOK_NOT_FILLABLE: "Fill-or-kill: it could not be filled in full at once.",
    Reason.SELF_TRADE_PREVENTED: "It would have traded with your own order.",
    Reason.END_OF_DAY: "A day order: it expired at the end of the trading day.",
    # The risk engine's pre-trade refusals.
    RejectCode.NOT_AUTHORISED: "This sign-in may not place orders.",
    RejectCode.ACCOUNT_NOT_ACTIVE: "The account is not active.",
    RejectCode.EMAIL_NOT_VERIFIED: "Confirm your email address before trading.",
    RejectCode.MFA_NOT_ENROLLED: "Set up a second factor before trading.",
    RejectCode.MFA_COOLING_PERIOD: "The account was recovered less than 24 hours ago.",
    RejectCode.MARKET_HALTED: "The whole market is halted.",
    RejectCode.SYMBOL_HALTED: "Trading in this instrument is halted.",
    RejectCode.ACCOUNT_HALTED: "Trading on this account is halted.",
    RejectCode.REDUCE_ONLY: "The account may only reduce its positions for now.",
    RejectCode.RESTRICTED_SECURITY: "This instrument is on the restricted list.",
    RejectCode.INVALID_ORDER: "The order is not valid.",
    RejectCode.MAX_ORDER_QUANTITY: "The quantity is above the account's limit per order.",
    RejectCode.MAX_ORDER_NOTIONAL: "The order's value is above the account's limit per order.",
    RejectCode.MAX_POSITION: "It would take the position above the account's limit.",
    RejectCode.MAX_GROSS_EXPOSURE: "It would take the account's exposure above its limit.",
    RejectCode.NO_REFERENCE_PRICE: "There is no reference price to check the order against.",
    RejectCode.PRICE_COLLAR: "The price is too far from the market (price collar).",
    RejectCode.PRICE_BAND: "The price is outside today's price band.",
    RejectCode.DUPLICATE_ORDER: "The same order was just placed: refused as a likely duplicate.",
    RejectCode.ORDER_RATE: "Too many orders in a short time.",
    RejectCode.SELF_TRADE: "It would have traded with your own order.",
    RejectCode.INTRADAY_MARGIN: "Not enough equity for the intraday margin it needs.",
    RejectCode.PATTERN_DAY_TRADER: "The pattern day trader rule refuses another day trade.",
    RejectCode.LOCATE_REQUIRED: "A short sale needs a locate (a borrow) first.",
    RejectCode.NAKED_SHORT: "A short sale without a borrow is not allowed.",
    RejectCode.DAILY_LOSS_LIMIT: "The account reached its daily loss limit.",
    RejectCode.DAILY_ORDER_LIMIT: "The account reached its number of orders for today.",
    RejectCode.DAILY_TRADE_LIMIT: "The account reached its number of trades for today.",
    RejectCode.ERRONEOUS_ORDERS: "Refused as part of a pattern of likely erroneous orders.",
    RejectCode.WINDOW_NOTIONAL: "Too much traded value in a short time.",
    RejectCode.REPEATED_EXECUTION: "Refused as a likely repeated execution.",
    RejectCode.CHECK_ERROR: "A risk check could not be completed; nothing was traded.",
}

#: What each kind of journal entry is, on the cash statement.
ACTIVITY_WORDS: dict[str, str] = {
    "deposit": "Deposit",
    "withdrawal": "Withdrawal",
    "trade": "Trade",
    "fee": "Fee",
}


class UnknownFilterError(ValidationError):
    title = "Unknown order filter"


def reason_in_words(code: str | None) -> str:
    """The reason code in words; a code this page does not know yet (a risk check's, say) is
    still shown, made readable, rather than hidden."""
    if not code:
        return ""
    known = REASON_WORDS.get(code)
    if known is not None:
        return known
    return code.replace("-", " ").replace("_", " ").capitalize() + "."


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    status: str
    size: int
    before: str | None


def _history_query(status: str, size: int, before: str) -> HistoryQuery:
    if status not in STATUS_FILTERS:
        raise UnknownFilterError(f"Filter by one of: {', '.join(STATUS_FILTERS)}.")
    # The page size is bounded: a request cannot make the page read an unbounded history.
    bounded = min(max(size, PAGE_SIZES[0]), PAGE_SIZES[-1])
    return HistoryQuery(status, bounded, before if before and is_id(before) else None)


def _orders(request: Request) -> OrderService:
    service: OrderService = request.app.state.container.orders
    return service


def _summary(
    account: dict[str, Any], positions: list[dict[str, Any]], realised_today: Decimal
) -> dict[str, Any]:
    unrealised = sum((Decimal(p["unrealised_pnl"]) for p in positions), ZERO)
    return {
        **account,
        "unrealised_pnl": unrealised,
        "realised_pnl_today": realised_today,
        # As the risk gate's daily loss limit counts it: what today's fills realised plus what
        # the open positions would realise at the marks now.
        "day_pnl": realised_today + unrealised,
    }


def _read(request: Request, user_id: str, query: HistoryQuery) -> dict[str, Any]:
    container = request.app.state.container
    orders = _orders(request)
    account = orders.account(user_id)
    positions = orders.positions(user_id)
    history = orders.list_orders(
        user_id, limit=query.size, before=query.before, status=STATUS_FILTERS[query.status]
    )
    fills = orders.fills(user_id, limit=FILLS_SHOWN).items
    today = container.clock.now().date()
    with container.db.read() as session:
        # Row-level security on PostgreSQL: a second wall behind the services' owner filters.
        scope_to_user(session, user_id)
        realised_today = orders.day_activity(session, user_id, today).realised_pnl_today
        activity, _ = container.ledger.cash_activity(session, user_id, limit=ACTIVITY_SHOWN)
    for order in history.items:
        order["reason_words"] = reason_in_words(order.get("reason"))
    for fill in fills:
        fill["value"] = Decimal(fill["price"]) * Decimal(fill["quantity"])
    return {
        "summary": _summary(account, positions, realised_today),
        "positions": positions,
        "history": history.items,
        "next_cursor": history.next_cursor,
        "fills": fills,
        "activity": [
            {
                "kind": ACTIVITY_WORDS.get(line.kind, line.kind.capitalize()),
                "reference": line.reference or "",
                "amount": line.amount,
                "at": line.at,
            }
            for line in activity
        ],
    }


@router.get("/portfolio", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def portfolio_page(
    request: Request,
    principal: Principal = Depends(view_account),
    status: str = Query("all", max_length=16),
    size: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=10_000),
    before: str = Query("", max_length=64),
) -> HTMLResponse:
    """The signed-in trader's summary, positions, order history, fills and cash ledger."""
    if principal.user_id is None:
        return render(
            request,
            "portfolio.html",
            {"data": None, "errors": ["This sign-in does not act for a trading account."]},
            status=403,
        )
    query = _history_query(status, size, before)
    data = await run_in_threadpool(_read, request, principal.user_id, query)
    return render(
        request,
        "portfolio.html",
        {
            "data": data,
            "query": query,
            "filters": list(STATUS_FILTERS),
            "page_sizes": PAGE_SIZES,
        },
    )


__all__ = ["router"]
