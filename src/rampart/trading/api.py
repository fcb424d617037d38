"""The trading API: orders, positions, account, instruments, book, and the WebSocket stream.

Handlers are thin: validate, hand the command to the order engine, await the committed result.
Amounts travel as decimal strings, never JSON floats.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from rampart.access.api import carried_decisions, credential_revoked, requires
from rampart.access.domain import Permission, Principal
from rampart.kernel.context import current_context
from rampart.kernel.errors import ValidationError
from rampart.kernel.money import AMOUNT_PLACES, MoneyError, to_decimal
from rampart.platform.http.inputs import Id, Text
from rampart.platform.logging import get_logger
from rampart.ratelimit.api import rate_limit
from rampart.trading.domain import (
    MAX_PRICE,
    MAX_QUANTITY,
    InvalidOrderError,
    OrderSide,
    OrderTicket,
    OrderType,
    fmt,
)
from rampart.trading.service import MAX_PAGE, OrderService
from rampart.trading.stream import MAX_SYMBOLS_PER_SUBSCRIPTION
from rampart.venue.domain import TimeInForce

log = get_logger(__name__)
router = APIRouter(tags=["trading"])

# One object per route, shared with its rate limiter (`after=`), so the access check runs once.
_may_place = requires(Permission.ORDER_PLACE, carried=True)
_may_modify = requires(Permission.ORDER_MODIFY, carried=True)


def _amount_field(maximum: Decimal) -> Any:
    """An order amount's schema: what the engine accepts (`trading.domain.check_amounts`)."""
    return Field(
        pattern=rf"^[0-9]{{1,{AMOUNT_PLACES}}}(\.[0-9]{{1,{AMOUNT_PLACES}}})?$",
        max_length=2 * AMOUNT_PLACES + 1,
        description=(
            f"A decimal string, above 0 and at most {fmt(maximum)}, with at most "
            f"{AMOUNT_PLACES} digits before the point and {AMOUNT_PLACES} after it. The "
            "instrument's tick size (prices) and lot size (quantities) apply too: an amount "
            "off them makes a rejected order (`price-not-on-tick`, `quantity-not-on-lot`). So "
            "do its own limits, where it has them (`max_quantity`, `max_price`, `min_price` in "
            "`GET /v1/instruments`): an amount beyond them is refused with a 422 "
            "`instrument-limit-exceeded` problem naming the limit and the figure."
        ),
        json_schema_extra={"x-maximum": fmt(maximum), "x-decimal-places": AMOUNT_PLACES},
    )


def _at_most(maximum: Decimal) -> AfterValidator:
    def within(value: str) -> str:
        # The pattern has made it a decimal of at most 8 + 8 digits: nothing here can raise.
        if not 0 < Decimal(value) <= maximum:
            raise PydanticCustomError(
                "amount_out_of_range",
                "must be above 0 and at most {maximum}",
                {"maximum": fmt(maximum)},
            )
        return value

    return AfterValidator(within)


Quantity = Annotated[str, _amount_field(MAX_QUANTITY), _at_most(MAX_QUANTITY)]
Price = Annotated[str, _amount_field(MAX_PRICE), _at_most(MAX_PRICE)]
Symbol = Annotated[
    str, StringConstraints(min_length=1, max_length=16, pattern=r"^[A-Z][A-Z0-9.]*$")
]


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return to_decimal(value)
    except MoneyError:
        raise InvalidOrderError(f"{name} is not a decimal number.") from None


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    side: OrderSide
    type: OrderType = OrderType.LIMIT
    quantity: Quantity
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Price | None = None
    stop_price: Price | None = None
    client_order_id: Annotated[Text | None, Field(max_length=64)] = None

    @field_validator("quantity", "limit_price", "stop_price", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        # A JSON float has already lost precision; integers are exact and accepted.
        if isinstance(value, (bool, float)):
            raise ValueError("give amounts as decimal strings, not JSON numbers with a fraction")
        return str(value) if isinstance(value, int) else value

    def to_request(self) -> OrderTicket:
        quantity = _decimal(self.quantity, "quantity")
        assert quantity is not None
        return OrderTicket(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            quantity=quantity,
            time_in_force=self.time_in_force,
            limit_price=_decimal(self.limit_price, "limit_price"),
            stop_price=_decimal(self.stop_price, "stop_price"),
            client_order_id=self.client_order_id,
        )


class OrderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Quantity | None = None
    limit_price: Price | None = None
    stop_price: Price | None = None

    _no_floats = field_validator("quantity", "limit_price", "stop_price", mode="before")(
        OrderIn._no_floats.__func__  # type: ignore[attr-defined]
    )


class OrderOut(BaseModel):
    id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: str
    limit_price: str | None
    stop_price: str | None
    status: str
    filled_quantity: str
    average_price: str | None
    reason: str | None
    version: int
    created_at: str
    updated_at: str


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class PositionOut(BaseModel):
    symbol: str
    quantity: str
    average_cost: str
    cost_basis: str
    realised_pnl: str
    mark_price: str | None
    market_value: str
    unrealised_pnl: str


class AccountOut(BaseModel):
    user_id: str
    cash: str
    reserved: str
    #: Of `reserved`: what short positions hold (their value plus the initial margin on it).
    short_collateral: str
    buying_power: str
    market_value: str
    equity: str


class InstrumentOut(BaseModel):
    symbol: str
    name: str
    tick_size: str
    lot_size: str
    status: str
    reference_price: str
    easy_to_borrow: bool
    threshold_security: bool
    max_quantity: str | None = Field(
        description="The largest quantity one order may have (null: the platform's 10,000,000)."
    )
    max_price: str | None = Field(
        description="The highest limit or stop price an order may give (null: 10,000,000)."
    )
    min_price: str | None = Field(
        description="The lowest limit or stop price an order may give (null: any above 0)."
    )


class LevelOut(BaseModel):
    price: str
    quantity: str
    orders: int


class BookOut(BaseModel):
    symbol: str
    bids: list[LevelOut]
    asks: list[LevelOut]
    last_price: str | None


class NoAccountError(ValidationError):
    code = "no-trading-account"
    title = "This principal does not act for a user account"


def _service(request: Request) -> OrderService:
    service: OrderService = request.app.state.container.orders
    return service


def _user(principal: Principal) -> str:
    if principal.user_id is None:
        raise NoAccountError
    return principal.user_id


def _carry(request: Request) -> dict[str, Any]:
    # The access decision goes into the order engine's batch: one commit per batch of orders
    # records both, instead of a separate durable audit append per request before the handler.
    return {"context": current_context(), "carried": carried_decisions(request)}


def _json(body: Any, status: int = 200) -> Response:
    # The dicts are built from Decimals as strings already: orjson writes them directly.
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "/v1/orders",
    status_code=201,
    response_model=OrderOut,
    # Order entry is throttled per user and per API key, failing closed (429 / 503).
    dependencies=[Depends(rate_limit("user.orders", "key.orders", after=_may_place))],
)
async def place_order(
    body: OrderIn,
    request: Request,
    principal: Principal = Depends(_may_place),
) -> Response:
    """Place an order. A rejected order is still created (status `rejected`, with a `reason`).

    Idempotent with `client_order_id`: a retry returns the existing order with 200."""
    result = await _service(request).place(
        _user(principal),
        principal.actor,
        body.to_request(),
        permissions=principal.permissions,
        credential_id=principal.credential_id,
        **_carry(request),
    )
    return _json(result.order, 201 if result.created else 200)


@router.get("/v1/orders", response_model=OrderPage)
async def list_orders(
    request: Request,
    principal: Principal = Depends(requires(Permission.ACCOUNT_VIEW)),
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[Id | None, Query()] = None,
    status: Annotated[
        Literal[
            "open", "accepted", "partially_filled", "filled", "cancelled", "rejected", "expired"
        ]
        | None,
        Query(),
    ] = None,
    symbol: Annotated[Symbol | None, Query()] = None,
) -> Response:
    page = _service(request).list_orders(
        _user(principal), limit=limit, before=cursor, status=status, symbol=symbol
    )
    return _json({"items": page.items, "next_cursor": page.next_cursor})


@router.get("/v1/orders/{order_id:id}", response_model=OrderOut)
async def get_order(
    order_id: Id,
    request: Request,
    principal: Principal = Depends(requires(Permission.ACCOUNT_VIEW)),
) -> Response:
    return _json(_service(request).get(_user(principal), order_id))


@router.patch(
    "/v1/orders/{order_id:id}",
    response_model=OrderOut,
    dependencies=[Depends(rate_limit("user.orders", "key.orders", after=_may_modify))],
)
async def modify_order(
    order_id: Id,
    body: OrderPatch,
    request: Request,
    principal: Principal = Depends(_may_modify),
) -> Response:
    """Change price or quantity. A price change or a larger quantity loses time priority; a
    smaller quantity keeps it."""
    if body.quantity is None and body.limit_price is None and body.stop_price is None:
        raise InvalidOrderError("Give a new quantity, limit_price or stop_price.")
    view = await _service(request).modify(
        _user(principal),
        principal.actor,
        order_id,
        quantity=_decimal(body.quantity, "quantity"),
        limit_price=_decimal(body.limit_price, "limit_price"),
        stop_price=_decimal(body.stop_price, "stop_price"),
        permissions=principal.permissions,
        credential_id=principal.credential_id,
        **_carry(request),
    )
    return _json(view)


@router.delete("/v1/orders/{order_id:id}", response_model=OrderOut)
async def cancel_order(
    order_id: Id,
    request: Request,
    principal: Principal = Depends(requires(Permission.ORDER_CANCEL, carried=True)),
) -> Response:
    view = await _service(request).cancel(
        _user(principal), principal.actor, order_id, **_carry(request)
    )
    return _json(view)


@router.delete("/v1/orders", response_model=list[OrderOut])
async def cancel_all_orders(
    request: Request,
    principal: Principal = Depends(requires(Permission.ORDER_CANCEL, carried=True)),
    symbol: Annotated[Symbol | None, Query()] = None,
) -> Response:
    """Cancel every open order (of one symbol, when given)."""
    views = await _service(request).cancel_all(
        _user(principal), principal.actor, symbol, **_carry(request)
    )
    return _json(views)


@router.get("/v1/positions", response_model=list[PositionOut])
async def positions(
    request: Request, principal: Principal = Depends(requires(Permission.ACCOUNT_VIEW))
) -> Response:
    return _json(_service(request).positions(_user(principal)))


@router.get("/v1/account", response_model=AccountOut)
async def account(
    request: Request, principal: Principal = Depends(requires(Permission.ACCOUNT_VIEW))
) -> Response:
    return _json(_service(request).account(_user(principal)))


@router.get("/v1/instruments", response_model=list[InstrumentOut])
async def instruments(
    request: Request, principal: Principal = Depends(requires(Permission.MARKET_DATA))
) -> Response:
    return _json(
        [
            {
                "symbol": i.symbol,
                "name": i.name,
                "tick_size": fmt(i.tick_size),
                "lot_size": fmt(i.lot_size),
                "status": i.status.value,
                "reference_price": fmt(i.reference_price),
                "easy_to_borrow": i.easy_to_borrow,
                "threshold_security": i.threshold_security,
                "max_quantity": fmt(i.max_quantity),
                "max_price": fmt(i.max_price),
                "min_price": fmt(i.min_price),
            }
            for i in _service(request).instruments()
        ]
    )


@router.get("/v1/market/{symbol}/book", response_model=BookOut)
async def book(
    symbol: Symbol,
    request: Request,
    principal: Principal = Depends(requires(Permission.MARKET_DATA)),
    depth: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Response:
    snap = _service(request).book(symbol)

    def levels(items: Any) -> list[dict[str, Any]]:
        return [
            {"price": fmt(lv.price), "quantity": fmt(lv.quantity), "orders": lv.orders}
            for lv in items[:depth]
        ]

    return _json(
        {
            "symbol": snap.symbol,
            "bids": levels(snap.bids),
            "asks": levels(snap.asks),
            "last_price": fmt(snap.last_price),
        }
    )


@router.websocket("/v1/stream")
async def stream(
    websocket: WebSocket, principal: Principal = Depends(requires(Permission.MARKET_DATA))
) -> None:
    """Order updates and fills of the principal's own account (with `account:view`), and quotes
    and trades of subscribed symbols: send `{"op": "subscribe", "symbols": ["ACME"]}`."""
    container = websocket.app.state.container
    hub = container.orders.engine.hub
    await websocket.accept()
    private = principal.user_id is not None and principal.can(Permission.ACCOUNT_VIEW)
    sub = hub.subscribe(principal.user_id if private and principal.user_id else "")
    known = {i.symbol for i in container.orders.instruments()}

    async def sender() -> None:
        while True:
            getter = asyncio.ensure_future(sub.queue.get())
            closed = asyncio.ensure_future(sub.closed.wait())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                getter.cancel()
                return
            closed.cancel()
            await websocket.send_text(orjson.dumps(getter.result()).decode())

    async def receiver() -> None:
        while True:
            raw = await websocket.receive_text()
            if len(raw) > 4096:
                await websocket.send_text('{"type":"error","data":{"code":"message-too-large"}}')
                continue
            try:
                message = orjson.loads(raw)
                op = message["op"]
                symbols = [str(s)[:16] for s in message.get("symbols", [])][
                    :MAX_SYMBOLS_PER_SUBSCRIPTION
                ]
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                await websocket.send_text('{"type":"error","data":{"code":"bad-message"}}')
                continue
            if op == "subscribe":
                unknown = [s for s in symbols if s not in known]
                wanted = sub.symbols | {s for s in symbols if s in known}
                sub.symbols = set(list(wanted)[:MAX_SYMBOLS_PER_SUBSCRIPTION])
                await websocket.send_text(
                    orjson.dumps(
                        {
                            "type": "subscribed",
                            "data": {"symbols": sorted(sub.symbols), "unknown": unknown},
                        }
                    ).decode()
                )
                for symbol in symbols:
                    snap = container.orders.engine.snapshot(symbol)
                    if snap is not None and symbol in sub.symbols:
                        await websocket.send_text(
                            orjson.dumps(
                                {
                                    "type": "book",
                                    "data": {
                                        "symbol": symbol,
                                        "bids": [
                                            [fmt(lv.price), fmt(lv.quantity)] for lv in snap.bids
                                        ],
                                        "asks": [
                                            [fmt(lv.price), fmt(lv.quantity)] for lv in snap.asks
                                        ],
                                    },
                                }
                            ).decode()
                        )
            elif op == "unsubscribe":
                sub.symbols = sub.symbols - set(symbols)
            else:
                await websocket.send_text('{"type":"error","data":{"code":"unknown-op"}}')

    await websocket.send_text(
        orjson.dumps({"type": "welcome", "data": {"private": private}}).decode()
    )

    async def guard() -> None:
        # Logout, lock, password reset or a revoked key end the stream within about
        # `stream_recheck_seconds`; each look is a cached lookup, a read at most once per
        # `revocation_cache_seconds`.
        while True:
            await asyncio.sleep(recheck)
            try:
                if await credential_revoked(websocket, principal):
                    return
            except Exception:
                log.warning("stream: could not check the credential", exc_info=True)

    recheck = container.settings.trading.stream_recheck_seconds
    watcher = asyncio.ensure_future(guard())
    tasks = [asyncio.ensure_future(sender()), asyncio.ensure_future(receiver()), watcher]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
        hub.unsubscribe(sub)
        # Cancel-on-disconnect (rampart.risk): if this credential asked for it, its account's
        # open orders are cancelled now that the connection is gone.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_connection_dropped, container, principal.credential_id)
        revoked = watcher.done() and not watcher.cancelled() and watcher.exception() is None
        if (sub.dropped or revoked) and websocket.client_state is WebSocketState.CONNECTED:
            # 1008: policy violation - the client did not keep up with its stream, or its
            # credential no longer counts.
            with contextlib.suppress(Exception):
                await websocket.close(
                    code=1008, reason="credential revoked" if revoked else "slow consumer"
                )


def _connection_dropped(container: Any, credential_id: str | None) -> None:
    with container.uow() as uow:
        if container.risk.on_disconnect(uow, credential_id):
            uow.commit()
