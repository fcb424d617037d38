"""Queueing notifications: written to the transactional outbox with the change that causes them.

A service that wants an email sent calls `NotificationService.email(uow, ...)`; the message is
committed with the business change or not at all, and `OutboxWorker` delivers it afterwards.

The body and the recipient of every message are sealed by the vault
(`Purpose.NOTIFICATION_BODY`) and bound to their outbox row: bodies carry single-use links and
one-time codes, recipients are personal data (an address, a phone number), and a database dump,
a replica or a backup taken while a message waits must hand out neither. The worker opens them
only to deliver, then scrubs the row. Subject and kind stay readable, for operations.

`job(uow, topic, secret)` queues work for a handler registered with the worker
(`OutboxWorker.handle`) the same way: a request can hand work that must not happen inside it
(and must not show in its cost) to the background, sealed, in its own transaction.
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
#: The payload field holding the sealed recipient.
SEALED_TO_FIELD = "sealed_to"


def body_context(row_id: str) -> SealContext:
    """Where a sealed body lives: it opens for this outbox row only."""
    return SealContext(table=OutboxRow.__tablename__, column="payload", row_id=row_id)


def recipient_context(row_id: str) -> SealContext:
    """Where a sealed recipient lives: this row only, and never in place of the body."""
    return SealContext(table=OutboxRow.__tablename__, column="payload.to", row_id=row_id)


class NotificationService:
    def __init__(
        self, vault: VaultService, clock: Clock, wake: Callable[[], None] | None = None
    ) -> None:
        self._vault = vault
        self._clock = clock
        self._wake = wake

    def _queue(
        self, uow: UnitOfWork, topic: str, fields: dict[str, Any], text: str, to: str | None
    ) -> None:
        # Written here rather than with `uow.emit`, which picks the row id itself: the body is
        # sealed for the row's id, so the id must be known before the row is written.
        row_id = new_id()
        sealed = {SEALED_FIELD: self._seal(uow, text, body_context(row_id))}
        if to is not None:
            sealed[SEALED_TO_FIELD] = self._seal(uow, to, recipient_context(row_id))
        now = self._clock.now()
        uow.session.add(
            OutboxRow(
                id=row_id,
                topic=topic,
                payload={**fields, **sealed},
                created_at=now,
                available_at=now,
                attempts=0,
            )
        )
        if self._wake is not None:
            uow.after_commit(self._wake)

    def _seal(self, uow: UnitOfWork, value: str, context: SealContext) -> str:
        sealed = self._vault.seal(uow, Purpose.NOTIFICATION_BODY, value, context)
        return base64.b64encode(sealed).decode("ascii")

    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None:
        """Queue an email in the caller's transaction."""
        self._queue(
            uow, TOPIC_EMAIL, {"subject": subject[:MAX_SUBJECT], "kind": kind}, text[:MAX_BODY], to
        )

    def sms(self, uow: UnitOfWork, *, to: str, text: str, kind: str) -> None:
        """Queue a text message in the caller's transaction."""
        self._queue(uow, TOPIC_SMS, {"kind": kind}, text[:MAX_SMS], to)

    def job(self, uow: UnitOfWork, *, topic: str, secret: str) -> None:
        """Queue `secret` for the worker's handler of `topic`, sealed, in the caller's
        transaction. Every call writes the same one row, whatever `secret` is."""
        self._queue(uow, topic, {"kind": topic}, secret[:MAX_BODY], None)
