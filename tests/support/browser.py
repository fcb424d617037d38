"""A real server for the browser tests: the app on a free port, served by uvicorn in a thread,
on a copy of the migrated SQLite template, with one verified trader; and how Chromium is started.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from tests.support.services import require_chromium

CHROMIUM = "/usr/bin/chromium"
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


def add_security_key(context: Any, page: Any) -> tuple[Any, str]:
    """A CDP virtual authenticator on `page` (CTAP2 over USB, resident keys, user verification):
    the browser runs the real WebAuthn ceremonies with it. Returns the CDP session and its id."""
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
    return cdp, str(authenticator)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_with_trader(
    sqlite_template: Path, tmp_path: Path, email: str, password: str
) -> Iterator[tuple[str, Container]]:
    """Serve the app with a verified trader `email` / `password`; yields (origin, container)."""
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
            email,
            container.identity.hashing.hasher.hash(password),
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
