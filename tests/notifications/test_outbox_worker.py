"""The outbox worker: delivery, retries with backoff, giving up, and scrubbing what was sent."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from rampart.notifications.domain import (
    DeliveryError,
    EmailMessage,
    PermanentDeliveryError,
    SmsMessage,
    backoff_seconds,
)
from rampart.notifications.mailbox import Mailbox
from rampart.notifications.transports import MailboxSink
from rampart.notifications.worker import OutboxWorker
from rampart.platform.outbox import OutboxRow


class FlakyTransport:
    """Fails the first `failures` sends, then delivers into `sent`."""

    def __init__(self, failures: int, permanent: bool = False) -> None:
        self.failures = failures
        self.permanent = permanent
        self.sent: list[EmailMessage | SmsMessage] = []

    def send_email(self, message: EmailMessage, now: datetime) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise (PermanentDeliveryError if self.permanent else DeliveryError)("smtp reply 451")
        self.sent.append(message)

    def send_sms(self, message: SmsMessage, now: datetime) -> None:
        self.send_email(EmailMessage(message.to, "", message.text, message.kind, message.id), now)


def _queue(container: Container, text: str = "your link: https://x/verify?token=SECRET") -> None:
    with container.uow() as uow:
        container.notifications.email(
            uow, to="u@example.com", subject="Hello", text=text, kind="verify-email"
        )
        uow.commit()


def _rows(container: Container) -> list[OutboxRow]:
    with container.db.read() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.topic == "notify.email")))


def _worker(container: Container, transport: FlakyTransport) -> OutboxWorker:
    return OutboxWorker(
        container.db,
        container.clock,
        container.settings.notifications,
        container.vault,
        email=transport,
        sms=transport,
    )


def test_delivers_once_and_scrubs_the_body(container: Container) -> None:
    transport = FlakyTransport(0)
    _queue(container)
    worker = _worker(container, transport)
    assert worker.drain() == 1
    assert worker.drain() == 0
    assert len(transport.sent) == 1
    assert "SECRET" in transport.sent[0].text
    (row,) = _rows(container)
    assert row.delivered_at is not None
    assert "SECRET" not in str(row.payload)


def test_retries_with_growing_backoff_until_delivered(
    container: Container, clock: FrozenClock
) -> None:
    transport = FlakyTransport(3)
    _queue(container)
    worker = _worker(container, transport)
    delays = []
    for _ in range(3):
        assert worker.drain() == 0
        (row,) = _rows(container)
        assert row.last_error == "smtp reply 451"
        delays.append((row.available_at - clock.now()).total_seconds())
        assert worker.drain() == 0  # not due yet
        clock.advance(timedelta(seconds=delays[-1] + 0.001))
    assert delays[0] < delays[1] < delays[2]
    assert worker.drain() == 1
    assert len(transport.sent) == 1


def test_gives_up_after_max_attempts_and_on_permanent_failures(
    container: Container, clock: FrozenClock
) -> None:
    transport = FlakyTransport(1000)
    _queue(container)
    worker = _worker(container, transport)
    for _ in range(container.settings.notifications.max_attempts + 2):
        worker.drain()
        clock.advance(timedelta(seconds=container.settings.notifications.backoff_max_seconds * 2))
    (row,) = _rows(container)
    assert row.attempts == container.settings.notifications.max_attempts
    assert row.delivered_at is None

    permanent = FlakyTransport(1, permanent=True)
    _queue(container, "second")
    worker = _worker(container, permanent)
    worker.drain()
    clock.advance(timedelta(days=1))
    assert worker.drain() == 0
    assert permanent.sent == []


def test_a_crashed_delivery_is_retried_after_its_lease(
    container: Container, clock: FrozenClock
) -> None:
    _queue(container)
    worker = _worker(container, FlakyTransport(0))
    claimed = worker._claim()
    assert len(claimed) == 1
    assert worker.drain() == 0
    clock.advance(timedelta(seconds=121))
    assert worker.drain() == 1


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    values = [backoff_seconds(n, base=5, cap=3600, rng=rng) for n in range(1, 20)]
    assert values[0] >= 5
    assert values[0] <= 6.25
    assert max(values) <= 3600 * 1.25


def test_mailbox_sink_writes_readable_private_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink = MailboxSink(tmp_path / "outbox")
    now = datetime(2026, 1, 5, 12, 0)
    sink.send_email(
        EmailMessage("a@example.com", "Hi", "body", "k", "01900000-0000-7000-8000-000000000001"),
        now,
    )
    sink.send_sms(
        SmsMessage("+15550100", "code 123456", "mfa-code", "01900000-0000-7000-8000-000000000002"),
        now,
    )
    box = Mailbox(tmp_path / "outbox")
    assert [m.channel for m in box.messages()] == ["sms", "email"]
    assert box.get("01900000-0000-7000-8000-000000000001").subject == "Hi"  # type: ignore[union-attr]
    assert box.get("../../etc/passwd") is None
    for path in (tmp_path / "outbox").iterdir():
        assert path.stat().st_mode & 0o077 == 0


def test_smtp_transport_reports_an_unreachable_relay_as_retryable() -> None:
    import socket

    import pytest

    from rampart.config import NotificationSettings
    from rampart.notifications.transports import SmtpEmailTransport

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = SmtpEmailTransport(
        NotificationSettings(
            email_transport="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=2
        )
    )
    message = EmailMessage("a@example.com", "Hi", "body", "k", "id")
    with pytest.raises(DeliveryError) as caught:
        transport.send_email(message, datetime(2026, 1, 5, 12, 0))
    assert not isinstance(caught.value, PermanentDeliveryError)
    # Header injection through a subject is refused outright.
    with pytest.raises(PermanentDeliveryError):
        transport._mime(
            EmailMessage("a@example.com", "Hi\r\nBcc: x@evil", "body", "k", "id"),
            datetime(2026, 1, 5, 12, 0),
        )
