"""Where messages go: SMTP and an HTTP SMS provider in production, a local mailbox in dev.

Every transport raises `DeliveryError` for a failure worth retrying and `PermanentDeliveryError`
for one that is not; error texts carry the failure's kind and code only, never the message or
the address, because they end up in logs and in the outbox row.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

import httpx

from rampart.config import NotificationSettings
from rampart.notifications.domain import (
    DeliveryError,
    EmailMessage,
    PermanentDeliveryError,
    SmsMessage,
)


class EmailTransport(Protocol):
    def send_email(self, message: EmailMessage, now: datetime) -> None: ...


class SmsProvider(Protocol):
    def send_sms(self, message: SmsMessage, now: datetime) -> None: ...


def _no_header_injection(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise PermanentDeliveryError("header contains a line break")
    return value


class SmtpEmailTransport:
    """Sends through an SMTP relay with STARTTLS or implicit TLS, certificate verified."""

    def __init__(self, settings: NotificationSettings) -> None:
        if not settings.smtp_host:
            raise ValueError("notifications: smtp_host is required for the smtp transport")
        self._settings = settings

    def _mime(self, message: EmailMessage, now: datetime) -> MimeMessage:
        mime = MimeMessage()
        mime["From"] = _no_header_injection(self._settings.email_from)
        mime["To"] = _no_header_injection(message.to)
        mime["Subject"] = _no_header_injection(message.subject)
        mime["Date"] = formatdate(now.timestamp(), usegmt=True)
        mime["Message-ID"] = make_msgid(domain="rampart")
        mime.set_content(message.text)
        return mime

    def send_email(self, message: EmailMessage, now: datetime) -> None:
        settings = self._settings
        context = ssl.create_default_context()
        host, port, timeout = (
            settings.smtp_host or "",
            settings.smtp_port,
            settings.smtp_timeout_seconds,
        )
        try:
            smtp: smtplib.SMTP
            if settings.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            with smtp:
                if settings.smtp_security == "starttls":
                    smtp.starttls(context=context)
                if settings.smtp_username and settings.smtp_password is not None:
                    smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
                smtp.send_message(self._mime(message, now))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            kind = PermanentDeliveryError if all(c >= 500 for c in codes) else DeliveryError
            raise kind(f"recipient refused: {codes}") from None
        except smtplib.SMTPResponseException as exc:
            kind = PermanentDeliveryError if exc.smtp_code >= 500 else DeliveryError
            raise kind(f"smtp reply {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(type(exc).__name__) from None


class HttpSmsProvider:
    """A JSON `POST {to, text}` with a bearer token: the shape most SMS gateways accept."""

    def __init__(self, settings: NotificationSettings) -> None:
        if not settings.sms_http_url or settings.sms_http_token is None:
            raise ValueError("notifications: sms_http_url and sms_http_token are required")
        if not settings.sms_http_url.startswith("https://"):
            raise ValueError("notifications: sms_http_url must be https://")
        self._url = settings.sms_http_url
        self._token = settings.sms_http_token
        self._timeout = settings.smtp_timeout_seconds

    def send_sms(self, message: SmsMessage, now: datetime) -> None:
        try:
            response = httpx.post(
                self._url,
                json={"to": message.to, "text": message.text, "reference": message.id},
                headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(type(exc).__name__) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise DeliveryError(f"provider status {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"provider status {response.status_code}")


class MailboxSink:
    """Dev delivery: each message becomes a JSON file under `<data_dir>/outbox`, readable by
    people (the `/dev/mailbox` page) and by tests, which take links from it as a person would."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _write(self, record: dict[str, Any], now: datetime) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{record['id']}.json"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, ensure_ascii=False)
        # Rename is atomic: a reader sees the whole message or none of it.
        os.replace(tmp, self.directory / name)

    def send_email(self, message: EmailMessage, now: datetime) -> None:
        self._write(
            {
                "id": message.id,
                "channel": "email",
                "kind": message.kind,
                "to": message.to,
                "subject": message.subject,
                "text": message.text,
                "at": now.isoformat(),
            },
            now,
        )

    def send_sms(self, message: SmsMessage, now: datetime) -> None:
        self._write(
            {
                "id": message.id,
                "channel": "sms",
                "kind": message.kind,
                "to": message.to,
                "subject": "",
                "text": message.text,
                "at": now.isoformat(),
            },
            now,
        )
