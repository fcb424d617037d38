"""A real headless Chromium registers a security key on the security page, signs out, and signs
back in with it. The key is a CDP virtual authenticator (CTAP2 over USB, resident keys, user
verification), so the browser runs the real WebAuthn ceremonies against the real server.

WebAuthn needs a secure context: http://localhost is one, so the server is reached as
`localhost`, with RP id `localhost` and origin `http://localhost:<port>`. The `__Host-` Secure
session cookie is accepted by Chromium there for the same reason, so production cookie settings
are used unchanged.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.identity.sessions import ClientInfo  # noqa: F401 - the identity package is wired
from tests.support.services import require_chromium

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
EMAIL = "kim@example.com"
PASSWORD = "a long and unguessable passphrase 7"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The server listens on IPv4 only; do not let `localhost` resolve to ::1 first.
    "--host-resolver-rules=MAP localhost 127.0.0.1",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    require_chromium()
    import uvicorn

    from rampart.web.app import create_app

    database = tmp_path / "rampart.db"
    shutil.copyfile(sqlite_template, database)
    port = _free_port()
    origin = f"http://localhost:{port}"
    settings = Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{database}",
        host="127.0.0.1",
        port=port,
        public_url=origin,
        mfa={"webauthn_rp_id": "localhost", "webauthn_origin": origin},
        log_json=False,
        log_level="warning",
    )
    container = bootstrap(settings)
    with container.uow() as uow:
        container.identity.accounts.create_user(
            uow,
            EMAIL,
            container.identity.hashing.hasher.hash(PASSWORD),
            role="TRADER",
            verified=True,
            created_by="test",
        )
        uow.commit()
    server = uvicorn.Server(
        uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-browser-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield origin, container
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _sign_in(page, origin: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{origin}/login")
    page.fill('input[name="email"]', EMAIL)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')


def test_register_a_security_key_sign_out_and_sign_back_in_with_it(
    served: tuple[str, Container],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            authenticator = cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "usb",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                    }
                },
            )["authenticatorId"]

            # Password only: no factor yet.
            _sign_in(page, origin)
            page.wait_for_url(f"{origin}/security")
            assert "__Host-rampart_session" in {c["name"] for c in context.cookies()}

            # Enrol the key on the security page.
            page.goto(f"{origin}/security/mfa")
            page.fill("#webauthn-name", "Desk key")
            page.click("#add-security-key")
            expect(page.locator("table")).to_contain_text("Desk key", timeout=15_000)
            expect(page.locator("#mfa-new-backup-codes li")).to_have_count(10)
            page.screenshot(path=str(ARTIFACTS / "mfa-enrolment.png"), full_page=True)
            credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert len(credentials["credentials"]) == 1
            with container.db.read() as session:
                keys = container.mfa.authenticators(session, _user_id(container))
            assert [k.name for k in keys] == ["Desk key"]

            # Sign out, and back in: the password alone now stops at the second factor.
            page.click("text=Sign out")
            page.wait_for_url(f"{origin}/login*")
            _sign_in(page, origin)
            page.wait_for_url(f"{origin}/login/second-factor")
            assert "__Host-rampart_session" not in {c["name"] for c in context.cookies()}
            page.click("#use-security-key")
            page.wait_for_url(f"{origin}/security", timeout=15_000)
            expect(page.locator("h1")).to_contain_text("Security")
            used = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert used["credentials"][0]["signCount"] >= 1
        finally:
            browser.close()


def _user_id(container: Container) -> str:
    with container.db.read() as session:
        user = container.identity.accounts.by_email(session, EMAIL)
        assert user is not None
        return str(user.id)
