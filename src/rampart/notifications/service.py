"""Queueing notifications: written to the transactional outbox with the change that causes them.

A service that wants an email sent calls `NotificationService.email(uow, ...)`; the message is
committed with the business change or not at all, and `OutboxWorker` delivers it afterwards.

The body of every message is sealed by the vault (`Purpose.NOTIFICATION_BODY`) and bound to its
outbox row: bodies carry single-use links and one-time codes, and a database dump, a replica or a
backup taken while a message waits must not hand them out. The worker opens the body only to
deliver it, then scrubs the row. Recipient, subject and kind stay readable, for operations.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from rampart.kernel.clock import Clock
from rampart.kernel.ids import new_id
from rampart.notifications.domain import MAX_BODY, MAX_SMS, MAX_SUBJECT, TOPIC_EMAIL, TOPIC_SMS
from rampart.platform.outbox import OutboxRow
from rampart.platform.uow import UnitOfWork
from rampart.vault.domain import Purpose, SealContext
from rampart.vault.service import VaultService

#: The payload field holding the sealed body (base64 of the vault's ciphertext).
SEALED_FIELD = "sealed_text"


def body_context(row_id: str) -> SealContext:
    """Where a sealed body lives: it opens for this outbox row only."""
    return SealContext(table=OutboxRow.__tablename__, column="payload", row_id=row_id)


class NotificationService:
    def __init__(
        self, vault: VaultService, clock: Clock, wake: Callable[[], None] | None = None
    ) -> None:
        self._vault = vault
        self._clock = clock
        self._wake = wake

    def _queue(self, uow: UnitOfWork, topic: str, fields: dict[str, Any], text: str) -> None:
        # Written here rather than with `uow.emit`, which picks the row id itself: the body is
        # sealed for the row's id, so the id must be known before the row is written.
        row_id = new_id()
        sealed = self._vault.seal(uow, Purpose.NOTIFICATION_BODY, text, body_context(row_id))
        now = self._clock.now()
        uow.session.add(
            OutboxRow(
                id=row_id,
                topic=topic,
                payload={**fields, SEALED_FIELD: base64.b64encode(sealed).decode("ascii")},
                created_at=now,
                available_at=now,
                attempts=0,
            )
        )
        if self._wake is not None:
            uow.after_commit(self._wake)

    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None:
        """Queue an email in the caller's transaction."""
        self._queue(
            uow,
            TOPIC_EMAIL,
            {"to": to, "subject": subject[:MAX_SUBJECT], "kind": kind},
            text[:MAX_BODY],
        )

    def sms(self, uow: UnitOfWork, *, to: str, text: str, kind: str) -> None:
        """Queue a text message in the caller's transaction."""
        self._queue(uow, TOPIC_SMS, {"to": to, "kind": kind}, text[:MAX_SMS])
