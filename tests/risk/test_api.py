"""Risk over HTTP, in front of the real order engine: halts (who may, what they do at once),
the four-eyes resume, limits, events, cancel-on-disconnect."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from tests.access.support import as_staff, as_user, install, new_staff, new_user
from tests.trading.support import fund, place, seed


@pytest.fixture
def market(container: Container, client: TestClient) -> dict[str, str]:
    install(container)
    seed(container)
    users = {
        # Staff with a security key enrolled; `as_staff` is a sign-in that proved it just now.
        "alice": new_staff(container, "COMPLIANCE"),
        "bob": new_staff(container, "COMPLIANCE"),
        "admin": new_staff(container, "ADMIN"),
        "trader": new_user(container, "TRADER"),
        "other": new_user(container, "TRADER"),
    }
    for name in ("trader", "other"):
        fund(container, users[name], "100000")
    # The production canceller (the order service, wired by bootstrap) cancels through the engine.
    assert container.risk.canceller is container.orders
    return users


def halt(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/risk/halts", json=body, headers=headers)


def test_a_trader_cannot_halt_and_compliance_can(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    refused = halt(client, as_user(market["trader"]), scope="market", reason="panic")
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:rampart:problem:permission-denied"
    assert (
        halt(
            client, as_staff(container, market["alice"]), scope="market", reason="outage"
        ).status_code
        == 201
    )


def test_a_symbol_halt_cancels_pending_orders_and_refuses_new_ones_in_one_request(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    trader, other = market["trader"], market["other"]
    resting = place(container, trader, "buy", "10", "99.00")
    elsewhere = place(container, other, "buy", "5", "9.00", symbol="FRAC")
    assert resting["status"] == "accepted"
    response = halt(
        client,
        as_staff(container, market["alice"]),
        scope="symbol",
        target="ACME",
        reason="bad print",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["cancelled_orders"] == 1
    assert body["status"] == "active"
    # By the time the halt's response is out, the resting order is cancelled...
    listed = client.get(f"/v1/orders/{resting['id']}", headers=as_user(trader)).json()
    assert listed["status"] == "cancelled"
    # ...new orders in the symbol are refused with the halt's code, and others still trade.
    assert place(container, trader, "buy", "1", "99.00")["reason"] == "symbol-halted"
    assert place(container, trader, "buy", "1", "9.00", symbol="FRAC")["status"] == "accepted"
    kept = client.get(f"/v1/orders/{elsewhere['id']}", headers=as_user(other)).json()
    assert kept["status"] == "accepted"
    assert cancelled_reason(client, trader, resting["id"]) == "trading-halted"


def cancelled_reason(client: TestClient, user: str, order_id: str) -> str | None:
    order = client.get(f"/v1/orders/{order_id}", headers=as_user(user)).json()
    assert order["status"] == "cancelled"
    reason: str | None = order["reason"]
    return reason


def test_an_account_halt_cancels_only_that_accounts_orders_and_refuses_its_new_ones(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    trader, other = market["trader"], market["other"]
    mine = [place(container, trader, "buy", "1", p) for p in ("99.00", "98.00")]
    theirs = place(container, other, "buy", "1", "97.00")
    response = halt(
        client, as_staff(container, market["alice"]), scope="account", target=trader, reason="odd"
    )
    assert response.status_code == 201
    assert response.json()["cancelled_orders"] == 2
    for order in mine:
        assert cancelled_reason(client, trader, order["id"]) == "trading-halted"
    assert place(container, trader, "buy", "1", "96.00")["reason"] == "account-halted"
    assert client.get(
        f"/v1/orders/{theirs['id']}", headers=as_user(other)
    ).json()["status"] == "accepted"  # fmt: skip
    assert place(container, other, "buy", "1", "96.00")["status"] == "accepted"
    # The reservations went with the cancelled orders.
    assert client.get("/v1/account", headers=as_user(trader)).json()["reserved"] == "0"


def test_a_market_wide_halt_cancels_every_pending_order_and_refuses_all_new_ones(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    trader, other = market["trader"], market["other"]
    orders = [
        (trader, place(container, trader, "buy", "1", "99.00")),
        (other, place(container, other, "buy", "2", "9.00", symbol="FRAC")),
    ]
    response = halt(
        client, as_staff(container, market["alice"]), scope="market", reason="exchange outage"
    )
    assert response.status_code == 201
    assert response.json()["cancelled_orders"] == 2
    for user, order in orders:
        assert cancelled_reason(client, user, order["id"]) == "trading-halted"
    for user in (trader, other):
        assert place(container, user, "buy", "1", "9.00", symbol="FRAC")["reason"] == (
            "market-halted"
        )


def test_resume_needs_a_second_person(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    alice, bob, trader = market["alice"], market["bob"], market["trader"]
    halt_id = halt(
        client, as_staff(container, alice), scope="account", target=trader, reason="odd activity"
    ).json()["id"]
    assert place(container, trader, "buy", "1", "99.00")["reason"] == "account-halted"
    asked = client.post(
        f"/v1/risk/halts/{halt_id}/resume-request", json={"reason": "cleared"},
        headers=as_staff(container, alice),
    )  # fmt: skip
    assert asked.status_code == 200
    alone = client.post(f"/v1/risk/halts/{halt_id}/approve", headers=as_staff(container, alice))
    assert alone.status_code == 403
    assert alone.json()["type"] == "urn:rampart:problem:four-eyes-required"
    assert place(container, trader, "buy", "1", "99.00")["reason"] == "account-halted"
    approved = client.post(f"/v1/risk/halts/{halt_id}/approve", headers=as_staff(container, bob))
    assert approved.status_code == 200
    assert approved.json()["resumed_by"] == f"user:{bob}"
    assert place(container, trader, "buy", "1", "99.00")["status"] == "accepted"
    notes = client.get(
        f"/v1/risk/halts/{halt_id}/regulator-notifications", headers=as_staff(container, bob)
    ).json()["items"]
    assert [n["event"] for n in notes] == ["halt", "resume"]
    # The refused single-person approval is on the record.
    events = client.get(
        "/v1/risk/events", params={"kind": "resume-refused"}, headers=as_staff(container, alice)
    ).json()["items"]
    assert [e["actor"] for e in events] == [f"user:{alice}"]


def test_limits_are_for_admins(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    body = {"account_id": market["trader"], "limits": {"max_order_quantity": "5"},
            "reason": "new account"}  # fmt: skip
    assert (
        client.put(
            "/v1/risk/limits", json=body, headers=as_staff(container, market["alice"])
        ).status_code
        == 403
    )
    changed = client.put("/v1/risk/limits", json=body, headers=as_staff(container, market["admin"]))
    assert changed.status_code == 200
    view = client.get(
        "/v1/risk/limits", params={"account_id": market["trader"]},
        headers=as_staff(container, market["admin"]),
    ).json()  # fmt: skip
    assert view["effective"]["max_order_quantity"] == "5"
    bad = {**body, "limits": {"max_order_quantity": 1.5}}
    assert (
        client.put(
            "/v1/risk/limits", json=bad, headers=as_staff(container, market["admin"])
        ).status_code
        == 422
    )


def test_a_trader_cannot_read_risk_events(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    assert client.get("/v1/risk/events", headers=as_user(market["trader"])).status_code == 403
    assert (
        client.get("/v1/risk/events", headers=as_staff(container, market["alice"])).status_code
        == 200
    )


def test_restricted_list(client: TestClient, container: Container, market: dict[str, str]) -> None:
    put = client.put(
        "/v1/risk/restricted/acme",
        json={"reason": "MNPI"},
        headers=as_staff(container, market["alice"]),
    )
    assert put.status_code == 204
    assert (
        place(container, market["trader"], "buy", "1", "99.00")["reason"] == "restricted-security"
    )
    listed = client.get("/v1/risk/restricted", headers=as_staff(container, market["alice"])).json()[
        "items"
    ]
    assert [r["symbol"] for r in listed] == ["ACME"]


def test_cancel_on_disconnect_registration(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    trader = as_user(market["trader"])
    assert client.put("/v1/risk/cancel-on-disconnect", headers=trader).status_code == 204
    assert client.delete("/v1/risk/cancel-on-disconnect", headers=trader).status_code == 204
    assert (
        client.put(
            "/v1/risk/cancel-on-disconnect", headers=as_staff(container, market["alice"])
        ).status_code
        == 403
    )


def test_a_dropped_stream_cancels_the_accounts_orders_when_asked(
    client: TestClient, container: Container, market: dict[str, str]
) -> None:
    trader, other = market["trader"], market["other"]
    mine = place(container, trader, "buy", "10", "99.00")
    theirs = place(container, other, "buy", "10", "98.00")
    assert client.put("/v1/risk/cancel-on-disconnect", headers=as_user(trader)).status_code == 204
    with client.websocket_connect("/v1/stream", headers=as_user(trader)) as ws:
        assert ws.receive_json()["type"] == "welcome"
    # The other trader's stream did not ask: dropping it cancels nothing.
    with client.websocket_connect("/v1/stream", headers=as_user(other)) as ws:
        assert ws.receive_json()["type"] == "welcome"
    # The server notices the drop after the client has gone: wait for it (bounded).
    status = "accepted"
    for _ in range(400):
        status = client.get(f"/v1/orders/{mine['id']}", headers=as_user(trader)).json()["status"]
        if status != "accepted":
            break
        time.sleep(0.025)
    assert status == "cancelled"
    kept = client.get(f"/v1/orders/{theirs['id']}", headers=as_user(other)).json()["status"]
    assert kept == "accepted"
