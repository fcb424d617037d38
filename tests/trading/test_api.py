"""The HTTP and WebSocket API, with a test authenticator standing in for tokens."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from tests.trading.support import fund, locate

ALICE = {"x-test-user": "alice"}
BOB = {"x-test-user": "bob"}


def test_order_lifecycle_over_http(trader_client: TestClient, container: Container) -> None:
    fund(container, "alice", "10000")
    fund(container, "bob", "10000")
    locate(container, "alice")
    locate(container, "bob")
    body = {
        "symbol": "ACME",
        "side": "buy",
        "type": "limit",
        "quantity": "5",
        "limit_price": "99.50",
        "client_order_id": "c1",
    }
    created = trader_client.post("/v1/orders", json=body, headers=ALICE)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "accepted"
    # The retry answers 200 with the same order.
    retry = trader_client.post("/v1/orders", json=body, headers=ALICE)
    assert retry.status_code == 200
    assert retry.json()["id"] == order["id"]
    assert trader_client.get(f"/v1/orders/{order['id']}", headers=ALICE).json()["id"] == order["id"]
    # Another user's order does not exist for them, whatever the verb.
    for method in ("get", "delete"):
        resp = getattr(trader_client, method)(f"/v1/orders/{order['id']}", headers=BOB)
        assert resp.status_code == 404
        assert resp.json()["type"] == "urn:rampart:problem:order-not-found"
    assert (
        trader_client.patch(
            f"/v1/orders/{order['id']}", json={"quantity": "1"}, headers=BOB
        ).status_code
        == 404
    )
    moved = trader_client.patch(
        f"/v1/orders/{order['id']}", json={"limit_price": "99.60"}, headers=ALICE
    )
    assert moved.status_code == 200
    assert moved.json()["limit_price"] == "99.6"
    account = trader_client.get("/v1/account", headers=ALICE).json()
    assert account["reserved"] == "498"
    assert account["buying_power"] == "9502"
    book = trader_client.get("/v1/market/ACME/book", headers=ALICE).json()
    assert book["bids"] == [{"price": "99.6", "quantity": "5", "orders": 1}]
    sell = trader_client.post(
        "/v1/orders",
        headers=BOB,
        json={
            "symbol": "ACME",
            "side": "sell_short",
            "type": "market",
            "quantity": "5",
            "time_in_force": "ioc",
        },
    )
    assert sell.json()["status"] == "filled"
    positions = trader_client.get("/v1/positions", headers=ALICE).json()
    assert positions[0]["quantity"] == "5"
    assert positions[0]["average_cost"] == "99.6"
    assert trader_client.delete(f"/v1/orders/{order['id']}", headers=ALICE).status_code == 409


def test_rejected_order_is_created_with_a_reason(trader_client: TestClient) -> None:
    resp = trader_client.post(
        "/v1/orders",
        headers=ALICE,
        json={"symbol": "ACME", "side": "buy", "quantity": "1", "limit_price": "100"},
    )
    assert resp.status_code == 201
    assert resp.json()["status"] == "rejected"
    assert resp.json()["reason"] == "insufficient-buying-power"


def test_bad_input_is_refused(trader_client: TestClient) -> None:
    float_qty = trader_client.post(
        "/v1/orders",
        headers=ALICE,
        json={"symbol": "ACME", "side": "buy", "quantity": 1.5, "limit_price": "100"},
    )
    assert float_qty.status_code == 422
    missing_limit = trader_client.post(
        "/v1/orders",
        headers=ALICE,
        json={"symbol": "ACME", "side": "buy", "type": "limit", "quantity": "1"},
    )
    assert missing_limit.status_code == 422
    assert missing_limit.json()["type"] == "urn:rampart:problem:invalid-order"
    extra = trader_client.post(
        "/v1/orders",
        headers=ALICE,
        json={
            "symbol": "ACME",
            "side": "buy",
            "quantity": "1",
            "limit_price": "1",
            "user_id": "bob",
        },
    )
    assert extra.status_code == 422
    assert trader_client.post("/v1/orders", json={}).status_code == 401


def test_list_is_paginated_and_cancel_all(trader_client: TestClient, container: Container) -> None:
    fund(container, "alice", "10000")
    for i in range(5):
        trader_client.post(
            "/v1/orders",
            headers=ALICE,
            json={"symbol": "ACME", "side": "buy", "quantity": "1", "limit_price": f"9{i}"},
        )
    first = trader_client.get("/v1/orders?limit=2", headers=ALICE).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = trader_client.get(
        f"/v1/orders?limit=2&cursor={first['next_cursor']}", headers=ALICE
    ).json()
    assert {o["id"] for o in second["items"]}.isdisjoint({o["id"] for o in first["items"]})
    assert trader_client.get("/v1/orders", headers=BOB).json()["items"] == []
    assert trader_client.get("/v1/orders?limit=1000", headers=ALICE).status_code == 422
    cancelled = trader_client.delete("/v1/orders", headers=ALICE).json()
    assert len(cancelled) == 5
    assert trader_client.get("/v1/account", headers=ALICE).json()["reserved"] == "0"
    instruments = trader_client.get("/v1/instruments", headers=ALICE).json()
    assert {i["symbol"] for i in instruments} >= {"ACME", "FRAC"}


def test_stream_sends_own_orders_and_subscribed_market_data(
    trader_client: TestClient, container: Container
) -> None:
    fund(container, "alice", "10000")
    fund(container, "bob", "10000")
    locate(container, "alice")
    locate(container, "bob")
    with trader_client.websocket_connect("/v1/stream", headers=ALICE) as ws:
        assert ws.receive_json()["type"] == "welcome"
        ws.send_json({"op": "subscribe", "symbols": ["ACME", "NOPE"]})
        subscribed = ws.receive_json()
        assert subscribed["data"] == {"symbols": ["ACME"], "unknown": ["NOPE"]}
        trader_client.post(
            "/v1/orders",
            headers=BOB,
            json={"symbol": "ACME", "side": "sell_short", "quantity": "2", "limit_price": "100"},
        )
        trader_client.post(
            "/v1/orders",
            headers=ALICE,
            json={"symbol": "ACME", "side": "buy", "quantity": "2", "limit_price": "100"},
        )
        seen: list[tuple[str, str | None]] = []
        while ("order", "alice-filled") not in seen or ("trade", None) not in seen:
            message = ws.receive_json()
            data = message["data"]
            if message["type"] == "order":
                # Never someone else's order.
                assert data["id"]
                assert data.get("event")
                seen.append(
                    (
                        "order",
                        "alice-filled"
                        if data["status"] == "filled" and data["side"] == "buy"
                        else data["side"],
                    )
                )
            else:
                seen.append((message["type"], None))
        kinds = {k for k, _ in seen}
        assert {"quote", "trade", "fill", "order"} <= kinds
        assert ("order", "sell_short") not in seen


def test_stream_needs_credentials(trader_client: TestClient) -> None:
    import pytest
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises((WebSocketDisconnect, Exception)),
        trader_client.websocket_connect("/v1/stream") as ws,
    ):
        ws.receive_json()
