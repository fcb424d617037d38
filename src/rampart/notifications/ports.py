"""What other domains need of notifications, as one interface.

`Notifier` queues a message (email, text) or a sealed background job in the caller's
transaction: it is delivered after the commit, or never if the transaction rolls back. Every
domain that tells someone something takes a `Notifier` (identity, API keys, MFA).

Implemented by `rampart.notifications.service.NotificationService` (the outbox, delivered by
`OutboxWorker`) and `rampart.notifications.memory.InMemoryNotifier`;
`tests/notifications/test_notifier_contract.py` holds both to the same behaviour.
"""

from __future__ import annotations

from typing import Protocol

from rampart.platform.uow import UnitOfWork


class Notifier(Protocol):
    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None:
        """Queue an email in the caller's transaction."""
        ...

    def sms(self, uow: UnitOfWork, *, to: str, text: str, kind: str) -> None:
        """Queue a text message in the caller's transaction."""
        ...

    def job(self, uow: UnitOfWork, *, topic: str, secret: str) -> None:
        """Queue `secret` for the background handler of `topic` (sealed, in `uow`)."""
        ...
