"""The home page and the market page.

`/` (public) says what Rampart is and, for a signed-in user, shows their account: cash, buying
power, positions and open orders. `/market` (signed in, `market:data`) shows each instrument's
touch, last trade, a small depth view and recent trades, kept live by `static/market.js` over the
WebSocket stream `/v1/stream` (the session cookie authenticates it; the server checks the Origin),
falling back to polling `/v1/market/{symbol}/book`. A trader places and cancels limit orders with
plain forms (they work without JavaScript), posting the session's CSRF token to routes that call
the order service exactly as the JSON API does: the same permissions, rate limiter and audit.

After a change the browser is redirected back to `/market?order=<id>` (post/redirect/get: a reload
never re-sends the order), and the page shows that order's state, read as the user's own order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rampart.access.api import authenticate, carried_decisions, requires
from rampart.access.domain import Permission, Principal
from rampart.kernel.context import current_context
from rampart.kernel.errors import RampartError, UnauthorizedError
from rampart.kernel.ids import is_id, new_id
from rampart.kernel.money import MoneyError, to_decimal
from rampart.platform.http.access import public
from rampart.platform.http.inputs import Id, Text
from rampart.platform.http.problems import status_for
from rampart.ratelimit.api import rate_limit
from rampart.risk.overview import account_risk
from rampart.trading.domain import InvalidOrderError, OrderSide, OrderTicket, OrderType
from rampart.trading.service import OrderService
from rampart.venue.domain import BookSnapshot, TimeInForce
from rampart.web.pages.account import page_user
from rampart.web.pages.templating import render

router = APIRouter(include_in_schema=False)

#: Depth levels shown per side, and open orders listed, on the pages.
DEPTH = 5
OPEN_ORDERS_SHOWN = 50
RECENT_FILLS_SHOWN = 10

view_market = requires(Permission.MARKET_DATA)
place = requires(Permission.ORDER_PLACE, carried=True)
cancel = requires(Permission.ORDER_CANCEL, carried=True)

Field = Annotated[Text, Form(max_length=64)]


def _orders(request: Request) -> OrderService:
    service: OrderService = request.app.state.container.orders
    return service


def _fmt(value: Decimal | None) -> str:
    from rampart.trading.domain import fmt

    return fmt(value) or ""


def _decimals(tick: Decimal) -> int:
    exponent = tick.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _price(value: Decimal | None, decimals: int) -> str:
    """A price with at least the tick's decimal places (18.2 -> 18.20), never rounded."""
    if value is None:
        return ""
    text = _fmt(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(decimals, '0')}" if decimals else text


def _instrument_views(orders: OrderService) -> list[dict[str, Any]]:
    views = []
    for instrument in orders.instruments():
        book: BookSnapshot = orders.book(instrument.symbol)
        places = _decimals(instrument.tick_size)
        views.append(
            {
                "symbol": instrument.symbol,
                "name": instrument.name,
                "status": instrument.status.value,
                "decimals": places,
                "bid": _price(book.best_bid, places),
                "bid_size": _fmt(book.bids[0].quantity) if book.bids else "",
                "ask": _price(book.asks[0].price, places) if book.asks else "",
                "ask_size": _fmt(book.asks[0].quantity) if book.asks else "",
                "last": _price(book.last_price or instrument.reference_price, places),
                "traded": book.last_price is not None,
                "bids": [(_price(lv.price, places), _fmt(lv.quantity)) for lv in book.bids[:DEPTH]],
                "asks": [(_price(lv.price, places), _fmt(lv.quantity)) for lv in book.asks[:DEPTH]],
            }
        )
    return views


def _account_summary(orders: OrderService, user_id: str) -> dict[str, Any]:
    return {
        "account": orders.account(user_id),
        "positions": orders.positions(user_id),
        "open_orders": orders.list_orders(user_id, status="open", limit=OPEN_ORDERS_SHOWN).items,
    }


# --- home ------------------------------------------------------------------------------------
async def _optional_user(request: Request) -> Principal | None:
    try:
        return await authenticate(request)
    except UnauthorizedError:
        return None


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(public)])
async def home(request: Request) -> HTMLResponse:
    """What Rampart is; for a signed-in user with `account:view`, their account at a glance."""
    principal = await _optional_user(request)
    summary: dict[str, Any] | None = None
    if principal is not None and principal.user_id and principal.can(Permission.ACCOUNT_VIEW):
        container = request.app.state.container
        # The page is public, so no route dependency recorded this read: record it here, as
        # `requires()` would, before the account is shown.
        recorder = getattr(container, "access_recorder", None)
        if recorder is not None:
            await recorder.record(principal, Permission.ACCOUNT_VIEW, True, "/")
        summary = await run_in_threadpool(_account_summary, _orders(request), principal.user_id)
    return render(
        request,
        "home.html",
        {
            "signed_in": principal is not None,
            "summary": summary,
            "can_trade": principal is not None and principal.can(Permission.MARKET_DATA),
        },
    )


# --- market ----------------------------------------------------------------------------------
async def _market(
    request: Request,
    principal: Principal,
    *,
    order_id: str | None = None,
    errors: list[str] | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    orders = _orders(request)
    user_id = principal.user_id

    container = request.app.state.container
    risk: dict[str, Any] | None = None

    def read() -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None, Any]:
        nonlocal risk
        instruments = _instrument_views(orders)
        if user_id is None or not principal.can(Permission.ACCOUNT_VIEW):
            return instruments, None, None, []
        summary = _account_summary(orders, user_id)
        with container.db.read() as session:
            risk = account_risk(container.risk_gate, session, user_id)
        fills = orders.fills(user_id, limit=RECENT_FILLS_SHOWN).items
        shown = None
        if order_id and is_id(order_id):
            try:
                shown = orders.get(user_id, order_id)
            except RampartError:
                shown = None  # not this user's order (or no such order): show nothing
        return instruments, summary, shown, fills

    instruments, summary, shown, fills = await run_in_threadpool(read)
    return render(
        request,
        "market.html",
        {
            "instruments": instruments,
            "summary": summary,
            "risk": risk,
            "fills": fills,
            "shown_order": shown,
            "can_place": principal.can(Permission.ORDER_PLACE),
            "can_cancel": principal.can(Permission.ORDER_CANCEL),
            "client_order_id": new_id(),
            "form": form or {},
            "errors": errors or [],
            "depth": DEPTH,
        },
        status=status,
    )


@router.get("/market", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def market_page(
    request: Request, principal: Principal = Depends(view_market), order: str = ""
) -> HTMLResponse:
    return await _market(request, principal, order_id=order or None)


def _order_request(
    symbol: str, side: str, quantity: str, limit_price: str, time_in_force: str, coid: str
) -> OrderTicket:
    try:
        order_side = OrderSide(side)
        tif = TimeInForce(time_in_force)
    except ValueError:
        raise InvalidOrderError("Choose a side and a time in force from the lists.") from None
    try:
        qty = to_decimal(quantity.strip())
        price = to_decimal(limit_price.strip())
    except MoneyError:
        raise InvalidOrderError("Give the quantity and the limit price as numbers.") from None
    return OrderTicket(
        symbol=symbol.strip().upper()[:16],
        side=order_side,
        type=OrderType.LIMIT,
        quantity=qty,
        time_in_force=tif,
        limit_price=price,
        client_order_id=coid[:64] or None,
    )


@router.post(
    "/market/orders",
    dependencies=[Depends(rate_limit("user.orders", after=place))],
)
async def place_order(
    request: Request,
    symbol: Field,
    side: Field,
    quantity: Field,
    limit_price: Field,
    time_in_force: Field = "day",
    client_order_id: Field = "",
    principal: Principal = Depends(place),
) -> Response:
    """Place a limit order from the market page's form (CSRF-checked by the session)."""
    form = {"symbol": symbol, "side": side, "quantity": quantity, "limit_price": limit_price}
    try:
        order = _order_request(symbol, side, quantity, limit_price, time_in_force, client_order_id)
        if principal.user_id is None:
            raise InvalidOrderError("This sign-in does not act for a trading account.")
        result = await _orders(request).place(
            principal.user_id,
            principal.actor,
            order,
            context=current_context(),
            carried=carried_decisions(request),
            # The signed-in user's own permissions reach the pre-trade checks, as from the API.
            permissions=principal.permissions,
            credential_id=principal.credential_id,
        )
    except RampartError as exc:
        # A refused request re-shows the page with the reason (a *rejected* order is no error:
        # it exists, with its reason code, and is shown after the redirect).
        return await _market(
            request,
            principal,
            errors=[exc.detail or exc.title],
            status=status_for(exc),
            form=form,
        )
    return RedirectResponse(f"/market?order={result.order['id']}", status_code=303)


@router.post("/market/orders/{order_id:id}/cancel")
async def cancel_order(
    order_id: Id, request: Request, principal: Principal = Depends(cancel)
) -> Response:
    """Cancel one of the user's own open orders (another user's order is 'not found')."""
    try:
        if principal.user_id is None:
            raise InvalidOrderError("This sign-in does not act for a trading account.")
        view = await _orders(request).cancel(
            principal.user_id,
            principal.actor,
            order_id,
            context=current_context(),
            carried=carried_decisions(request),
        )
    except RampartError as exc:
        return await _market(
            request, principal, errors=[exc.detail or exc.title], status=status_for(exc)
        )
    return RedirectResponse(f"/market?order={view['id']}", status_code=303)


__all__ = ["router"]
