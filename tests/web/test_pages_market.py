"""The home and market pages in a browser's shoes: sign-in required, live data wiring, and placing
and cancelling a limit order with forms (CSRF-checked, the user's own orders only)."""

from __future__ import annotations

import re
from decimal import Decimal

from fastapi.testclient import TestClient
from tests.identity.support import PASSWORD, verified_user
from tests.trading.support import enrol_totp, fund, set_limits

from rampart.bootstrap import Container
from rampart.simulator.service import ensure_demo_market
from rampart.trading.domain import OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Place
from rampart.venue.domain import TimeInForce

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
EMAIL = "mo@example.com"


def _csrf(text: str) -> str:
    match = CSRF_FIELD.search(text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _user_id(container: Container, email: str) -> str:
    with container.db.read() as session:
        row = container.identity.accounts.by_email(session, email)
        assert row is not None
        return str(row.id)


def _signed_in_trader(client: TestClient, container: Container, email: str = EMAIL) -> str:
    ensure_demo_market(container.orders, container.uow)
    verified_user(client, container, email)
    user_id = _user_id(container, email)
    with container.uow() as uow:
        container.ledger.deposit(uow, user_id, "50000")
        uow.commit()
    page = client.get("/login")
    signed = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    # Trading needs a second factor (`mfa.required_for_trading`, checked on every order by the
    # risk gate): enrolled after the password sign-in, so this session stays as it is.
    enrol_totp(container, user_id)
    return user_id


def _order_form(page: str, **values: str) -> dict[str, str]:
    coid = re.search(r'name="client_order_id" value="([^"]+)"', page)
    assert coid
    return {
        "csrf_token": _csrf(page),
        "client_order_id": coid.group(1),
        "symbol": "ACME",
        "side": "buy",
        "quantity": "10",
        "limit_price": "95.50",
        "time_in_force": "day",
        **values,
    }


def test_market_page_needs_a_signed_in_user(client: TestClient, container: Container) -> None:
    response = client.get("/market", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    refused = client.post("/market/orders", data={"symbol": "ACME"}, follow_redirects=False)
    assert refused.status_code == 401


def test_home_page_is_public_and_shows_a_signed_in_users_account(
    client: TestClient, container: Container
) -> None:
    anonymous = client.get("/")
    assert anonymous.status_code == 200
    assert 'href="/login"' in anonymous.text
    assert 'href="/docs"' in anonymous.text
    assert "Your account" not in anonymous.text

    _signed_in_trader(client, container)
    home = client.get("/")
    assert home.status_code == 200
    assert "Your account" in home.text
    assert "50000" in home.text
    assert 'href="/market"' in home.text


def test_market_page_shows_instruments_and_wires_the_live_script(
    client: TestClient, container: Container
) -> None:
    _signed_in_trader(client, container)
    page = client.get("/market")
    assert page.status_code == 200
    for symbol in ("ACME", "GLOBX", "INTK"):
        assert f'data-symbol="{symbol}"' in page.text
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script src="/static/market.js" nonce="{nonce}"' in page.text
    # No inline handlers, nothing from elsewhere.
    assert not re.search(r"\son[a-z]+=", page.text)
    assert "//cdn" not in page.text
    assert "https://" not in page.text
    script = client.get("/static/market.js")
    assert script.status_code == 200
    assert "/v1/stream" in script.text
    assert "/v1/market/" in script.text
    assert "innerHTML" not in script.text


def test_place_and_cancel_a_limit_order_from_the_page(
    client: TestClient, container: Container
) -> None:
    user_id = _signed_in_trader(client, container)
    page = client.get("/market")
    form = _order_form(page.text)

    placed = client.post("/market/orders", data=form, follow_redirects=False)
    assert placed.status_code == 303, placed.text
    order_id = placed.headers["location"].split("order=")[1]
    order = container.orders.get(user_id, order_id)
    assert order["status"] == "accepted"
    assert (order["side"], order["quantity"], order["limit_price"]) == ("buy", "10", "95.5")
    account = container.orders.account(user_id)
    assert Decimal(account["reserved"]) == Decimal("955")

    # The same form sent twice (a double click) places one order.
    again = client.post("/market/orders", data=form, follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == placed.headers["location"]

    shown = client.get(placed.headers["location"])
    assert "accepted" in shown.text
    assert f'data-order="{order_id}"' in shown.text
    assert f'action="/market/orders/{order_id}/cancel"' in shown.text

    cancelled = client.post(
        f"/market/orders/{order_id}/cancel",
        data={"csrf_token": _csrf(shown.text)},
        follow_redirects=False,
    )
    assert cancelled.status_code == 303
    assert container.orders.get(user_id, order_id)["status"] == "cancelled"
    assert Decimal(container.orders.account(user_id)["reserved"]) == 0
    after = client.get(cancelled.headers["location"])
    assert "cancelled" in after.text
    assert f'data-order="{order_id}"' not in after.text


def test_order_forms_are_refused_without_the_csrf_token(
    client: TestClient, container: Container
) -> None:
    user_id = _signed_in_trader(client, container)
    page = client.get("/market")
    form = _order_form(page.text)

    for token in (None, "forged-token-value"):
        data = {k: v for k, v in form.items() if k != "csrf_token"}
        if token is not None:
            data["csrf_token"] = token
        refused = client.post("/market/orders", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert refused.json()["type"] == "urn:rampart:problem:csrf-failed"
    assert container.orders.list_orders(user_id).items == []

    placed = client.post("/market/orders", data=form, follow_redirects=False)
    order_id = placed.headers["location"].split("order=")[1]
    refused = client.post(f"/market/orders/{order_id}/cancel", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert container.orders.get(user_id, order_id)["status"] == "accepted"


def test_another_users_order_cannot_be_cancelled_or_shown(
    client: TestClient, container: Container
) -> None:
    _signed_in_trader(client, container)
    fund(container, "someone-else", "10000")
    theirs = container.orders.engine.call(
        Place(
            "someone-else",
            "user:someone-else",
            OrderTicket(
                "ACME", OrderSide.BUY, OrderType.LIMIT, Decimal(1), TimeInForce.DAY, Decimal(90)
            ),
        ),
        timeout=10,
    ).order
    page = client.get(f"/market?order={theirs['id']}")
    assert page.status_code == 200
    assert "someone-else" not in page.text
    assert theirs["id"] not in page.text

    refused = client.post(
        f"/market/orders/{theirs['id']}/cancel",
        data={"csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert refused.status_code == 404
    assert container.orders.get("someone-else", theirs["id"])["status"] == "accepted"


def test_an_invalid_order_is_shown_back_with_the_reason(
    client: TestClient, container: Container
) -> None:
    user_id = _signed_in_trader(client, container)
    page = client.get("/market")
    bad = client.post(
        "/market/orders", data=_order_form(page.text, limit_price="lots"), follow_redirects=False
    )
    assert bad.status_code == 422
    assert "as numbers" in bad.text
    assert 'value="lots"' in bad.text  # the form keeps what was typed
    assert container.orders.list_orders(user_id).items == []

    # A rejected order is not an error: it exists, with its reason code, and is shown.
    rejected = client.post(
        "/market/orders",
        data=_order_form(page.text, quantity="100000", client_order_id="too-big"),
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    shown = client.get(rejected.headers["location"])
    assert "rejected" in shown.text
    assert "insufficient-buying-power" in shown.text


def test_the_market_page_shows_the_traders_own_risk_controls(
    client: TestClient, container: Container
) -> None:
    _signed_in_trader(client, container)
    page = client.get("/market")
    assert page.status_code == 200
    assert 'id="risk-state"' in page.text
    assert "Trading state: <strong>ACTIVE</strong>" in page.text
    assert "Gross exposure" in page.text


def test_the_market_page_shows_the_traders_own_limits_and_their_use(
    client: TestClient, container: Container
) -> None:
    user_id = _signed_in_trader(client, container)
    set_limits(container, user_id, max_gross_exposure="5000")
    page = client.get("/market").text
    usage = page[page.index('id="risk-usage"') :]
    usage = usage[: usage.index("</table>")]
    headers = re.findall(r"<th[^>]*>([^<]+)</th>", usage)
    assert headers == ["Control", "Used", "Limit", "Left"]
    assert re.search(
        r"<td>Gross exposure</td><td>0\.00</td><td>5000\.00</td><td>5000\.00</td>", usage
    )
