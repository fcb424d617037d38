"""Helpers for identity tests: sign up, read the dev mailbox as a person would, sign in."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.notifications.mailbox import Mailbox, MailboxEntry

PASSWORD = "correct horse battery staple 42"
LINK = re.compile(r"https?://\S+?[?&]token=([A-Za-z0-9_-]+)")


def inbox(container: Container, to: str) -> list[MailboxEntry]:
    """Deliver what is queued, then the messages addressed to `to`, newest first."""
    container.outbox_worker.drain()
    return Mailbox(container.settings.data_dir / "outbox").messages(to=to)


def latest(container: Container, to: str, kind: str) -> MailboxEntry:
    for message in inbox(container, to):
        if message.kind == kind:
            return message
    raise AssertionError(f"no {kind} message for {to}")


def link_token(container: Container, to: str, kind: str) -> str:
    match = LINK.search(latest(container, to, kind).text)
    assert match, "the message holds no link"
    return match.group(1)


def register(client: TestClient, email: str, password: str = PASSWORD) -> None:
    response = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 202, response.text


def verified_user(
    client: TestClient, container: Container, email: str, password: str = PASSWORD
) -> None:
    register(client, email, password)
    token = link_token(container, email, "verify-email")
    response = client.post("/v1/auth/verify-email", json={"token": token})
    assert response.status_code == 200, response.text


def login(
    client: TestClient, email: str, password: str = PASSWORD, device_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "password": password}
    if device_id:
        body["device_id"] = device_id
    response = client.post("/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_entries(container: Container, action: str) -> list[dict[str, Any]]:
    """The audit entries with `action`, oldest first (append_async is durable on return)."""
    from rampart.audit.service import SearchQuery

    page, _ = container.audit.search(SearchQuery(action=action, limit=100))
    return page
