"""Links and codes waiting in the outbox are sealed by the vault for their own row: the raw
database (the SQLite file, a PostgreSQL query of `outbox_message`) never holds them in clear."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from rampart.bootstrap import Container
from rampart.identity.password_changes import TOPIC_PASSWORD_RESET
from rampart.identity.service import password_reset_job
from rampart.kernel.ids import new_id
from rampart.notifications.domain import DeliveryError, EmailMessage, SmsMessage
from rampart.notifications.worker import OutboxWorker
from rampart.platform.outbox import OutboxRow
from tests.identity.support import LINK, verified_user
from tests.mfa.support import make_user


class HeldTransport:
    """Records every message it is given; refuses the first `refusals` (so they stay queued)."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.seen: list[EmailMessage | SmsMessage] = []

    def send_email(self, message: EmailMessage, now: datetime) -> None:
        self.seen.append(message)
        if self.refusals > 0:
            self.refusals -= 1
            raise DeliveryError("smtp reply 451")

    def send_sms(self, message: SmsMessage, now: datetime) -> None:
        self.send_email(EmailMessage(message.to, "", message.text, message.kind, message.id), now)


def _worker(container: Container, transport: HeldTransport) -> OutboxWorker:
    worker = OutboxWorker(
        container.db,
        container.clock,
        container.settings.notifications,
        container.vault,
        email=transport,
        sms=transport,
    )
    # The app's worker also runs the forgotten-password job (which queues the reset email).
    worker.handle(
        TOPIC_PASSWORD_RESET, password_reset_job(container.identity.accounts, container.uow)
    )
    return worker


def raw_database_text(container: Container) -> str:
    """Everything stored for the outbox, read around the ORM: the SQLite files' bytes, or
    PostgreSQL's own text of every outbox row."""
    if container.db.is_postgres:
        with container.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, topic, payload::text FROM outbox_message"))
            return "\n".join(" ".join(str(v) for v in row) for row in rows)
    path = Path(container.settings.effective_database_url.removeprefix("sqlite:///"))
    blobs = [
        p.read_bytes()
        for p in path.parent.iterdir()
        if p.name == path.name or p.name.startswith(path.name + "-")
    ]
    return b"".join(blobs).decode("latin-1")


def test_a_reset_link_is_not_in_the_raw_database(client: TestClient, container: Container) -> None:
    # The app's own worker would deliver (and scrub) at once; here delivery is driven by hand.
    container.outbox_worker.stop()
    verified_user(client, container, "ann@example.com")
    response = client.post("/v1/auth/password/forgot", json={"email": "ann@example.com"})
    assert response.status_code == 202
    # The first delivery attempt fails: the message stays queued, as it would in an outage.
    held = HeldTransport(refusals=1)
    assert _worker(container, held).drain() == 0
    (message,) = [m for m in held.seen if m.kind == "password-reset"]
    match = LINK.search(message.text)
    assert match, "the reset email holds no link"
    token = match.group(1)

    stored = raw_database_text(container)
    assert "password-reset" in stored  # the probe does see the queued row...
    assert token not in stored  # ...but not the link's token
    assert "/reset-password?token=" not in stored
    with container.db.read() as session:
        row = session.scalar(
            select(OutboxRow).where(
                OutboxRow.delivered_at.is_(None), OutboxRow.topic == "notify.email"
            )
        )
        assert row is not None
        assert "text" not in row.payload
        assert base64.b64decode(row.payload["sealed_text"]).startswith(b"RV")

    # Delivered later: the person receives the very link, and the row keeps nothing of it.
    container.clock.advance(60)  # type: ignore[attr-defined]
    assert _worker(container, held).drain() == 1
    assert token in held.seen[-1].text
    with container.db.read() as session:
        delivered = session.get(OutboxRow, row.id)
        assert delivered is not None
        assert delivered.payload == {"kind": "password-reset", "scrubbed": True}
    reset = client.post(
        "/v1/auth/password/reset", json={"token": token, "password": "a brand new passphrase 55"}
    )
    assert reset.status_code == 200, reset.text


def test_a_one_time_code_is_not_in_the_raw_database(container: Container) -> None:
    user = make_user(container)
    with container.uow() as uow:
        container.mfa.enrol_sms(uow, user, "+44 7700 900123")
        uow.commit()
    held = HeldTransport(refusals=1)
    _worker(container, held).drain()
    (sms,) = held.seen
    code = re.search(r"\b(\d{6})\b", sms.text)
    assert code
    stored = raw_database_text(container)
    assert "mfa-code" in stored
    assert f"code {code.group(1)}" not in stored
    assert "Rampart code" not in stored


def test_a_sealed_body_opens_for_its_own_row_only(container: Container) -> None:
    with container.uow() as uow:
        container.notifications.email(
            uow, to="ann@example.com", subject="Hi", text="secret link", kind="verify-email"
        )
        uow.commit()
    with container.uow() as uow:
        original = uow.session.scalars(select(OutboxRow)).one()
        # Someone with write access copies the sealed body into a row addressed to themself.
        copy = OutboxRow(
            id=new_id(),
            topic=original.topic,
            payload={**original.payload, "to": "mallory@example.com"},
            created_at=original.created_at,
            available_at=original.available_at,
            attempts=0,
        )
        uow.session.add(copy)
        uow.commit()
        copy_id = copy.id
    held = HeldTransport()
    assert _worker(container, held).drain() == 1
    assert [(m.to, m.text) for m in held.seen] == [("ann@example.com", "secret link")]
    with container.db.read() as session:
        refused = session.get(OutboxRow, copy_id)
        assert refused is not None
        assert refused.delivered_at is None
        assert refused.attempts == container.settings.notifications.max_attempts
        assert refused.last_error == "sealed body cannot be opened"
