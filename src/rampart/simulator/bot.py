"""The demo bot: an ordinary user program trading through `rampart.client` over HTTP.

It knows nothing of the server's insides (it imports only `rampart.client` and the standard
library), so it exercises exactly what a customer's bot would: signed requests (RFC 9421) with an
API key, the public order API, problem+json errors and rate limits. `rampart demo` runs one in a
thread against its own server; run it yourself against any Rampart with

    RAMPART_KEY_ID=... RAMPART_KEY_SECRET=rmp_test_... python -m rampart.simulator.bot --url URL

What it does: every `1/rate` seconds one action, either placing a small limit order a few ticks
behind the touch (it rests in the book, and may get filled when the market comes to it) or
cancelling its oldest resting order once that is `order_ttl` seconds old or more than `max_open`
are resting. It never holds more than `max_open` orders, never sells more than it holds, and on
start and stop cancels whatever it left in the book.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from rampart.client import RampartClient, RampartError

log = logging.getLogger("rampart.demo.bot")

#: Open order states: the bot keeps tracking an order while it is in one of these.
OPEN = frozenset({"accepted", "partially_filled"})
#: Actions per second, at most (the server's own per-key limit is far higher).
MAX_RATE = 20.0


@dataclass
class _Resting:
    id: str
    symbol: str
    side: str
    placed_at: float


@dataclass(frozen=True)
class _Market:
    symbol: str
    tick: Decimal
    lot: Decimal
    reference: Decimal


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


class DemoBot:
    """A small market-participant bot. `step()` performs one action; `run()` loops until stopped.

    All amounts travel as decimal strings, as the API requires.
    """

    def __init__(
        self,
        client: RampartClient,
        *,
        rate: float = 2.0,
        max_open: int = 4,
        order_ttl: float = 6.0,
        seed: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate is in (0, {MAX_RATE}] actions per second")
        self._client = client
        self._interval = 1.0 / rate
        self._max_open = max(1, max_open)
        self._ttl = order_ttl
        self._random = random.Random(seed)
        self._now = monotonic
        self._markets: list[_Market] = []
        self._resting: list[_Resting] = []
        self._held: dict[str, Decimal] = {}
        self._actions = 0
        self.placed = 0
        self.cancelled = 0
        self.errors = 0

    # --- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Wait for the server, then act every interval until `stop` is set; then clean up."""
        while not stop.is_set() and not self._server_up():
            stop.wait(0.5)
        while not stop.wait(self._interval):
            try:
                self.step()
            except RampartError as exc:
                self.errors += 1
                if exc.status == 429:
                    retry = _retry_after(exc)
                    log.info("demo bot: rate limited, waiting %.1f s", retry)
                    stop.wait(retry)
                else:
                    log.info("demo bot: request refused (%s %s)", exc.status, exc.code)
            except httpx.HTTPError as exc:
                # The server is restarting or shutting down: back off and try again.
                self.errors += 1
                log.info("demo bot: cannot reach the server (%s)", type(exc).__name__)
                stop.wait(1.0)
        self.cancel_everything()
        log.info(
            "demo bot stopped: %d orders placed, %d cancelled, %d requests refused or failed",
            self.placed,
            self.cancelled,
            self.errors,
        )

    def _server_up(self) -> bool:
        try:
            return self._client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def cancel_everything(self) -> None:
        """Cancel every open order of the key's account (best effort: the server may be gone)."""
        try:
            cancelled = self._call("DELETE", "/v1/orders")
            self.cancelled += len(cancelled)
        except (RampartError, httpx.HTTPError):
            return
        finally:
            self._resting.clear()

    # --- one action ----------------------------------------------------------------------------
    def step(self) -> None:
        """One action: load the instruments (first time), then cancel one order or place one."""
        if not self._markets:
            self._load_markets()
            # Whatever a previous run left resting is not tracked: start from a clean book.
            self.cancel_everything()
            if not self._markets:
                return
        self._actions += 1
        if self._actions % 10 == 1:
            self._load_positions()
            if self._actions > 1:
                log.info(
                    "demo bot: %d orders placed, %d cancelled, %d resting",
                    self.placed,
                    self.cancelled,
                    len(self._resting),
                )
        now = self._now()
        oldest = self._resting[0] if self._resting else None
        if oldest is not None and (
            len(self._resting) >= self._max_open or now - oldest.placed_at >= self._ttl
        ):
            self._cancel(oldest)
        else:
            self._place(self._random.choice(self._markets))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, path, raise_for_problem=True, **kwargs)
        return response.json()

    def _load_markets(self) -> None:
        self._markets = []
        for item in self._call("GET", "/v1/instruments"):
            tick, lot, ref = (
                _dec(item.get(k)) for k in ("tick_size", "lot_size", "reference_price")
            )
            if item.get("status") == "active" and tick and lot and ref:
                self._markets.append(_Market(str(item["symbol"]), tick, lot, ref))

    def _load_positions(self) -> None:
        self._held = {
            str(p["symbol"]): _dec(p["quantity"]) or Decimal(0)
            for p in self._call("GET", "/v1/positions")
        }

    def _place(self, market: _Market) -> None:
        book = self._call("GET", f"/v1/market/{market.symbol}/book", params={"depth": 1})
        bid = _dec(book["bids"][0]["price"]) if book.get("bids") else None
        ask = _dec(book["asks"][0]["price"]) if book.get("asks") else None
        last = _dec(book.get("last_price")) or market.reference
        quantity = market.lot * self._random.randint(1, 5)
        # Sell only out of what it holds, net of the sells already resting in that symbol.
        selling = sum(1 for r in self._resting if r.symbol == market.symbol and r.side == "sell")
        can_sell = self._held.get(market.symbol, Decimal(0)) >= quantity * (selling + 1)
        side = "sell" if can_sell and self._random.random() < 0.5 else "buy"
        behind = market.tick * self._random.randint(0, 3)
        if side == "buy":
            price = (bid if bid is not None else last - market.tick) - behind
        else:
            price = (ask if ask is not None else last + market.tick) + behind
        if price <= 0:
            return
        order = self._call(
            "POST",
            "/v1/orders",
            json={
                "symbol": market.symbol,
                "side": side,
                "type": "limit",
                "quantity": str(quantity),
                "limit_price": str(price),
                "time_in_force": "day",
                # A retry of this very request (after a timeout) cannot place a second order.
                "client_order_id": f"demo-bot-{uuid.uuid4().hex[:20]}",
            },
        )
        self.placed += 1
        if order.get("status") in OPEN:
            self._resting.append(_Resting(str(order["id"]), market.symbol, side, self._now()))
        elif order.get("status") == "rejected":
            log.info("demo bot: order rejected (%s)", order.get("reason"))
            if order.get("reason") == "insufficient-position":
                # Its view of the position was stale (fills since the last look): look again.
                self._load_positions()

    def _cancel(self, resting: _Resting) -> None:
        self._resting.remove(resting)
        try:
            self._call("DELETE", f"/v1/orders/{resting.id}")
        except RampartError as exc:
            # Filled (or cancelled) in the meantime: nothing left to cancel.
            if exc.status not in (404, 409):
                raise
            return
        self.cancelled += 1


def _retry_after(exc: RampartError) -> float:
    body = exc.body if isinstance(exc.body, dict) else {}
    try:
        return min(10.0, max(0.5, float(body.get("retry_after", 1.0))))
    except (TypeError, ValueError):
        return 1.0


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - a console program
    parser = argparse.ArgumentParser(description="A demo bot trading through rampart.client.")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the Rampart base URL")
    parser.add_argument("--rate", type=float, default=2.0, help="actions per second")
    args = parser.parse_args(argv)
    # The secret comes from the environment, never the command line (shell history, `ps`).
    key_id, secret = os.environ.get("RAMPART_KEY_ID"), os.environ.get("RAMPART_KEY_SECRET")
    if not key_id or not secret:
        parser.error("set RAMPART_KEY_ID and RAMPART_KEY_SECRET")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with RampartClient(args.url, key_id=key_id, secret=secret) as client:
        bot = DemoBot(client, rate=args.rate)
        bot.run(stop)
    print(f"placed {bot.placed}, cancelled {bot.cancelled}, errors {bot.errors}")


if __name__ == "__main__":  # pragma: no cover
    main()
