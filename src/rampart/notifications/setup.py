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
from rampart.vault.service import VaultService


def build_notifications(
    settings: Settings, clock: Clock, db: Database, vault: VaultService
) -> tuple[NotificationService, OutboxWorker]:
    cfg = settings.notifications
    if settings.profile == "production" and "mailbox" in (cfg.email_transport, cfg.sms_provider):
        # The mailbox writes one-time codes and reset links to local files: never in production.
        raise ValueError(
            "notifications: production needs RAMPART_NOTIFICATIONS__EMAIL_TRANSPORT=smtp and "
            "RAMPART_NOTIFICATIONS__SMS_PROVIDER=http; the dev mailbox is refused"
        )
    sink = MailboxSink(settings.data_dir / "outbox")
    email: EmailTransport = SmtpEmailTransport(cfg) if cfg.email_transport == "smtp" else sink
    sms: SmsProvider = HttpSmsProvider(cfg) if cfg.sms_provider == "http" else sink
    worker = OutboxWorker(db, clock, cfg, vault, email=email, sms=sms)
    return NotificationService(vault, clock, wake=worker.wake), worker
