"""Renewal notices for API keys that expire (ASVS 6.4.5).

A key created with `expires_at` stops working at that instant, and a bot that stops signing at
03:00 on a Sunday is an outage. So its owner is told `apikeys.expiry_notice_days` ahead, once,
with what to do: create a replacement (rotating keeps the expiry, so it would not help), move the
bots to it, revoke the old one. The sweeper that flags old keys (`rampart.apikeys.jobs`) runs this
too.

Once per key, from any number of processes: the notice is claimed by a conditional update of
`expiry_notice_at`, and only the process whose update took it queues the email (in the same
transaction, through the outbox). A key whose whole life is shorter than the notice period was
made short on purpose (a CI run's key) and gets no notice; nor does a key already rotated (its
replacement carries the same expiry and gets its own).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rampart.access.rls import scope_to_system
from rampart.apikeys.db import ApiKeyRow
from rampart.config import ApiKeySettings
from rampart.kernel.clock import Clock, utc
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork

#: Keys noticed per transaction; a pass repeats until a batch comes back short.
BATCH = 500
NOTICE_KIND = "apikey-expiring"


def _name(row: ApiKeyRow) -> str:
    # The label and id, never any part of the secret; the label is the owner's own text, kept
    # to one line.
    label = (row.label or "").replace("\r", " ").replace("\n", " ")[:100]
    return f'"{label}" ({row.id})' if label else f"({row.id})"


def renewal_instructions(row: ApiKeyRow, days_left: int) -> tuple[str, str]:
    """The subject and text of the notice for `row` (expiring in `days_left` days)."""
    expires = utc(row.expires_at).strftime("%Y-%m-%d %H:%M UTC") if row.expires_at else "soon"
    when = "within a day" if days_left < 1 else f"in {days_left} day(s)"
    return (
        "Your API key expires soon",
        f"Your API key {_name(row)} expires {when}, at {expires}. After that, every request "
        "it signs is refused.\n\n"
        "To keep your bots running, replace it before then:\n"
        "1. Create a new key with the same scopes (and a later expiry, or none) from your API "
        "keys, or POST /api/v1/apikeys. Rotating this key would keep its expiry, so create a new "
        "one.\n"
        "2. Give the new key to your bots and check that they sign with it "
        "(GET /api/v1/apikeys/whoami).\n"
        "3. Revoke this key.\n\n"
        "If nothing uses this key any more, let it expire.",
    )


class Notifier(Protocol):
    """Implemented by `rampart.notifications.service.NotificationService`."""

    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None: ...


class ExpiryNotices:
    """Tells owners of keys that expire within `expiry_notice_days` (0 turns it off)."""

    def __init__(
        self,
        clock: Clock,
        settings: ApiKeySettings,
        *,
        notifier: Notifier,
        owner_email: Callable[[Session, str], str | None],
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._notifier = notifier
        self._owner_email = owner_email

    def notify_batch(self, uow: UnitOfWork, *, limit: int = BATCH) -> int:
        """Claim and notify up to `limit` keys; returns how many were claimed."""
        days = self._settings.expiry_notice_days
        if days <= 0:
            return 0
        scope_to_system(uow.session)
        now = self._clock.now()
        horizon = now + timedelta(days=days)
        rows = uow.session.scalars(
            select(ApiKeyRow)
            .where(
                ApiKeyRow.expires_at.is_not(None),
                ApiKeyRow.expires_at > now,
                ApiKeyRow.expires_at <= horizon,
                ApiKeyRow.expiry_notice_at.is_(None),
                ApiKeyRow.revoked_at.is_(None),
                ApiKeyRow.grace_until.is_(None),
            )
            .order_by(ApiKeyRow.expires_at, ApiKeyRow.id)
            .limit(limit)
        ).all()
        claimed = 0
        for row in rows:
            taken = uow.session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == row.id, ApiKeyRow.expiry_notice_at.is_(None))
                .values(expiry_notice_at=now)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process claimed it, and told the owner
            claimed += 1
            expires_at = utc(row.expires_at) if row.expires_at else now
            if expires_at - utc(row.created_at) <= timedelta(days=days):
                continue  # short-lived by design: claimed, so never looked at again
            self._tell(uow, row, (expires_at - now).days)
        uow.session.flush()
        return claimed

    def _tell(self, uow: UnitOfWork, row: ApiKeyRow, days_left: int) -> None:
        subject, text = renewal_instructions(row, days_left)
        address = self._owner_email(uow.session, row.user_id)
        if address:
            self._notifier.email(uow, to=address, subject=subject, text=text, kind=NOTICE_KIND)
        uow.audit(
            AuditEvent(
                action="apikey.expiry-notified",
                subject=f"apikey:{row.id}",
                details={"user_id": row.user_id, "days_left": days_left, "told": bool(address)},
            )
        )

    def run(self, uow_factory: Callable[[], UnitOfWork]) -> int:
        """One full pass, a committed transaction per batch; returns the keys claimed."""
        total = 0
        while True:
            with uow_factory() as uow:
                claimed = self.notify_batch(uow)
                uow.commit()
            total += claimed
            if claimed < BATCH:
                return total
