"""The compliance console's halts page in a browser's shoes: officer A halts ACME (after a
confirmation) and a trader's ACME order is refused while the trader's market page says so;
A asks to resume and cannot approve their own request; officer B approves and trading resumes.
A trader, and an officer signed in without the security key, are refused the page."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape, unescape
from urllib.parse import quote, unquote

from fastapi.testclient import TestClient
from tests.access.support import ACCOUNT_PASSWORD, email_of, new_account
from tests.support.staff import enrol_security_key, sign_in_with_key, step_up_with_key
from tests.trading.support import fund, locate, place
from tests.web.test_pages_market import _signed_in_trader

from rampart.access.domain import Role
from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from rampart.simulator.service import ensure_demo_market

HTML = {"Accept": "text/html"}
PAGE = "/compliance/halts"


def _officer(client: TestClient, container: Container) -> dict[str, str]:
    """A compliance officer signed in with password and security key (which is also a fresh
    step-up), as a browser's requests carry it."""
    officer = new_account(container, Role.COMPLIANCE)
    key = enrol_security_key(container, officer)
    tokens = sign_in_with_key(client, email_of(container, officer), ACCOUNT_PASSWORD, key)
    return {**HTML, "Authorization": f"Bearer {tokens['access_token']}"}


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _halt_id(page: str, target: str) -> str:
    match = re.search(rf'<tr data-halt="([^"]+)" data-scope="symbol" data-target="{target}">', page)
    assert match, f"no halt of {target} on the page"
    return match.group(1)


def test_halt_a_symbol_and_resume_it_with_four_eyes(
    client: TestClient, container: Container
) -> None:
    ensure_demo_market(container.orders, container.uow)
    trader = "halts-page-trader"
    fund(container, trader, "100000")
    assert place(container, trader, "buy", "1", "95.00")["status"] == "accepted"
    officer_a = _officer(client, container)
    officer_b = _officer(client, container)

    page = client.get(PAGE, headers=officer_a)
    assert page.status_code == 200, page.text
    assert 'href="/compliance/halts"' in page.text  # the navigation link, for the officer
    assert 'id="no-halts"' in page.text
    form = {"scope": "symbol", "target": "ACME", "reason": "news pending: <b>ACME</b>"}
    # The first post only asks for confirmation: nothing is halted yet.
    confirm = client.post(PAGE, data={**form, "csrf_token": _csrf(page.text)}, headers=officer_a)
    assert confirm.status_code == 200, confirm.text
    assert 'id="confirm-halt"' in confirm.text
    assert "<b>ACME</b>" not in confirm.text  # the reason is escaped
    assert "ACME" not in container.risk.book.controls.halted_symbols
    halted = client.post(
        PAGE,
        data={**form, "confirmed": "yes", "csrf_token": _csrf(confirm.text)},
        headers=officer_a,
        follow_redirects=False,
    )
    assert halted.status_code == 303, halted.text
    assert "ACME" in container.risk.book.controls.halted_symbols

    # The trader's new order in ACME is refused at once.
    refused = place(container, trader, "buy", "1", "94.50")
    assert refused["status"] == "rejected", refused
    assert "halt" in str(refused["reason"]), refused

    page = client.get(PAGE, headers=officer_a)
    halt_id = _halt_id(page.text, "ACME")
    row = unescape(page.text.split(f'data-halt="{halt_id}"')[1].split("</tr>")[0])
    assert "news pending: <b>ACME</b>" in row  # who, why, when
    assert "user:" in row  # the officer who halted
    assert '<tr data-kind="halt">' in page.text

    # Officer A asks to resume, and cannot approve their own request.
    asked = client.post(
        f"{PAGE}/{halt_id}/resume-request",
        data={"reason": "news out", "csrf_token": _csrf(page.text)},
        headers=officer_a,
        follow_redirects=False,
    )
    assert asked.status_code == 303, asked.text
    own = client.get(PAGE, headers=officer_a).text
    queued = own.split('id="resume-queue"')[1].split("</ul>")[0]
    assert "data-own-request" in queued
    assert f"/compliance/halts/{halt_id}/approve" not in queued
    self_approved = client.post(
        f"{PAGE}/{halt_id}/approve", data={"csrf_token": _csrf(own)}, headers=officer_a
    )
    assert self_approved.status_code == 403
    assert "cannot also approve" in self_approved.text
    assert "ACME" in container.risk.book.controls.halted_symbols

    # Officer B sees the request with its approve button, approves, and trading resumes.
    other = client.get(PAGE, headers=officer_b).text
    assert f'action="/compliance/halts/{halt_id}/approve"' in other
    approved = client.post(
        f"{PAGE}/{halt_id}/approve",
        data={"csrf_token": _csrf(other)},
        headers=officer_b,
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    assert "ACME" not in container.risk.book.controls.halted_symbols
    resumed = place(container, trader, "buy", "1", "94.00")
    assert resumed["status"] == "accepted", str(resumed)
    after = client.get(PAGE, headers=officer_b).text
    assert 'id="no-halts"' in after
    kinds = re.findall(r'<tr data-kind="([^"]+)">', after)
    assert {"halt", "resume-requested", "resume-refused", "resume"} <= set(kinds)


def test_the_trader_sees_the_halt_on_the_market_page(
    client: TestClient, container: Container
) -> None:
    officer = _officer(client, container)
    trader = _signed_in_trader(client, container)
    fund(container, trader, "1")
    # The trader holds ACME: a seller's resting offer fills the trader's buy.
    fund(container, "halts-page-seller", "100000")
    locate(container, "halts-page-seller")
    assert (
        place(container, "halts-page-seller", "sell_short", "10", "95.50")["status"] == "accepted"
    )
    assert place(container, trader, "buy", "10", "95.50")["status"] == "filled"
    page = client.get(PAGE, headers=officer).text
    form = {"scope": "symbol", "target": "ACME", "reason": "volatility", "confirmed": "yes"}
    halted = client.post(
        PAGE, data={**form, "csrf_token": _csrf(page)}, headers=officer, follow_redirects=False
    )
    assert halted.status_code == 303, halted.text
    market = client.get("/market")
    assert market.status_code == 200
    assert "ACME halted or restricted" in market.text


def test_the_kill_switch_halts_the_market(client: TestClient, container: Container) -> None:
    officer = _officer(client, container)
    page = client.get(PAGE, headers=officer).text
    form = {"scope": "market", "target": "ignored", "reason": "exchange outage"}
    confirm = client.post(PAGE, data={**form, "csrf_token": _csrf(page)}, headers=officer)
    assert "Halt the whole market?" in confirm.text
    done = client.post(
        PAGE,
        data={**form, "confirmed": "yes", "csrf_token": _csrf(page)},
        headers=officer,
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert container.risk.book.controls.market_halted
    assert 'data-scope="market"' in client.get(PAGE, headers=officer).text


def test_a_halt_without_a_reason_comes_back_as_typed(
    client: TestClient, container: Container
) -> None:
    officer = _officer(client, container)
    page = client.get(PAGE, headers=officer).text
    back = client.post(
        PAGE,
        data={"scope": "symbol", "target": "ACME", "reason": " ", "csrf_token": _csrf(page)},
        headers=officer,
    )
    assert back.status_code == 422
    assert 'value="ACME"' in back.text
    assert not container.risk.book.controls.halted_symbols


def test_a_trader_gets_a_403_page_and_no_link(client: TestClient, container: Container) -> None:
    _signed_in_trader(client, container)
    assert 'href="/compliance/halts"' not in client.get("/portfolio").text
    refused = client.get(PAGE, headers=HTML)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    page = client.get("/portfolio").text
    post = client.post(
        PAGE,
        data={"scope": "market", "reason": "x", "confirmed": "yes", "csrf_token": _csrf(page)},
        headers=HTML,
    )
    assert post.status_code == 403
    assert not container.risk.book.controls.market_halted


def test_an_officer_without_a_security_key_sign_in_is_refused(
    client: TestClient, container: Container
) -> None:
    officer = new_account(container, Role.COMPLIANCE)
    signed = client.post(
        "/v1/auth/login", json={"email": email_of(container, officer), "password": ACCOUNT_PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "complete"
    headers = {**HTML, "Authorization": f"Bearer {signed.json()['access_token']}"}
    assert client.get(PAGE, headers=headers).status_code == 403
    posted = client.post(
        PAGE, data={"scope": "market", "reason": "x", "confirmed": "yes"}, headers=headers
    )
    assert posted.status_code == 403
    assert not container.risk.book.controls.market_halted


def test_signed_out_is_sent_to_sign_in(client: TestClient) -> None:
    response = client.get(PAGE, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_a_stale_step_up_links_to_the_step_up_and_keeps_what_was_typed(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    officer = new_account(container, Role.COMPLIANCE)
    key = enrol_security_key(container, officer)
    tokens = sign_in_with_key(client, email_of(container, officer), ACCOUNT_PASSWORD, key)
    headers = {**HTML, "Authorization": f"Bearer {tokens['access_token']}"}
    clock.advance(timedelta(minutes=5, seconds=1))
    page = client.get(PAGE, headers=headers).text  # reading needs no fresh key
    form = {"scope": "symbol", "target": "ACME", "reason": "bad print", "confirmed": "yes"}
    stale = client.post(PAGE, data={**form, "csrf_token": _csrf(page)}, headers=headers)
    assert stale.status_code == 401
    assert not container.risk.book.controls.halted_symbols
    assert 'id="step-up-needed"' in stale.text
    assert 'value="ACME"' in stale.text
    assert ">bad print</textarea>" in stale.text
    link = re.search(r'href="/security/step-up\?next=([^"]+)"', stale.text)
    assert link
    back_to = unquote(unescape(link.group(1)))
    assert back_to.startswith("/compliance/halts?")
    # The step-up page sends the officer back there, and the form is filled in again.
    step_up_page = client.get(f"/security/step-up?next={quote(back_to)}", headers=headers)
    assert step_up_page.status_code == 200
    assert f'data-next="{escape(back_to)}"' in step_up_page.text
    step_up_with_key(client, headers, key)
    again = client.get(back_to, headers=headers).text
    assert 'value="ACME"' in again
    assert ">bad print</textarea>" in again
    done = client.post(
        PAGE, data={**form, "csrf_token": _csrf(again)}, headers=headers, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert "ACME" in container.risk.book.controls.halted_symbols
