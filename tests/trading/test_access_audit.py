"""Every permission check on the trading API is in the audit log, durable, before the answer.

An order route carries its allowed decision into the order engine's batch (one commit for both);
other routes append it before the handler runs; a denied one is appended before the 403. Whatever
fails on the way, the answer never leaves before the decision is recorded, and a decision that
cannot be recorded turns the answer into a 503.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import HTTPConnection

from rampart.access.domain import Permission, Principal, Role
from rampart.audit.db import AuditEntryRow
from rampart.bootstrap import Container
from tests.trading.support import fund

ORDER = {"symbol": "ACME", "side": "buy", "type": "limit", "quantity": "1", "limit_price": "99"}


class ViewerAuthenticator:
    """`x-test-viewer: <user>`: a principal that may look but not trade."""

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        user = conn.headers.get("x-test-viewer")
        if not user:
            return None
        return Principal(
            actor=f"user:{user}",
            user_id=user,
            roles=frozenset({Role.TRADER}),
            permissions=frozenset({Permission.ACCOUNT_VIEW}),
            credential_id=f"test:{user}",
        )


def entries(container: Container, request_id: str) -> list[tuple[str, str, str | None]]:
    """(action, outcome, subject) of the request's audit entries, in log order."""
    with container.db.read() as session:
        rows = session.execute(
            select(AuditEntryRow.action, AuditEntryRow.outcome, AuditEntryRow.subject)
            .where(AuditEntryRow.request_id == request_id)
            .order_by(AuditEntryRow.seq)
        ).all()
    return [(r.action, r.outcome, r.subject) for r in rows]


def headers(user: str, request_id: str) -> dict[str, str]:
    return {"x-test-user": user, "x-request-id": request_id}


def test_accepted_order_commits_its_access_decision_in_the_same_batch(
    trader_client: TestClient, container: Container
) -> None:
    fund(container, "alice", "1000")
    appended_before = container.audit_log.batched_entries
    response = trader_client.post("/v1/orders", json=ORDER, headers=headers("alice", "rq-order-1"))
    assert response.status_code == 201, response.text
    order_id = response.json()["id"]
    # Read at once after the answer: both are already committed, the check before the order.
    assert entries(container, "rq-order-1") == [
        ("access.allowed", "success", "permission:order:place"),
        ("order.accepted", "success", f"order:{order_id}"),
    ]
    # Written by the engine's transaction, not by a separate append to the audit log.
    assert container.audit_log.batched_entries == appended_before


def test_cancel_carries_its_access_decision_too(
    trader_client: TestClient, container: Container
) -> None:
    fund(container, "alice", "1000")
    order_id = trader_client.post(
        "/v1/orders", json=ORDER, headers=headers("alice", "rq-p")
    ).json()["id"]
    response = trader_client.delete(f"/v1/orders/{order_id}", headers=headers("alice", "rq-c"))
    assert response.status_code == 200, response.text
    assert entries(container, "rq-c") == [
        ("access.allowed", "success", "permission:order:cancel"),
        ("order.cancelled", "success", f"order:{order_id}"),
    ]


def test_denied_request_has_its_access_denied_entry_before_the_403(
    trader_client: TestClient, container: Container
) -> None:
    container.authenticators.insert(0, ViewerAuthenticator())
    response = trader_client.post(
        "/v1/orders", json=ORDER, headers={"x-test-viewer": "mallory", "x-request-id": "rq-deny"}
    )
    assert response.status_code == 403
    assert entries(container, "rq-deny") == [
        ("access.denied", "denied", "permission:order:place"),
    ]


def test_read_route_records_its_access_decision_before_answering(
    trader_client: TestClient, container: Container
) -> None:
    response = trader_client.get("/v1/account", headers=headers("alice", "rq-read"))
    assert response.status_code == 200, response.text
    assert entries(container, "rq-read") == [
        ("access.allowed", "success", "permission:account:view"),
    ]


def test_order_refused_before_the_engine_still_records_its_access_decision(
    trader_client: TestClient, container: Container
) -> None:
    container.orders.engine.stop()
    response = trader_client.post("/v1/orders", json=ORDER, headers=headers("alice", "rq-stop"))
    assert response.status_code == 503
    assert entries(container, "rq-stop") == [
        ("access.allowed", "success", "permission:order:place"),
    ]


def test_failed_batch_leaves_no_order_but_still_records_the_access_decision(
    trader_client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    fund(container, "alice", "1000")
    engine = container.orders.engine

    def broken(*_args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine.store, "write", broken)
    response = trader_client.post("/v1/orders", json=ORDER, headers=headers("alice", "rq-fail"))
    assert response.status_code == 503
    # The batch rolled back (no order entry); the decision was appended on its own instead.
    assert entries(container, "rq-fail") == [
        ("access.allowed", "success", "permission:order:place"),
    ]


@pytest.mark.parametrize("path", ["/v1/account", "/v1/orders"])
def test_an_unrecordable_decision_turns_the_answer_into_503(
    trader_client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    async def unavailable(_event: Any) -> int:
        raise OSError("audit disk gone")

    monkeypatch.setattr(container.audit_log, "append_async", unavailable)
    if path == "/v1/orders":
        # The engine cannot carry it either: the only way left is the audit log.
        container.orders.engine.stop()
        response = trader_client.post(path, json=ORDER, headers=headers("alice", "rq-x"))
    else:
        response = trader_client.get(path, headers=headers("alice", "rq-x"))
    assert response.status_code == 503
    assert response.json()["type"] == "urn:rampart:problem:audit-unavailable"
