"""The audit API: compliance users search, export, prove; traders are refused; keys are public."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection

from rampart.access.domain import Principal, Role, permissions_for
from rampart.audit.merkle import verify_consistency, verify_inclusion
from rampart.audit.notes import parse_verifier_key, verify_checkpoint
from rampart.bootstrap import Container
from rampart.kernel.events import AuditEvent

USERS = {
    "compliance": Principal(
        "user:c1", "c1", frozenset({Role.COMPLIANCE}), permissions_for({Role.COMPLIANCE})
    ),
    "trader": Principal("user:t1", "t1", frozenset({Role.TRADER}), permissions_for({Role.TRADER})),
}


class HeaderAuthenticator:
    """Test-only: `X-Test-User: compliance` signs in as that principal."""

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        name = conn.headers.get("x-test-user")
        return USERS.get(name) if name else None


AS_COMPLIANCE = {"x-test-user": "compliance"}
AS_TRADER = {"x-test-user": "trader"}


@pytest.fixture
def api(container: Container, client: TestClient) -> TestClient:
    container.authenticators.insert(0, HeaderAuthenticator())
    for i in range(12):
        container.audit_log.append(
            AuditEvent(
                "order.placed" if i % 3 else "auth.login.failed",
                subject=f"order:{i % 4}",
                actor=f"user:u{i % 2}",
                details={"i": i, "note": "=cmd|' /C calc'!A0" if i == 5 else "x"},
            )
        )
    container.audit_checkpointer.checkpoint()
    return client


def test_search_filters_and_paginates(api: TestClient) -> None:
    page = api.get("/audit/entries", params={"actor": "user:u1", "limit": 2}, headers=AS_COMPLIANCE)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [e["seq"] for e in body["entries"]] == [1, 3]
    rest = api.get(
        "/audit/entries",
        params={"actor": "user:u1", "after": body["next"], "limit": 100},
        headers=AS_COMPLIANCE,
    ).json()
    assert rest["next"] is None
    seqs = [e["seq"] for e in rest["entries"]]
    assert seqs == [5, 7, 9, 11]
    assert all(e["actor"] == "user:u1" for e in rest["entries"])
    by_subject = api.get(
        "/audit/entries",
        params={"subject": "order:2", "action": "order.placed"},
        headers=AS_COMPLIANCE,
    ).json()
    assert [e["seq"] for e in by_subject["entries"]] == [2, 10]
    assert (
        api.get("/audit/entries", params={"limit": 100_000}, headers=AS_COMPLIANCE).status_code
        == 422
    )


def test_time_range_search(api: TestClient, container: Container) -> None:
    now = container.clock.time_ns()
    assert (
        len(
            api.get("/audit/entries", params={"since_ns": now}, headers=AS_COMPLIANCE).json()[
                "entries"
            ]
        )
        >= 12
    )
    assert (
        api.get("/audit/entries", params={"until_ns": now}, headers=AS_COMPLIANCE).json()["entries"]
        == []
    )


def test_csv_export_neutralises_formulas(api: TestClient) -> None:
    response = api.get("/audit/entries.csv", params={"limit": 100}, headers=AS_COMPLIANCE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0].startswith("seq,ts_ns,actor,action")
    assert len(lines) >= 13
    assert "\n=" not in response.text
    assert ",=" not in response.text


def test_inclusion_and_consistency_proofs_verify(api: TestClient, container: Container) -> None:
    proof = api.get("/audit/entries/7/inclusion", headers=AS_COMPLIANCE).json()
    b = base64.b64decode
    assert proof["tree_size"] == 12
    assert verify_inclusion(
        b(proof["leaf_hash"]), 7, 12, [b(p) for p in proof["proof"]], b(proof["root"])
    )
    keys = api.get("/audit/keys").json()
    trusted = [parse_verifier_key(k["verifier_key"]) for k in keys["keys"]]
    signed = verify_checkpoint(proof["checkpoint"], trusted, keys["origin"])
    assert signed is not None
    assert signed.root == b(proof["root"])
    for i in range(12, 20):
        container.audit_log.append(AuditEvent("order.placed", subject=f"order:{i}"))
    # Every request above was itself audited (access.allowed), so the tree is larger than 20.
    newest = container.audit_checkpointer.checkpoint()
    assert newest is not None
    size = newest.size
    cons = api.get("/audit/consistency", params={"old_size": 12}, headers=AS_COMPLIANCE).json()
    assert cons["new_size"] == size
    assert verify_consistency(
        12, size, b(cons["old_root"]), b(cons["new_root"]), [b(p) for p in cons["proof"]]
    )
    assert (
        api.get(
            "/audit/consistency", params={"old_size": 21, "new_size": 20}, headers=AS_COMPLIANCE
        ).status_code
        == 409
    )
    checkpoints = api.get("/audit/checkpoints", headers=AS_COMPLIANCE).json()["checkpoints"]
    assert [c["size"] for c in checkpoints][-2:] == [size, 12]


def test_trader_is_refused_and_anonymous_must_sign_in(api: TestClient) -> None:
    for path in (
        "/audit/entries",
        "/audit/entries.csv",
        "/audit/entries/1",
        "/audit/entries/1/inclusion",
        "/audit/checkpoints",
    ):
        assert api.get(path, headers=AS_TRADER).status_code == 403
        assert api.get(path).status_code == 401
    assert api.get("/audit/entries/999", headers=AS_COMPLIANCE).status_code == 404


def test_every_read_is_itself_audited(api: TestClient, container: Container) -> None:
    api.get("/audit/entries", headers=AS_TRADER)
    denied = container.audit.search(
        __import__("rampart.audit.service", fromlist=["SearchQuery"]).SearchQuery(
            action="access.denied"
        )
    )[0]
    assert denied
    assert denied[-1]["actor"] == "user:t1"
