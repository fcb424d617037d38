"""Building notifications from settings: the service that queues, the worker that delivers."""

from __future__ import annotations

from rampart.config import Settings
from rampart.kernel.clock import Clock
from rampart.notifications.service import NotificationService
from rampart.notifications.transports import (
    EmailTransport,
    HttpSmsProvider,
    MailboxSink,
    SmsProvider,
    SmtpEmailTransport,
)
from rampart.notifications.worker import OutboxWorker
from rampart.platform.db import Database


def mailbox_dir(settings: Settings) -> str:
    return str(settings.data_dir / "outbox")


def build_notifications(
    settings: Settings, clock: Clock, db: Database
) -> tuple[NotificationService, OutboxWorker]:
    cfg = settings.notifications
    sink = MailboxSink(settings.data_dir / "outbox")
    email: EmailTransport = SmtpEmailTransport(cfg) if cfg.email_transport == "smtp" else sink
    sms: SmsProvider = HttpSmsProvider(cfg) if cfg.sms_provider == "http" else sink
    worker = OutboxWorker(db, clock, cfg, email=email, sms=sms)
    return NotificationService(wake=worker.wake), worker
