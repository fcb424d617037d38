"""The API keys page in a browser's shoes: create (after a step-up, with what was typed kept),
the secret shown once, the list without it, rotate and revoke behind a confirmation, only ever
the person's own keys, and forms refused without their CSRF token."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from tests.identity.support import PASSWORD, verified_user
from tests.web.test_pages_market import _csrf, _user_id

from rampart.bootstrap import Container
from rampart.client import RampartClient
from rampart.kernel.clock import FrozenClock

EMAIL = "kay@example.com"
SECRET = re.compile(r'<code id="new-key-secret" class="secret">([^<]+)</code>')
KEY_ID = re.compile(r'<code id="new-key-id">([^<]+)</code>')


def _sign_in(client: TestClient, container: Container, email: str = EMAIL) -> str:
    verified_user(client, container, email)
    page = client.get("/login")
    signed = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    return _user_id(container, email)


def _enrol_totp(container: Container, user_id: str) -> pyotp.TOTP:
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user_id, f"{user_id}@keys-tests.invalid")
        totp = pyotp.TOTP(enrolment.secret)
        container.mfa.confirm_totp(uow, user_id, totp.at(container.clock.now())).raise_for_failure()
        uow.commit()
    return totp


def _step_up(
    client: TestClient, container: Container, totp: pyotp.TOTP, clock: FrozenClock, next_path: str
) -> httpx.Response:
    clock.advance(31)  # a new code: the one that confirmed the enrolment is spent
    page = client.get(f"/security/step-up?next={next_path}")
    assert page.status_code == 200, page.text
    done = client.post(
        "/security/step-up",
        data={
            "kind": "totp",
            "code": totp.at(container.clock.now()),
            "next": unquote(next_path),
            "csrf_token": _csrf(page.text),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return done


@pytest.fixture
def stepped_up(client: TestClient, container: Container, clock: FrozenClock) -> str:
    """A signed-in person with an authenticator app, stepped up just now."""
    user_id = _sign_in(client, container)
    totp = _enrol_totp(container, user_id)
    _step_up(client, container, totp, clock, "/keys")
    return user_id


def _create(client: TestClient, **values: Any) -> httpx.Response:
    page = client.get("/keys")
    form: dict[str, Any] = {"csrf_token": _csrf(page.text), "scopes": ["read"], **values}
    return client.post("/keys", data=form, follow_redirects=False)


def _secret_and_id(page: str) -> tuple[str, str]:
    secret, key_id = SECRET.search(page), KEY_ID.search(page)
    assert secret, "the page shows no new secret"
    assert key_id, "the page shows no new key"
    return html.unescape(secret.group(1)), key_id.group(1)


@contextmanager
def _bot(client: TestClient, key_id: str, secret: str) -> Iterator[RampartClient]:
    # A client of its own: no session cookie, only the key's signature authenticates it.
    own = TestClient(client.app, base_url=str(client.base_url))
    clock = client.app.state.container.clock  # type: ignore[attr-defined]
    with RampartClient(
        str(client.base_url),
        key_id=key_id,
        secret=secret,
        http_client=own,
        now=lambda: clock.now().timestamp(),
    ) as bot:
        yield bot


def test_signed_out_is_sent_to_sign_in(client: TestClient) -> None:
    response = client.get("/keys", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_create_shows_the_secret_once_and_it_signs_requests(
    client: TestClient, container: Container, stepped_up: str
) -> None:
    created = _create(
        client,
        label="market maker",
        scopes=["read", "trade"],
        allowed_cidrs="10.0.0.0/8\n192.0.2.7",
        expires_on="2099-01-31",
        algorithm="hmac-sha256",
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    secret, key_id = _secret_and_id(created.text)
    assert secret.startswith("rmp_")
    # The examples are for this key, and read the secret from the environment, not the page.
    assert created.text.count(key_id) >= 4
    assert "RampartClient(" in created.text
    assert "crypto.createHmac" in created.text
    assert created.text.count(secret) == 1
    assert 'src="/static/keys.js"' in created.text
    assert 'data-copy="new-key-secret"' in created.text

    listing = client.get("/keys")
    assert listing.headers["cache-control"] == "no-store"
    assert secret not in listing.text
    assert secret[:13] in listing.text  # the prefix that tells keys apart
    row = re.search(rf'<tr data-key="{key_id}" data-state="active">(.*?)</tr>', listing.text, re.S)
    assert row, listing.text
    cells = row.group(1)
    for shown in (
        "market maker",
        "read, trade",
        "hmac-sha256",
        "10.0.0.0/8, 192.0.2.7",
        "2099-01-31 00:00 UTC",
        "never",
    ):
        assert shown in cells, shown

    # The shown secret works from rampart.client (from an allowed address: the test client's
    # `testclient` host is no IP, so the key here has no allow-list).
    open_key = _create(client, label="bot", scopes=["read"])
    bot_secret, bot_key = _secret_and_id(open_key.text)
    with _bot(client, bot_key, bot_secret) as bot:
        who = bot.get("/api/v1/apikeys/whoami")
    assert who.status_code == 200, who.text
    assert who.json()["user_id"] == stepped_up
    assert who.json()["method"] == "apikey"
    used = client.get("/keys").text
    bot_row = re.search(rf'<tr data-key="{bot_key}"[^>]*>(.*?)</tr>', used, re.S)
    assert bot_row
    last_used = re.search(r'<td data-field="last-used">(.*?)</td>', bot_row.group(1), re.S)
    assert last_used, bot_row.group(1)
    assert "UTC" in last_used.group(1), bot_row.group(1)


def test_the_plain_python_example_signs_as_the_server_verifies(
    client: TestClient, container: Container, stepped_up: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import urllib.request

    created = _create(client, label="plain", scopes=["read"])
    secret, key_id = _secret_and_id(created.text)
    code = re.search(
        r'<code id="example-python" class="language-python">(.*?)</code>', created.text, re.S
    )
    assert code
    answers: list[dict[str, Any]] = []

    class Answer:
        def __init__(self, response: httpx.Response) -> None:
            self._response = response

        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self, *_: Any) -> bytes:
            return self._response.content

    def urlopen(request: urllib.request.Request) -> Answer:
        # The example's own request, sent through the test client as it was built.
        response = TestClient(client.app, base_url=str(client.base_url)).request(
            request.get_method(),
            request.full_url,
            headers=dict(request.header_items()),
            content=request.data,
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
        return Answer(response)

    monkeypatch.setenv("RAMPART_API_SECRET", secret)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    # The server reads the tests' frozen clock: the example's `created` must agree with it.
    monkeypatch.setattr("time.time", lambda: container.clock.now().timestamp())
    exec(compile(html.unescape(code.group(1)), "example.py", "exec"), {"json": json})  # noqa: S102
    assert answers
    assert answers[0]["user_id"] == stepped_up
    assert key_id in answers[0]["actor"]


def test_creating_a_key_needs_a_step_up_and_keeps_what_was_typed(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user_id = _sign_in(client, container)
    totp = _enrol_totp(container, user_id)
    refused = _create(
        client,
        label="due",
        scopes=["read", "data"],
        allowed_cidrs="10.1.0.0/16",
        expires_on="2099-02-01",
    )
    assert refused.status_code == 401
    assert SECRET.search(refused.text) is None
    assert 'value="due"' in refused.text
    assert "10.1.0.0/16</textarea>" in refused.text
    with container.db.read() as session:
        assert container.apikeys.list_for_user(session, user_id) == []
    link = re.search(r'<a href="(/security/step-up\?next=[^"]+)">', refused.text)
    assert link
    next_path = html.unescape(link.group(1)).split("next=", 1)[1]
    back = _step_up(client, container, totp, clock, next_path)
    # Back on the form, filled in as typed.
    form = client.get(back.headers["location"])
    assert form.status_code == 200
    assert 'value="due"' in form.text
    assert 'id="scope-read" name="scopes" value="read" checked' in form.text
    assert 'id="scope-data" name="scopes" value="data" checked' in form.text
    assert 'id="scope-trade" name="scopes" value="trade">' in form.text
    assert "10.1.0.0/16</textarea>" in form.text
    assert 'value="2099-02-01"' in form.text
    created = _create(client, label="due", scopes=["read"])
    assert created.status_code == 201, created.text

    # Rotating needs the step-up too; revoking never does.
    _, key_id = _secret_and_id(created.text)
    clock.advance(container.settings.mfa.step_up_minutes * 60 + 1)
    confirm = client.get(f"/keys/{key_id}/rotate")
    rotate = client.post(
        f"/keys/{key_id}/rotate", data={"csrf_token": _csrf(confirm.text)}, follow_redirects=False
    )
    assert rotate.status_code == 401
    assert f"/security/step-up?next=%2Fkeys%2F{key_id}%2Frotate" in rotate.text
    confirm = client.get(f"/keys/{key_id}/revoke")
    revoked = client.post(
        f"/keys/{key_id}/revoke", data={"csrf_token": _csrf(confirm.text)}, follow_redirects=False
    )
    assert revoked.status_code == 303


def test_without_a_second_factor_the_page_says_to_set_one_up(
    client: TestClient, container: Container
) -> None:
    _sign_in(client, container)
    refused = _create(client, label="none")
    assert refused.status_code == 403
    assert 'href="/security/mfa"' in refused.text
    assert SECRET.search(refused.text) is None


def test_rotate_and_revoke_after_a_confirmation(
    client: TestClient, container: Container, stepped_up: str
) -> None:
    created = _create(client, label="to rotate", scopes=["read"])
    old_secret, old_id = _secret_and_id(created.text)

    confirm = client.get(f"/keys/{old_id}/rotate")
    assert confirm.status_code == 200
    assert "Rotate the key" in confirm.text
    assert "24 hours" in confirm.text
    rotated = client.post(
        f"/keys/{old_id}/rotate", data={"csrf_token": _csrf(confirm.text)}, follow_redirects=False
    )
    assert rotated.status_code == 200, rotated.text
    assert "The key was rotated." in rotated.text
    new_secret, new_id = _secret_and_id(rotated.text)
    assert new_id != old_id
    assert new_secret != old_secret
    listing = client.get("/keys").text
    assert f'data-key="{old_id}" data-state="rotating"' in listing
    assert f'data-key="{new_id}" data-state="active"' in listing
    # Both work during the grace period.
    for key_id, secret in ((old_id, old_secret), (new_id, new_secret)):
        with _bot(client, key_id, secret) as bot:
            assert bot.get("/api/v1/apikeys/whoami").status_code == 200

    confirm = client.get(f"/keys/{new_id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke the key" in confirm.text
    revoked = client.post(
        f"/keys/{new_id}/revoke", data={"csrf_token": _csrf(confirm.text)}, follow_redirects=False
    )
    assert revoked.status_code == 303
    shown = client.get(revoked.headers["location"])
    assert "The key was revoked" in shown.text
    assert f'data-key="{new_id}" data-state="revoked"' in shown.text
    with _bot(client, new_id, new_secret) as bot:
        assert bot.get("/api/v1/apikeys/whoami").status_code == 401


def test_another_persons_key_is_not_found(
    client: TestClient, container: Container, stepped_up: str
) -> None:
    created = _create(client, label="mine", scopes=["read"])
    _, key_id = _secret_and_id(created.text)
    page = client.get("/keys")
    token = _csrf(page.text)
    client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    client.cookies.clear()
    _sign_in(client, container, "eve@example.com")
    eve = client.get("/keys")
    assert key_id not in eve.text
    assert client.get(f"/keys/{key_id}/revoke").status_code == 404
    refused = client.post(
        f"/keys/{key_id}/revoke", data={"csrf_token": _csrf(eve.text)}, follow_redirects=False
    )
    assert refused.status_code == 404
    with container.db.read() as session:
        views = container.apikeys.list_for_user(session, stepped_up)
    assert [v.state for v in views] == ["active"]


def test_forms_are_refused_without_the_csrf_token(
    client: TestClient, container: Container, stepped_up: str
) -> None:
    for token in (None, "forged-token-value"):
        data: dict[str, Any] = {"scopes": ["read"], "label": "forged"}
        if token:
            data["csrf_token"] = token
        refused = client.post("/keys", data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert refused.json()["type"] == "urn:rampart:problem:csrf-failed"
    with container.db.read() as session:
        assert container.apikeys.list_for_user(session, stepped_up) == []
    created = _create(client, label="real", scopes=["read"])
    _, key_id = _secret_and_id(created.text)
    for path in (f"/keys/{key_id}/revoke", f"/keys/{key_id}/rotate"):
        refused = client.post(path, data={}, follow_redirects=False)
        assert refused.status_code == 403
    with container.db.read() as session:
        assert [v.state for v in container.apikeys.list_for_user(session, stepped_up)] == ["active"]


def test_an_invalid_form_comes_back_as_typed_with_the_reason(
    client: TestClient, container: Container, stepped_up: str
) -> None:
    refused = _create(client, label="typo", scopes=["read"], allowed_cidrs="10.0.0.300/8")
    assert refused.status_code == 422
    assert SECRET.search(refused.text) is None
    assert 'value="typo"' in refused.text
    assert "10.0.0.300/8</textarea>" in refused.text
    assert 'class="errors"' in refused.text
    past = _create(client, label="late", scopes=["read"], expires_on="2001-01-01")
    assert past.status_code == 422
    assert 'value="2001-01-01"' in past.text
    with container.db.read() as session:
        assert container.apikeys.list_for_user(session, stepped_up) == []
