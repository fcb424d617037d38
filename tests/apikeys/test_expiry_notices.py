"""Owners of API keys that expire are told in time, with how to replace them (ASVS 6.4.5).

The sweeper that flags old keys also tells the owner of a key with `expires_at` once, when the key
has `apikeys.expiry_notice_days` (7) left: what to do before the bots' requests start failing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from rampart.apikeys.jobs import OldKeySweeper
from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from rampart.notifications.mailbox import Mailbox
from tests.access.support import email_of, new_account
from tests.apikeys.test_signed_requests import create_key
from tests.identity.support import audit_entries


def _expiring(container: Container, user: str) -> list[Any]:
    container.outbox_worker.drain()
    box = Mailbox(container.settings.data_dir / "outbox")
    return [m for m in box.messages(to=email_of(container, user)) if m.kind == "apikey-expiring"]


def _sweep(container: Container) -> None:
    (sweeper,) = [c for c in container.closers if isinstance(c, OldKeySweeper)]
    sweeper.run_once()


def test_the_owner_is_told_a_week_before_a_key_expires_and_how_to_replace_it(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    expires = clock.now() + timedelta(days=30)
    key = create_key(client, user, scopes=["read"], expires_at=expires.isoformat())
    clock.advance(timedelta(days=22))  # eight days left: not yet
    _sweep(container)
    assert _expiring(container, user) == []

    clock.advance(timedelta(days=1, hours=1))
    _sweep(container)
    _sweep(container)
    [notice] = _expiring(container, user)  # two passes, one notice
    assert key["key_id"] in notice.text
    assert "in 6 day(s)" in notice.text
    assert expires.strftime("%Y-%m-%d %H:%M UTC") in notice.text
    assert "Create a new key" in notice.text
    assert "Revoke this key" in notice.text
    assert key.get("secret", "never-in-an-email") not in notice.text
    [entry] = audit_entries(container, "apikey.expiry-notified")
    assert entry["subject"] == f"apikey:{key['key_id']}"
    assert entry["details"]["days_left"] == 6


def test_keys_without_expiry_short_lived_or_revoked_get_no_notice(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    in_30_days = (clock.now() + timedelta(days=30)).isoformat()
    never, short, revoked = new_account(container), new_account(container), new_account(container)
    create_key(client, never, scopes=["read"])
    # Made to last two days: short on purpose (a CI run's key), nothing to warn about.
    create_key(
        client, short, scopes=["read"], expires_at=(clock.now() + timedelta(days=2)).isoformat()
    )
    create_key(client, revoked, scopes=["read"], expires_at=in_30_days)
    with container.uow() as uow:
        container.apikeys.revoke_all_of_user(uow, revoked, reason="test")
        uow.commit()
    clock.advance(timedelta(days=1))
    _sweep(container)
    clock.advance(timedelta(days=24))
    _sweep(container)
    for user in (never, short, revoked):
        assert _expiring(container, user) == []


def test_no_notice_when_turned_off(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from rampart.apikeys.expiry import ExpiryNotices

    user = new_account(container)
    create_key(
        client, user, scopes=["read"], expires_at=(clock.now() + timedelta(days=30)).isoformat()
    )
    clock.advance(timedelta(days=25))
    off = ExpiryNotices(
        clock,
        container.settings.apikeys.model_copy(update={"expiry_notice_days": 0}),
        notifier=container.notifications,
        owner_email=container.identity.accounts.contact_email,
    )
    assert off.run(container.uow) == 0
    assert _expiring(container, user) == []
