"""The compliance console's audit pages in a browser's shoes: a compliance officer signed in with
a security key finds a trader's order in the audit log, opens it and sees its inclusion proof
verify; a trader, and a compliance officer signed in without the key, are refused."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from html import unescape
from typing import Any

from fastapi.testclient import TestClient
from tests.access.support import ACCOUNT_PASSWORD, email_of, new_account
from tests.support.staff import enrol_security_key, sign_in_with_key
from tests.trading.support import fund, place
from tests.web.test_pages_market import _signed_in_trader

from rampart.access.domain import Role
from rampart.audit.merkle import verify_inclusion
from rampart.bootstrap import Container
from rampart.kernel.events import AuditEvent
from rampart.simulator.service import ensure_demo_market

TRADER = "audit-page-trader"
HTML = {"Accept": "text/html"}


def _officer(client: TestClient, container: Container) -> dict[str, str]:
    """A compliance officer's sign-in with password and security key, as a browser sends it."""
    officer = new_account(container, Role.COMPLIANCE)
    key = enrol_security_key(container, officer)
    tokens = sign_in_with_key(client, email_of(container, officer), ACCOUNT_PASSWORD, key)
    return {**HTML, "Authorization": f"Bearer {tokens['access_token']}"}


def _trader_order(container: Container) -> str:
    ensure_demo_market(container.orders, container.uow)
    fund(container, TRADER, "100000")
    order = place(container, TRADER, "buy", "10", "95.50")
    assert order["status"] == "accepted", order
    return str(order["id"])


def _rows(page: str) -> list[dict[str, Any]]:
    rows = []
    for seq, body in re.findall(r'<tr data-seq="(\d+)">(.*?)</tr>', page, re.S):
        cells = [
            unescape(re.sub(r"<[^>]+>", "", c))
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", body)
        ]
        rows.append({"seq": int(seq), "cells": cells})
    return rows


def _field(page: str, attribute: str, name: str) -> str:
    match = re.search(rf'<dd {attribute}="{name}">(.*?)</dd>', page, re.S)
    assert match, f"no {attribute}={name}"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def test_an_officer_finds_an_order_entry_and_its_proof_verifies(
    client: TestClient, container: Container
) -> None:
    order_id = _trader_order(container)
    container.audit_checkpointer.checkpoint()
    headers = _officer(client, container)

    search = client.get(
        "/compliance/audit",
        params={"subject": f"order:{order_id}", "actor": f"user:{TRADER}", "outcome": "success"},
        headers=headers,
    )
    assert search.status_code == 200, search.text
    assert 'href="/compliance/audit"' in search.text  # the navigation link, for the officer
    rows = _rows(search.text)
    assert rows, "the order's entries are found"
    assert all(f"order:{order_id}" in r["cells"] and f"user:{TRADER}" in r["cells"] for r in rows)
    actions = [r["cells"][2] for r in rows]
    assert "order.accepted" in actions
    seq = rows[actions.index("order.accepted")]["seq"]
    # A filter that matches nothing shows nothing.
    none = client.get(
        "/compliance/audit",
        params={"subject": f"order:{order_id}", "outcome": "denied"},
        headers=headers,
    )
    assert _rows(none.text) == []

    entry = client.get(f"/compliance/audit/{seq}", headers=headers)
    assert entry.status_code == 200, entry.text
    page = entry.text
    assert _field(page, "data-field", "action") == "order.accepted"
    assert _field(page, "data-field", "subject") == f"order:{order_id}"
    details = json.loads(
        unescape(re.search(r'<pre id="details"[^>]*>(.*?)</pre>', page, re.S).group(1))
    )  # type: ignore[union-attr]
    assert details["limit_price"] == "95.50"
    assert details["quantity"] == "10"

    assert 'id="proof-result" data-verified="yes"' in page
    assert page.count("✔") == 3
    # The numbers shown check again outside the page, with the verifier alone.
    b = base64.b64decode
    path = [
        b(h) for h in re.findall(r"<li><code>([^<]+)</code></li>", page.split('id="audit-path"')[1])
    ]
    tree_size = int(_field(page, "data-proof", "tree_size"))
    assert verify_inclusion(
        b(_field(page, "data-proof", "leaf_hash")),
        seq,
        tree_size,
        path,
        b(_field(page, "data-proof", "root")),
    )
    assert _field(page, "data-proof", "leaf_hash") == _field(page, "data-field", "leaf_hash")
    assert f"\n{tree_size}\n" in unescape(page.split('id="checkpoint"')[1])


def test_an_entry_after_the_newest_checkpoint_has_no_proof_yet(
    client: TestClient, container: Container
) -> None:
    # The background checkpointer signs every second; stopped, only this test's checkpoint
    # exists, so the later order's entries are surely past it.
    container.audit_checkpointer.stop()
    _trader_order(container)
    container.audit_checkpointer.checkpoint()
    order_id = str(place(container, TRADER, "buy", "1", "94.00")["id"])
    headers = _officer(client, container)
    rows = _rows(
        client.get(
            "/compliance/audit", params={"subject": f"order:{order_id}"}, headers=headers
        ).text
    )
    last = max(r["seq"] for r in rows)
    page = client.get(f"/compliance/audit/{last}", headers=headers).text
    assert 'id="proof-unavailable"' in page
    assert 'data-verified="yes"' not in page


def test_export_returns_only_the_filtered_entries(client: TestClient, container: Container) -> None:
    order_id = _trader_order(container)
    other = place(container, TRADER, "buy", "1", "94.00")
    headers = _officer(client, container)
    search = client.get(
        "/compliance/audit", params={"subject": f"order:{order_id}"}, headers=headers
    )
    link = re.search(r'href="(/compliance/audit/export\.jsonl[^"]*)"', search.text)
    assert link
    export = client.get(unescape(link.group(1)), headers=headers)
    assert export.status_code == 200
    assert export.headers["content-disposition"].startswith("attachment")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert lines
    assert {e["subject"] for e in lines} == {f"order:{order_id}"}
    assert f"order:{other['id']}" not in export.text
    assert [e["seq"] for e in lines] == sorted(r["seq"] for r in _rows(search.text))


def test_page_sizes_are_bounded_and_pages_follow_the_cursor(
    client: TestClient, container: Container
) -> None:
    for i in range(40):
        container.audit_log.append(AuditEvent("test.event", subject=f"thing:{i}"))
    headers = _officer(client, container)
    first = client.get("/compliance/audit", params={"size": 1_000_000}, headers=headers)
    assert first.status_code == 422
    page = client.get("/compliance/audit", params={"size": 5000}, headers=headers)
    assert len(_rows(page.text)) <= 200
    small = client.get("/compliance/audit", params={"size": 1}, headers=headers).text
    seqs = [r["seq"] for r in _rows(small)]
    assert len(seqs) == 25
    following = re.search(r'href="/compliance/audit\?([^"]+)" rel="next"', small)
    assert following
    after = [
        r["seq"]
        for r in _rows(
            client.get(f"/compliance/audit?{unescape(following.group(1))}", headers=headers).text
        )
    ]
    assert after
    assert min(after) > max(seqs)


def test_a_trader_gets_a_403_page_and_no_link(client: TestClient, container: Container) -> None:
    _signed_in_trader(client, container)
    assert 'href="/compliance/audit"' not in client.get("/portfolio").text
    for path in ("/compliance/audit", "/compliance/audit/0", "/compliance/audit/export.jsonl"):
        refused = client.get(path, headers=HTML)
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("text/html")
        assert "order." not in refused.text


def test_an_officer_without_a_security_key_sign_in_is_refused(
    client: TestClient, container: Container
) -> None:
    _trader_order(container)
    officer = new_account(container, Role.COMPLIANCE)
    signed = client.post(
        "/v1/auth/login", json={"email": email_of(container, officer), "password": ACCOUNT_PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "complete"
    headers = {**HTML, "Authorization": f"Bearer {signed.json()['access_token']}"}
    refused = client.get("/compliance/audit", headers=headers)
    assert refused.status_code == 403
    assert "security key" in refused.text.lower() or "staff" in refused.text.lower()
    assert "data-seq" not in refused.text
    export = client.get("/compliance/audit/export.jsonl", headers=headers)
    assert export.status_code == 403


def test_signed_out_is_sent_to_sign_in(client: TestClient) -> None:
    response = client.get("/compliance/audit", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_the_time_range_filter(client: TestClient, container: Container) -> None:
    order_id = _trader_order(container)
    headers = _officer(client, container)
    now = container.clock.now()
    minute = now.strftime("%Y-%m-%dT%H:%M")
    later = (now + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    subject = f"order:{order_id}"

    def found(**times: str) -> list[dict[str, Any]]:
        page = client.get(
            "/compliance/audit", params={"subject": subject, **times}, headers=headers
        )
        assert page.status_code == 200, page.text
        assert all(f'value="{v}"' in page.text for v in times.values())  # the form keeps them
        return _rows(page.text)

    assert found(since=minute, until=later)
    assert found(since=later) == []
    assert found(until=minute) == []
    wrong = client.get("/compliance/audit", params={"since": "yesterday"}, headers=headers)
    assert wrong.status_code == 422
    assert "YYYY-MM-DDTHH:MM" in wrong.text
