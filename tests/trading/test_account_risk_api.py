"""A trader sees their own controls: state and why, limits, usage, halts, refusals in words."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from tests.trading.support import fund, set_limits

ALICE = {"x-test-user": "alice"}


def _order(client: TestClient, price: str, quantity: str) -> dict[str, object]:
    body = {"symbol": "ACME", "side": "buy", "type": "limit", "quantity": quantity,
            "limit_price": price}  # fmt: skip
    response = client.post("/v1/orders", json=body, headers=ALICE)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_account_api_returns_state_limits_and_usage(
    trader_client: TestClient, container: Container
) -> None:
    fund(container, "alice", "100000")
    set_limits(container, "alice", max_gross_exposure="500", max_orders_per_day="10")
    assert _order(trader_client, "99.00", "4")["status"] == "accepted"
    first = trader_client.get("/v1/account/risk", headers=ALICE)
    assert first.status_code == 200, first.text
    risk = first.json()
    assert risk["state"] == "active"
    assert risk["limits"]["max_gross_exposure"] == "500"
    assert risk["usage"]["gross_exposure"] == {
        "used": "396.00",
        "limit": "500.00",
        "left": "104.00",
    }
    assert risk["usage"]["orders_today"] == {"used": "1", "limit": "10", "left": "9"}
    assert risk["halts"]["market"] is False
    # Past the limit: refused, the account moves to REDUCING, and the trader reads why.
    assert _order(trader_client, "98.00", "2")["reason"] == "max-gross-exposure"
    with container.risk_gate.writing, container.uow() as uow:
        container.risk_gate.drain(uow)
        uow.commit()
    after = trader_client.get("/v1/account/risk", headers=ALICE).json()
    assert after["state"] == "reducing"
    assert "exceeding your 500.00 gross exposure limit by 92.00" in after["reason"]
    refusal = after["recent_refusals"][0]
    assert refusal["code"] == "max-gross-exposure"
    assert "exceeding your 500.00 gross exposure limit by 92.00" in refusal["reason"]


def test_the_account_risk_api_needs_a_signed_in_trader(trader_client: TestClient) -> None:
    assert trader_client.get("/v1/account/risk").status_code == 401
