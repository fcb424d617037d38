"""A bot's owner onboards the way a real user does, against a live server: sign up over HTTP,
confirm the address from the dev mailbox, sign in, enrol an authenticator app, step up, create
an API key, and run a bot with `rampart.client`. No test authenticator, no frozen clock: the
server is uvicorn on 127.0.0.1 in a thread, the codes come from pyotp, the link from the inbox.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import uvicorn

from rampart.bootstrap import bootstrap
from rampart.client import RampartClient
from rampart.config import Settings

pytestmark = pytest.mark.slow

EMAIL = "bot.owner@example.com"
PASSWORD = "a long onboarding passphrase 73"
PROBLEM = "urn:rampart:problem:"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The real app, wired as `rampart serve` wires it, served by uvicorn on a free port."""
    from rampart.web.app import create_app

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        profile="dev", data_dir=tmp_path / "var", database_url=database_url, public_url=base
    )
    # The app's lifespan starts the container (outbox worker included) and closes it.
    app = create_app(bootstrap(settings))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


def _problem(response: httpx.Response) -> str:
    return str(response.json()["type"]).removeprefix(PROBLEM)


def _link_from_mailbox(http: httpx.Client, to: str, subject: str) -> str:
    """Open the dev mailbox page, find the message, open it, take the link: as a person would."""
    row = re.compile(
        r"<td>"
        + re.escape(to)
        + r'</td>\s*<td><a href="(/dev/mailbox/[0-9a-f-]{36})">'
        + re.escape(subject)
    )
    deadline = time.monotonic() + 30
    while True:
        listing = http.get("/dev/mailbox")
        assert listing.status_code == 200
        found = row.search(listing.text)
        if found:
            break
        # The outbox worker delivers within its poll interval; wait for it like an inbox.
        assert time.monotonic() < deadline, "the message never arrived"
        time.sleep(0.1)
    message = http.get(found.group(1))
    assert message.status_code == 200
    link = re.search(r'href="(http://[^"]+/verify-email\?token=([A-Za-z0-9_-]+))"', message.text)
    assert link, "the message holds no confirmation link"
    return link.group(2)


def _totp_code_for_step(totp: pyotp.TOTP, step: int) -> str:
    return totp.at(step * totp.interval)


def test_a_bot_owner_onboards_and_runs_a_signed_bot(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as http:
        # Sign up and confirm the address from the inbox.
        signed_up = http.post("/v1/auth/register", json={"email": EMAIL, "password": PASSWORD})
        assert signed_up.status_code == 202, signed_up.text
        token = _link_from_mailbox(http, EMAIL, "Confirm your email address")
        verified = http.post("/v1/auth/verify-email", json={"token": token})
        assert verified.status_code == 200, verified.text

        # Sign in (no factor yet: the password completes it).
        login = http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["status"] == "complete"
        me = {"Authorization": f"Bearer {login.json()['access_token']}"}
        profile = http.get("/v1/me", headers=me).json()
        assert profile["email"] == EMAIL
        assert profile["email_verified"] is True

        # Without a second factor, no API key (the platform requires one for keys).
        refused = http.post("/api/v1/apikeys", headers=me, json={"scopes": ["read"]})
        assert (refused.status_code, _problem(refused)) == (403, "mfa-enrolment-required")

        # Enrol an authenticator app: the secret from the API, codes computed by pyotp.
        begun = http.post("/v1/mfa/totp", headers=me)
        assert begun.status_code == 200, begun.text
        assert begun.json()["otpauth_uri"].startswith("otpauth://totp/")
        totp = pyotp.TOTP(begun.json()["secret"])
        step = int(time.time() // totp.interval)
        confirmed = http.post(
            "/v1/mfa/totp/confirm",
            headers=me,
            json={"code": _totp_code_for_step(totp, step - 1)},
        )
        assert confirmed.status_code == 200, confirmed.text
        assert len(confirmed.json()["backup_codes"]) == 10

        # Step up: the code that confirmed the app (the step before, accepted one step late)
        # is spent, so the current one proves it again.
        replayed = http.post(
            "/v1/mfa/step-up",
            headers=me,
            json={"kind": "totp", "code": _totp_code_for_step(totp, step - 1)},
        )
        assert replayed.status_code == 401
        stepped = http.post(
            "/v1/mfa/step-up",
            headers=me,
            json={"kind": "totp", "code": _totp_code_for_step(totp, step)},
        )
        assert stepped.status_code == 200, stepped.text

        # Create an HMAC key: the secret is shown this once.
        created = http.post(
            "/api/v1/apikeys", headers=me, json={"scopes": ["trade", "read"], "label": "my bot"}
        )
        assert created.status_code == 201, created.text
        trade_key: dict[str, Any] = created.json()
        assert trade_key["secret"].startswith("rmp_test_")
        data_created = http.post(
            "/api/v1/apikeys", headers=me, json={"scopes": ["data"], "label": "quotes"}
        )
        assert data_created.status_code == 201, data_created.text
        data_key: dict[str, Any] = data_created.json()

        # The bot: signed requests over the network with the client users' bots use.
        with RampartClient(
            live_server, key_id=trade_key["key_id"], secret=trade_key["secret"]
        ) as bot:
            as_bot = bot.get("/v1/me")
            assert as_bot.status_code == 200, as_bot.text
            assert as_bot.json()["email"] == EMAIL
            assert "order:place" in as_bot.json()["permissions"]
            assert "account:withdraw" not in as_bot.json()["permissions"]
            who = bot.get("/api/v1/apikeys/whoami").json()
            assert who["actor"] == f"apikey:{trade_key['key_id']}"
            assert who["method"] == "apikey"

            # A key that only reads market data cannot place an order.
            with RampartClient(
                live_server, key_id=data_key["key_id"], secret=data_key["secret"]
            ) as quotes:
                order = quotes.post(
                    "/v1/orders",
                    json={"symbol": "ACME", "side": "buy", "quantity": "1", "limit_price": "10"},
                )
                assert (order.status_code, _problem(order)) == (403, "permission-denied")

            # The owner revokes the key; the very next signed request is refused, and says why.
            revoked = http.delete(f"/api/v1/apikeys/{trade_key['key_id']}", headers=me)
            assert revoked.status_code == 200, revoked.text
            assert revoked.json()["state"] == "revoked"
            after = bot.get("/v1/me")
            assert after.status_code == 401
            assert after.json()["type"] == PROBLEM + "apikey-revoked"
            assert after.headers["www-authenticate"].startswith("Signature")
