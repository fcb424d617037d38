"""The outbox worker: delivers queued email and SMS, retrying with backoff.

Claiming uses a lease: a batch of due messages is pushed `LEASE_SECONDS` into the future and its
attempt count raised in one short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
workers share the work; SQLite's single writer serialises the claim). Delivery happens outside
any transaction, so a slow SMTP server holds no locks. Bodies are sealed by the vault for their
row (`rampart.notifications.service`), and so are recipients; both are opened only for the send.
One that does not open (copied from another row, altered, its key destroyed) is a permanent
failure, never sent. Jobs (`NotificationService.job`) go to the handler registered for their
topic (`handle`), which does its own work in its own transaction. A success marks
the row delivered and scrubs what is left of the message: links in emails carry single-use tokens,
which must not outlive delivery in the database. A worker that dies mid-batch leaves leased rows
that become due again when the lease ends, so delivery is at least once, never lost.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from rampart.config import NotificationSettings
from rampart.kernel.clock import Clock
from rampart.notifications.domain import (
    TOPIC_EMAIL,
    TOPIC_SMS,
    TOPICS,
    DeliveryError,
    EmailMessage,
    PermanentDeliveryError,
    SmsMessage,
    backoff_seconds,
)
from rampart.notifications.service import (
    SEALED_FIELD,
    SEALED_TO_FIELD,
    body_context,
    recipient_context,
)
from rampart.notifications.transports import EmailTransport, SmsProvider
from rampart.platform.db import Database
from rampart.platform.logging import get_logger
from rampart.platform.outbox import OutboxRow
from rampart.vault.domain import Purpose, SealContext, UnreadableError
from rampart.vault.service import VaultService

log = get_logger(__name__)

LEASE_SECONDS = 120


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: NotificationSettings,
        vault: VaultService,
        *,
        email: EmailTransport,
        sms: SmsProvider,
    ) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock
        self._settings = settings
        self._email = email
        self._sms = sms
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self._handlers: dict[str, Callable[[str], None]] = {}

    def handle(self, topic: str, handler: Callable[[str], None]) -> None:
        """Deliver jobs of `topic` (`NotificationService.job`) by calling `handler(secret)`.

        The handler commits its own work; if it raises, the job is retried with backoff like a
        failed send (at least once, so a handler must tolerate running twice). Register before
        `start`."""
        if topic in TOPICS:
            raise ValueError(f"{topic} is delivered by the worker itself")
        self._handlers[topic] = handler

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rampart-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception as exc:  # noqa: BLE001 - the worker outlives a bad batch
                log.error("outbox delivery failed", error=type(exc).__name__)
            self._wake.wait(self._settings.poll_seconds)
            self._wake.clear()

    # --- work --------------------------------------------------------------------------------
    def drain(self) -> int:
        """Deliver every message and run every job due now; returns how many messages were
        delivered."""
        delivered = 0
        with self._drain_lock:
            while True:
                batch = self._claim()
                for row_id, topic, payload, attempts in batch:
                    done = self._deliver(row_id, topic, payload, attempts)
                    delivered += done if topic in TOPICS else 0  # messages sent, not jobs run
                # A job's handler may have queued messages of its own (a reset link): those are
                # due now too, so a batch with jobs is followed by another claim.
                jobs = any(topic in self._handlers for _, topic, _, _ in batch)
                if (len(batch) < self._settings.batch_size and not jobs) or self._stop.is_set():
                    break
        return delivered

    def _claim(self) -> list[tuple[str, str, dict[str, Any], int]]:
        now = self._clock.now()
        session = self._db.write_session()
        try:
            query = (
                select(OutboxRow)
                .where(
                    OutboxRow.topic.in_((*TOPICS, *sorted(self._handlers))),
                    OutboxRow.delivered_at.is_(None),
                    OutboxRow.available_at <= now,
                    OutboxRow.attempts < self._settings.max_attempts,
                )
                .order_by(OutboxRow.available_at, OutboxRow.id)
                .limit(self._settings.batch_size)
            )
            if self._db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            claimed = []
            for row in rows:
                row.attempts += 1
                row.available_at = now + timedelta(seconds=LEASE_SECONDS)
                claimed.append((row.id, row.topic, dict(row.payload), row.attempts))
            session.commit()
            return claimed
        finally:
            session.close()

    def _opened(self, row_id: str, payload: dict[str, Any], field: str, where: SealContext) -> str:
        """A sealed field of the message, opened for this row only."""
        try:
            with self._db.read() as session:
                text = self._vault.open_text(
                    session,
                    Purpose.NOTIFICATION_BODY,
                    base64.b64decode(str(payload[field]), validate=True),
                    where,
                )
        except (UnreadableError, binascii.Error, ValueError):
            raise PermanentDeliveryError("sealed body cannot be opened") from None
        return text.reveal()

    def _body(self, row_id: str, payload: dict[str, Any]) -> str:
        if payload.get(SEALED_FIELD) is None:
            # Queued before bodies were sealed: delivered as it is, then scrubbed like the rest.
            return str(payload["text"])
        return self._opened(row_id, payload, SEALED_FIELD, body_context(row_id))

    def _recipient(self, row_id: str, payload: dict[str, Any]) -> str:
        if payload.get(SEALED_TO_FIELD) is None:
            return str(payload["to"])  # queued before recipients were sealed
        return self._opened(row_id, payload, SEALED_TO_FIELD, recipient_context(row_id))

    def _send(self, row_id: str, topic: str, payload: dict[str, Any]) -> None:
        now = self._clock.now()
        job = ""
        try:
            if topic == TOPIC_EMAIL:
                self._email.send_email(
                    EmailMessage(
                        to=self._recipient(row_id, payload),
                        subject=str(payload["subject"]),
                        text=self._body(row_id, payload),
                        kind=str(payload.get("kind", "")),
                        id=row_id,
                    ),
                    now,
                )
            elif topic == TOPIC_SMS:
                self._sms.send_sms(
                    SmsMessage(
                        to=self._recipient(row_id, payload),
                        text=self._body(row_id, payload),
                        kind=str(payload.get("kind", "")),
                        id=row_id,
                    ),
                    now,
                )
            elif topic in self._handlers:
                job = self._body(row_id, payload)
        except (KeyError, TypeError):
            raise PermanentDeliveryError("malformed payload") from None
        if topic in self._handlers:
            self._handlers[topic](job)

    def _deliver(self, row_id: str, topic: str, payload: dict[str, Any], attempts: int) -> int:
        error: DeliveryError | None = None
        try:
            self._send(row_id, topic, payload)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - an unknown failure is retried like a transient one
            error = DeliveryError(type(exc).__name__)
        session = self._db.write_session()
        try:
            row = session.get(OutboxRow, row_id)
            if row is None:
                return 0
            now = self._clock.now()
            if error is None:
                row.delivered_at = now
                row.last_error = None
                row.payload = {"kind": payload.get("kind"), "scrubbed": True}
                session.commit()
                return 1
            row.last_error = str(error)[:200]
            if isinstance(error, PermanentDeliveryError):
                # Exhaust the attempts so it is never picked up again; kept for inspection.
                row.attempts = self._settings.max_attempts
            else:
                row.available_at = now + timedelta(
                    seconds=backoff_seconds(
                        attempts,
                        base=self._settings.backoff_base_seconds,
                        cap=self._settings.backoff_max_seconds,
                    )
                )
            session.commit()
            log.warning(
                "outbox delivery failed",
                message_id=row_id,
                topic=topic,
                attempts=attempts,
                error=row.last_error,
                gave_up=row.attempts >= self._settings.max_attempts,
            )
            return 0
        finally:
            session.close()
