"""An API key acts for a bot, not for the person: it cannot manage the account's sign-ins.

A leaked `data` key (the least privileged) must not list the owner's sessions and devices (their
IP addresses and browsers), end their sessions, log them out everywhere, or act on the pages.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from rampart.kernel.clock import FrozenClock
from rampart.kernel.ids import new_id
from tests.access.support import new_account
from tests.apikeys.test_signed_requests import bot, create_key


def _data_key(client: TestClient) -> dict[str, Any]:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    return create_key(client, user, scopes=["data"])


def test_a_key_cannot_read_or_end_the_owners_sessions(
    client: TestClient, clock: FrozenClock
) -> None:
    key = _data_key(client)
    signed = bot(client, clock, key, secret=key["secret"])
    assert signed.get("/v1/me/sessions").status_code == 403
    assert signed.get("/v1/me/devices").status_code == 403
    # Well-formed ids: a path segment that is not an id is no route's (404 before access).
    assert signed.delete(f"/v1/me/sessions/{new_id()}").status_code == 403
    assert signed.delete(f"/v1/me/devices/{new_id()}").status_code == 403
    assert signed.post("/v1/auth/logout", json={"everywhere": True}).status_code == 403
    assert signed.post("/v1/me/close", json={"password": "guess guess guess"}).status_code == 403


def test_a_key_cannot_use_the_account_pages(client: TestClient, clock: FrozenClock) -> None:
    key = _data_key(client)
    signed = bot(client, clock, key, secret=key["secret"])
    # The client follows redirects: both end on the sign-in page, nothing was shown or done.
    page = signed.get("/security")
    assert page.url.path == "/login"
    assert page.history[0].status_code == 303
    gone = signed.post("/security/logout-everywhere")
    assert gone.url.path == "/login"
    assert gone.history[0].url.path == "/security/logout-everywhere"
