"""`rampart demo`'s accounts and bot, through the real services and the HTTP API.

The demo trader signs in with the printed password and a TOTP code from the printed key; the demo
bot's API key signs requests that the server accepts; a restart re-keys both; and the bot, a
program using only `rampart.client`, places limit orders near the touch and cancels them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rampart.bootstrap import Container
from rampart.client import RampartClient
from rampart.kernel.clock import FrozenClock
from rampart.simulator.bot import DemoBot
from rampart.simulator.demo import (
    BOT_CASH,
    TRADER_CASH,
    TRADER_EMAIL,
    DemoAccounts,
    banner,
    provision_demo,
)
from rampart.simulator.service import ensure_demo_market
from rampart.trading.db import OrderRow
from rampart.trading.domain import OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Place
from rampart.venue.domain import TimeInForce
from tests.trading.support import fund, locate


@pytest.fixture
def demo(client: TestClient, container: Container) -> DemoAccounts:
    """The demo accounts, on a running app (its lifespan started the order engine)."""
    ensure_demo_market(container.orders, container.uow)
    return provision_demo(container)


def _bot_client(client: TestClient, container: Container, demo: DemoAccounts) -> RampartClient:
    clock = container.clock
    return RampartClient(
        "https://testserver",
        key_id=demo.bot.key_id,
        secret=demo.bot.secret.reveal(),
        http_client=client,
        # The server checks a signature's `created` against its own (frozen) clock.
        now=lambda: clock.time_ns() / 1e9,
    )


def _sign_in_trader(client: TestClient, clock: FrozenClock, password: str, totp: str) -> str:
    first = client.post("/v1/auth/login", json={"email": TRADER_EMAIL, "password": password})
    assert first.status_code == 200, first.text
    pending = first.json()
    assert pending["status"] == "second_factor_required"
    assert "totp" in pending["factors"]
    # Half a minute on, the authenticator shows the next code; that one works too.
    clock.advance(timedelta(seconds=30))
    code = pyotp.TOTP(totp).at(clock.now())
    done = client.post(
        "/v1/auth/login/mfa",
        json={"pending_token": pending["pending_login"], "kind": "totp", "code": code},
    )
    assert done.status_code == 200, done.text
    return str(done.json()["access_token"])


def test_demo_trader_signs_in_with_the_printed_credentials_and_is_funded(
    client: TestClient, container: Container, clock: FrozenClock, demo: DemoAccounts
) -> None:
    trader = demo.trader
    lines = "\n".join(banner(demo, "http://127.0.0.1:8000", "var"))
    assert trader.password.reveal() in lines
    assert trader.totp_secret.reveal() in lines
    # Nowhere but the banner: the values' reprs are redacted.
    assert trader.password.reveal() not in repr(demo)
    assert demo.bot.secret.reveal() not in repr(demo) + lines

    # The password alone does not sign in: the real MFA policy applies to demo users too.
    token = _sign_in_trader(client, clock, trader.password.reveal(), trader.totp_secret.reveal())
    account = client.get("/v1/account", headers={"Authorization": f"Bearer {token}"})
    assert account.status_code == 200, account.text
    assert Decimal(account.json()["cash"]) == TRADER_CASH


def _printed(lines: list[str], label: str) -> str:
    for line in lines:
        if line.strip().startswith(label):
            return line.strip()[len(label) :].split()[0]
    raise AssertionError(f"the banner prints no {label!r}")


def test_the_printed_sign_in_works_when_typed_in_at_once(
    client: TestClient, container: Container, clock: FrozenClock, demo: DemoAccounts
) -> None:
    """Straight from the console to the sign-in page: the printed password and code (or the
    app's code for the printed key, the same one) sign in; nothing was spent by the set-up."""
    lines = banner(demo, "http://127.0.0.1:8000", "var")
    password, key = _printed(lines, "password"), _printed(lines, "TOTP key")
    code = pyotp.TOTP(key).at(clock.now())  # what an authenticator app shows now

    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    sent = client.post(
        "/login",
        data={"email": TRADER_EMAIL, "password": password, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == "/login/second-factor"
    done = client.post(
        "/login/second-factor", data={"kind": "totp", "code": code}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/security"
    assert client.get("/security").status_code == 200
    # The banner prints that very code, for a person without an app at hand.
    assert _printed(lines, "code now") == code

    # The code is single use: replayed at once, it is refused, as any TOTP code.
    client.cookies.clear()
    replay = client.post("/v1/auth/login", json={"email": TRADER_EMAIL, "password": password})
    pending = replay.json()["pending_login"]
    again = client.post(
        "/v1/auth/login/mfa", json={"pending_token": pending, "kind": "totp", "code": code}
    )
    assert again.status_code == 401


def test_demo_bot_key_signs_requests_and_a_restart_rekeys_both_users(
    client: TestClient, container: Container, clock: FrozenClock, demo: DemoAccounts
) -> None:
    with _bot_client(client, container, demo) as bot:
        me = bot.get("/v1/account")
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == demo.bot.user_id
        assert Decimal(me.json()["cash"]) == BOT_CASH

    clock.advance(timedelta(minutes=2))
    again = provision_demo(container)
    # Idempotent: the same accounts, not funded twice; new credentials.
    assert again.trader.user_id == demo.trader.user_id
    assert again.bot.user_id == demo.bot.user_id
    assert again.trader.password.reveal() != demo.trader.password.reveal()
    assert again.bot.key_id != demo.bot.key_id
    assert Decimal(container.orders.account(demo.trader.user_id)["cash"]) == TRADER_CASH

    # The previous run's key and password stop working.
    with _bot_client(client, container, demo) as old:
        assert old.get("/v1/account").status_code == 401
    with _bot_client(client, container, again) as new:
        assert new.get("/v1/account").status_code == 200
    stale = client.post(
        "/v1/auth/login", json={"email": TRADER_EMAIL, "password": demo.trader.password.reveal()}
    )
    assert stale.status_code == 401


def _liquidity(container: Container) -> None:
    """A resting bid and ask in every demo symbol, from another user."""
    fund(container, "maker", "10000000")
    for instrument in container.orders.instruments():
        locate(container, "maker", instrument.symbol)
    engine = container.orders.engine
    for instrument in container.orders.instruments():
        mid = instrument.reference_price
        for side, price in ((OrderSide.BUY, mid - 1), (OrderSide.SELL_SHORT, mid + 1)):
            request = OrderTicket(
                instrument.symbol, side, OrderType.LIMIT, Decimal(100), TimeInForce.GTC, price
            )
            engine.call(Place("maker", "user:maker", request), timeout=10)


def test_demo_bot_places_limit_orders_near_the_touch_and_cancels_them(
    client: TestClient, container: Container, demo: DemoAccounts
) -> None:
    _liquidity(container)
    ticks = iter(range(1000))
    with _bot_client(client, container, demo) as api:
        bot = DemoBot(api, max_open=3, order_ttl=5.0, seed=7, monotonic=lambda: float(next(ticks)))
        for _ in range(12):
            bot.step()
        assert bot.placed >= 3
        assert bot.cancelled >= 1
        assert bot.errors == 0

        with container.db.read() as session:
            orders = list(
                session.scalars(select(OrderRow).where(OrderRow.user_id == demo.bot.user_id))
            )
        limits = [o for o in orders if o.type == "limit"]
        assert len(limits) == bot.placed
        assert any(o.status == "cancelled" and o.reason == "user-cancelled" for o in orders)
        # Near the touch: within a few ticks of the maker's quotes, on the passive side.
        references = {i.symbol: i.reference_price for i in container.orders.instruments()}
        for order in limits:
            assert order.limit_price is not None
            distance = abs(order.limit_price - references[order.symbol])
            assert Decimal(1) <= distance <= Decimal("1.03")
        open_count = sum(o.status in ("accepted", "partially_filled") for o in orders)
        assert open_count <= 3

        # On stop it leaves nothing resting.
        bot.cancel_everything()
    with container.db.read() as session:
        still_open = session.scalars(
            select(OrderRow).where(
                OrderRow.user_id == demo.bot.user_id,
                OrderRow.status.in_(["accepted", "partially_filled"]),
            )
        ).all()
    assert still_open == []


def test_demo_staff_enrol_from_the_printed_links_and_then_halt(
    client: TestClient, container: Container, demo: DemoAccounts
) -> None:
    from tests.mfa.authenticator import SoftAuthenticator
    from tests.support.staff import sign_in_with_key

    lines = "\n".join(banner(demo, "http://127.0.0.1:8000", "var"))
    admin = next(s for s in demo.staff if s.role == "ADMIN")
    assert {s.role for s in demo.staff} == {"ADMIN", "COMPLIANCE"}
    assert admin.enrolment_url.reveal() in lines
    assert admin.enrolment_url.reveal() not in repr(demo)
    token = admin.enrolment_url.reveal().rsplit("token=", 1)[1]
    key = SoftAuthenticator()
    begin = client.post("/v1/auth/staff-enrolment/challenge", json={"token": token}).json()
    origin = container.mfa.relying_party.origin
    password = "a long passphrase for the desk 71"
    enrolled = client.post(
        "/v1/auth/staff-enrolment",
        json={
            "token": token,
            "password": password,
            "challenge_id": begin["challenge_id"],
            "credential": key.register(begin["options"], origin=origin),
        },
    )
    assert enrolled.status_code == 201, enrolled.text
    tokens = sign_in_with_key(client, admin.email, password, key)
    halted = client.post(
        "/v1/risk/halts",
        json={"scope": "symbol", "target": "ACME", "reason": "demo"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert halted.status_code == 201, halted.text
