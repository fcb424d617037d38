"""`Notifier`: the outbox (queue + worker) and the in-memory notifier behave the same."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest

from rampart.notifications.domain import MAX_SUBJECT, EmailMessage, SmsMessage
from rampart.notifications.memory import InMemoryNotifier
from rampart.notifications.ports import Notifier
from rampart.notifications.worker import OutboxWorker
from tests.support.ports import PortBackend


class Collect:
    def __init__(self) -> None:
        self.sent: list[EmailMessage | SmsMessage] = []

    def send_email(self, message: EmailMessage, now: datetime) -> None:
        self.sent.append(message)

    def send_sms(self, message: SmsMessage, now: datetime) -> None:
        self.sent.append(message)


@dataclass
class Outbox:
    notifier: Notifier
    #: Deliver what is due and return everything delivered so far.
    delivered: Callable[[], list[EmailMessage | SmsMessage]]
    handle: Callable[[str, Callable[[str], None]], None]


@pytest.fixture
def outbox(port_backend: PortBackend) -> Outbox:
    if port_backend.in_memory:
        memory = InMemoryNotifier()
        return Outbox(memory, lambda: memory.sent, memory.handle)
    app = port_backend.app
    transport = Collect()
    worker = OutboxWorker(
        app.db, app.clock, app.settings.notifications, app.vault, email=transport, sms=transport
    )

    def delivered() -> list[EmailMessage | SmsMessage]:
        worker.drain()
        return transport.sent

    return Outbox(app.notifications, delivered, worker.handle)


def test_a_committed_email_is_delivered_once_as_written(
    port_backend: PortBackend, outbox: Outbox
) -> None:
    with port_backend.uow() as uow:
        outbox.notifier.email(
            uow, to="a@example.com", subject="Hello", text="link: https://x/?t=S", kind="verify"
        )
        uow.commit()
    (message,) = outbox.delivered()
    assert isinstance(message, EmailMessage)
    assert (message.to, message.subject, message.text, message.kind) == (
        "a@example.com",
        "Hello",
        "link: https://x/?t=S",
        "verify",
    )
    assert message.id
    assert len(outbox.delivered()) == 1


def test_a_message_of_a_rolled_back_transaction_is_never_delivered(
    port_backend: PortBackend, outbox: Outbox
) -> None:
    with port_backend.uow() as uow:
        outbox.notifier.email(uow, to="a@example.com", subject="S", text="T", kind="k")
        outbox.notifier.sms(uow, to="+15550100", text="code 123456", kind="otp")
    assert outbox.delivered() == []


def test_a_text_message_is_delivered_to_its_number(
    port_backend: PortBackend, outbox: Outbox
) -> None:
    with port_backend.uow() as uow:
        outbox.notifier.sms(uow, to="+15550100", text="code 123456", kind="otp")
        uow.commit()
    (message,) = outbox.delivered()
    assert isinstance(message, SmsMessage)
    assert (message.to, message.text, message.kind) == ("+15550100", "code 123456", "otp")


def test_an_overlong_subject_is_cut_not_refused(port_backend: PortBackend, outbox: Outbox) -> None:
    with port_backend.uow() as uow:
        outbox.notifier.email(uow, to="a@example.com", subject="s" * 999, text="t", kind="k")
        uow.commit()
    (message,) = outbox.delivered()
    assert isinstance(message, EmailMessage)
    assert message.subject == "s" * MAX_SUBJECT


def test_a_job_reaches_its_handler_with_its_secret_after_the_commit(
    port_backend: PortBackend, outbox: Outbox
) -> None:
    seen: list[str] = []
    outbox.handle("contract.job", seen.append)
    with port_backend.uow() as uow:
        outbox.notifier.job(uow, topic="contract.job", secret="s3cret")
        assert seen == []
        uow.commit()
    outbox.delivered()
    assert seen == ["s3cret"]
