"""`Notifier` in memory: what was queued is "delivered" into lists when the transaction commits.

It plays both parts of the outbox, the queue and the worker: `sent` holds the delivered
messages (cut to the same lengths as the outbox cuts them), and `handle(topic, handler)` runs a
job's handler, as `OutboxWorker.handle` does.
"""

from __future__ import annotations

from collections.abc import Callable

from rampart.kernel.ids import new_id
from rampart.notifications.domain import MAX_BODY, MAX_SMS, MAX_SUBJECT, EmailMessage, SmsMessage
from rampart.platform.memory import Transaction


class InMemoryNotifier:
    def __init__(self) -> None:
        self.sent: list[EmailMessage | SmsMessage] = []
        #: Every job committed, as (topic, secret), handled or not.
        self.jobs: list[tuple[str, str]] = []
        self._handlers: dict[str, Callable[[str], None]] = {}

    def handle(self, topic: str, handler: Callable[[str], None]) -> None:
        self._handlers[topic] = handler

    def email(self, uow: Transaction, *, to: str, subject: str, text: str, kind: str) -> None:
        message = EmailMessage(to, subject[:MAX_SUBJECT], text[:MAX_BODY], kind, new_id())
        uow.after_commit(lambda: self.sent.append(message))

    def sms(self, uow: Transaction, *, to: str, text: str, kind: str) -> None:
        message = SmsMessage(to, text[:MAX_SMS], kind, new_id())
        uow.after_commit(lambda: self.sent.append(message))

    def job(self, uow: Transaction, *, topic: str, secret: str) -> None:
        def run() -> None:
            self.jobs.append((topic, secret[:MAX_BODY]))
            handler = self._handlers.get(topic)
            if handler is not None:
                handler(secret[:MAX_BODY])

        uow.after_commit(run)
