"""The portfolio page in a browser's shoes: the summary, positions with P&L, the order history
and its filter, fills and the cash ledger, only ever the signed-in trader's own."""

from __future__ import annotations

import re
from decimal import Decimal

from fastapi.testclient import TestClient
from tests.trading.support import fund, locate, place
from tests.web.test_pages_market import _order_form, _signed_in_trader

from rampart.bootstrap import Container

SELLER = "portfolio-seller"


def _row(page: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr {attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(1)


def _buy_filled(client: TestClient, container: Container, price: str = "95.50") -> str:
    """The signed-in trader buys 10 ACME from the market page; a seller's resting offer fills it."""
    fund(container, SELLER, "100000")
    locate(container, SELLER)
    offer = place(container, SELLER, "sell_short", "10", price)
    assert offer["status"] == "accepted", offer
    form = _order_form(client.get("/market").text, limit_price=price)
    placed = client.post("/market/orders", data=form, follow_redirects=False)
    assert placed.status_code == 303, placed.text
    return placed.headers["location"].split("order=")[1]


def test_signed_out_is_sent_to_sign_in(client: TestClient, container: Container) -> None:
    response = client.get("/portfolio", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_a_filled_buy_shows_as_a_position_with_its_pnl_and_in_the_ledger(
    client: TestClient, container: Container
) -> None:
    user_id = _signed_in_trader(client, container)
    order_id = _buy_filled(client, container)
    assert container.orders.get(user_id, order_id)["status"] == "filled"

    page = client.get("/portfolio")
    assert page.status_code == 200
    text = page.text
    assert 'href="/portfolio"' in text  # in the navigation
    # Summary: currency and thousands separators. 50,000 deposited, 955 spent on 10 ACME.
    assert 'data-figure="cash">$49,045.00<' in text
    assert 'data-figure="equity">$50,000.00<' in text
    assert 'data-figure="buying_power">$49,045.00<' in text
    assert 'data-figure="day_pnl"><span class="">$0.00</span>' in text

    position = _row(text, "data-symbol", "ACME")
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", position)
    assert cells[0] == "ACME"
    assert cells[1:5] == ["10", "$95.50", "$95.50", "$955.00"]
    assert "$0.00" in cells[5]
    assert "$0.00" in cells[6]

    order_row = _row(text, "data-order", order_id)
    assert "filled" in order_row
    assert "$95.50" in order_row
    fills = re.findall(r'<tr data-fill="[^"]+">(.*?)</tr>', text, re.S)
    assert len(fills) == 1
    assert "$955.00" in fills[0]
    assert "buy" in fills[0]
    # The cash ledger: the deposit and the trade, newest first.
    activity = text.split('id="activity"')[1]
    assert activity.index("Trade") < activity.index("Deposit")
    assert "-$955.00" in activity
    assert "+$50,000.00" in activity

    # The position moves to the next trade's price: unrealised P&L follows, in the day P&L.
    fund(container, "portfolio-buyer", "100000")
    place(container, SELLER, "sell_short", "1", "97.50")
    place(container, "portfolio-buyer", "buy", "1", "97.50")
    again = client.get("/portfolio").text
    position = _row(again, "data-symbol", "ACME")
    assert "$97.50" in position
    assert "+$20.00" in position
    assert 'data-figure="day_pnl"><span class="gain">+$20.00</span>' in again
    assert 'data-figure="equity">$50,020.00<' in again


def test_the_order_history_filter_and_reasons_in_words(
    client: TestClient, container: Container
) -> None:
    user_id = _signed_in_trader(client, container)
    filled = _buy_filled(client, container)
    resting = (
        client.post(
            "/market/orders",
            data=_order_form(client.get("/market").text, limit_price="90.00"),
            follow_redirects=False,
        )
        .headers["location"]
        .split("order=")[1]
    )
    cancelled = (
        client.post(
            "/market/orders",
            data=_order_form(client.get("/market").text, limit_price="91.00"),
            follow_redirects=False,
        )
        .headers["location"]
        .split("order=")[1]
    )
    market = client.get("/market").text
    client.post(
        f"/market/orders/{cancelled}/cancel",
        data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', market).group(1)},  # type: ignore[union-attr]
        follow_redirects=False,
    )
    # Far more than the cash allows: rejected, with its reason.
    rejected = (
        client.post(
            "/market/orders",
            data=_order_form(client.get("/market").text, quantity="100000", limit_price="99.00"),
            follow_redirects=False,
        )
        .headers["location"]
        .split("order=")[1]
    )
    statuses = {
        o: container.orders.get(user_id, o)["status"]
        for o in (filled, resting, cancelled, rejected)
    }
    assert statuses == {
        filled: "filled",
        resting: "accepted",
        cancelled: "cancelled",
        rejected: "rejected",
    }

    def shown(status: str) -> set[str]:
        page = client.get(f"/portfolio?status={status}")
        assert page.status_code == 200
        return set(re.findall(r'<tr data-order="([^"]+)"', page.text))

    assert shown("all") == set(statuses)
    assert shown("open") == {resting}
    assert shown("filled") == {filled}
    assert shown("cancelled") == {cancelled}
    assert shown("rejected") == {rejected}
    page = client.get("/portfolio?status=rejected").text
    assert "Not enough buying power for this order." in _row(page, "data-order", rejected)
    assert "You cancelled it." in _row(client.get("/portfolio").text, "data-order", cancelled)

    # Paged: the page size is bounded whatever is asked, and the cursor shows the older ones.
    first = client.get("/portfolio?size=500").text
    assert '<option value="100" selected>' in first
    assert client.get("/portfolio?status=bogus").status_code == 422
    older = client.get(f"/portfolio?before={resting}").text
    assert set(re.findall(r'<tr data-order="([^"]+)"', older)) == {filled}
    assert 'href="/portfolio?status=all&amp;size=25">Newest</a>' in older
    small = client.get("/portfolio?size=1")  # below the smallest size: raised to it
    assert small.status_code == 200
    assert '<option value="10" selected>' in small.text


def test_another_users_orders_and_positions_never_appear(
    client: TestClient, container: Container
) -> None:
    _signed_in_trader(client, container)
    fund(container, "someone-else", "100000")
    theirs = place(container, "someone-else", "buy", "3", "92.00")
    locate(container, SELLER)
    fund(container, SELLER, "100000")
    place(container, SELLER, "sell_short", "3", "92.00")
    assert container.orders.get("someone-else", theirs["id"])["status"] == "filled"

    for status in ("all", "filled", "open"):
        page = client.get(f"/portfolio?status={status}").text
        assert theirs["id"] not in page
        assert "someone-else" not in page
        assert 'data-fill="' not in page
        assert '<tr data-symbol="ACME">' not in page
    # The cash ledger shows the trader's deposit, not the other accounts' trades.
    activity = client.get("/portfolio").text.split('id="activity"')[1]
    assert "Deposit" in activity
    assert "Trade" not in activity
    # Nothing in the address names an account: a made-up parameter changes nothing.
    page = client.get("/portfolio?user_id=someone-else").text
    assert theirs["id"] not in page


def test_amount_filters_group_thousands_and_keep_the_cents() -> None:
    from rampart.web.pages.templating import amount, money, signed_money

    assert money("1234567.891") == "$1,234,567.89"
    assert money(Decimal("-1000")) == "-$1,000.00"
    assert signed_money("12.5") == "+$12.50"
    assert signed_money("0") == "$0.00"
    assert amount("1234.50") == "1,234.5"
    assert amount("18.2", 2) == "18.20"


def test_every_rejection_and_cancellation_code_has_words() -> None:
    from rampart.risk.domain import RejectCode
    from rampart.trading.domain import Reason
    from rampart.web.pages.portfolio import REASON_WORDS, reason_in_words

    assert set(Reason) | set(RejectCode) <= set(REASON_WORDS)
    # A code this page does not know yet is still shown, readable.
    assert reason_in_words("some-new-limit") == "Some new limit."
    assert reason_in_words(None) == ""
