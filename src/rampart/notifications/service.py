"""Queueing notifications: written to the transactional outbox with the change that causes them.

A service that wants an email sent calls `NotificationService.email(uow, ...)`; the message is
committed with the business change or not at all, and `OutboxWorker` delivers it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

from rampart.kernel.events import OutboxMessage
from rampart.notifications.domain import MAX_BODY, MAX_SMS, MAX_SUBJECT, TOPIC_EMAIL, TOPIC_SMS
from rampart.platform.uow import UnitOfWork


class NotificationService:
    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self._wake = wake

    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None:
        """Queue an email in the caller's transaction."""
        uow.emit(
            OutboxMessage(
                topic=TOPIC_EMAIL,
                payload={
                    "to": to,
                    "subject": subject[:MAX_SUBJECT],
                    "text": text[:MAX_BODY],
                    "kind": kind,
                },
            )
        )
        if self._wake is not None:
            uow.after_commit(self._wake)

    def sms(self, uow: UnitOfWork, *, to: str, text: str, kind: str) -> None:
        """Queue a text message in the caller's transaction."""
        uow.emit(
            OutboxMessage(topic=TOPIC_SMS, payload={"to": to, "text": text[:MAX_SMS], "kind": kind})
        )
        if self._wake is not None:
            uow.after_commit(self._wake)
