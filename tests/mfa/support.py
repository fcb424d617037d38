"""Helpers for MFA tests: a user row, reading codes from the outbox as the user's inbox would."""

from __future__ import annotations

import base64
import re
from typing import Any

from sqlalchemy import select

from rampart.bootstrap import Container
from rampart.identity.db import UserRow
from rampart.identity.mfa.domain import totp_code, totp_step
from rampart.kernel.ids import new_id
from rampart.notifications.service import SEALED_TO_FIELD, recipient_context
from rampart.platform.outbox import OutboxRow
from rampart.vault import Purpose

_CODE = re.compile(r"\b(\d{6})\b")


def make_user(container: Container, email: str = "ann@example.com") -> str:
    """A verified, active account, inserted directly: these tests are about second factors."""
    now = container.clock.now()
    user_id = new_id()
    with container.uow() as uow:
        user = UserRow(
            id=user_id,
            email_verified_at=now,
            password_hash=None,
            status="active",
            created_at=now,
            updated_at=now,
        )
        container.identity.accounts.set_email(uow.session, user, email)
        uow.session.add(user)
        uow.commit()
    return user_id


def outbox(container: Container, *, kind: str | None = None) -> list[dict[str, Any]]:
    """The queued messages, with their recipient opened as the worker opens it to send."""
    with container.db.read() as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.created_at, OutboxRow.id))
        payloads = []
        for row in rows:
            payload = dict(row.payload) | {"topic": row.topic}
            if SEALED_TO_FIELD in payload:
                payload["to"] = container.vault.open_text(
                    session,
                    Purpose.NOTIFICATION_BODY,
                    base64.b64decode(payload[SEALED_TO_FIELD]),
                    recipient_context(row.id),
                ).reveal()
            payloads.append(payload)
    return [p for p in payloads if kind is None or p.get("kind") == kind]


def last_code(container: Container, *, to: str | None = None) -> str:
    """The newest one-time code sent (to `to` when given), read from the delivered message as
    the user would (bodies in the outbox are sealed; the dev mailbox shows what was sent)."""
    from rampart.notifications.mailbox import Mailbox

    container.outbox_worker.drain()
    for message in Mailbox(container.settings.data_dir / "outbox").messages(to=to, limit=500):
        if message.kind == "mfa-code":
            match = _CODE.search(message.text)
            assert match, "a code message without a code"
            return match.group(1)
    raise AssertionError("no code was sent")


def totp_now(container: Container, seed_b32: str, offset: int = 0) -> str:
    import base64

    seed = base64.b32decode(seed_b32 + "=" * (-len(seed_b32) % 8))
    return totp_code(seed, totp_step(container.clock.now().timestamp()) + offset)
