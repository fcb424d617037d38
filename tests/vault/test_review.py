"""Findings of the vault's security review, each pinned by a test that failed before the fix."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from rampart.vault import Purpose, SealContext, ShreddedError, UnreadableError

CTX = SealContext("vault_test_secret", "credential", "row-1")


def _shred_in_background(
    container: Container, user_id: str
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def shred() -> None:
        try:
            with container.uow() as uow:
                container.vault.shred_user(uow, user_id)
                uow.commit()
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    thread = threading.Thread(target=shred)
    thread.start()
    return thread, errors


def _until_blocked_or_done(container: Container, thread: threading.Thread) -> None:
    """Wait until the shred has either finished or is waiting for a lock."""
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        if container.db.is_postgres:
            with container.db.read_engine.connect() as conn:
                waiting = conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                ).scalar_one()
            if waiting:
                return
        elif time.monotonic() > deadline - 9.5:
            return  # SQLite: the shred's BEGIN IMMEDIATE queues behind the open transaction
        time.sleep(0.02)


def test_a_shred_racing_a_first_seal_leaves_nothing_readable(container: Container) -> None:
    # PostgreSQL, READ COMMITTED: the seal created a user key the shred's SELECT could not see yet,
    # and committed it after the shred: the "shredded" user had a live key and readable data.
    vault = container.vault
    with container.uow() as sealing:
        sealed = vault.seal(sealing, Purpose.TAX_ID, "123-45-6789", CTX, user_id="carol")
        thread, errors = _shred_in_background(container, "carol")
        _until_blocked_or_done(container, thread)
        sealing.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not errors
    vault.forget_cached_keys()
    with container.uow() as uow, pytest.raises(UnreadableError):
        vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id="carol")


def test_a_shred_racing_reencryption_to_a_new_version_leaves_nothing_readable(
    container: Container,
) -> None:
    # The background re-encryption re-seals a user's value under a new per-user key for the
    # current version: the same race, run by a job nobody watches.
    vault = container.vault
    with container.uow() as uow:
        old = vault.seal(uow, Purpose.TAX_ID, "123-45-6789", CTX, user_id="dave")
        uow.commit()
    with container.uow() as uow:
        vault.rotate(uow, Purpose.TAX_ID)
        uow.commit()
    with container.uow() as resealing:
        plain = vault.open(resealing, Purpose.TAX_ID, old, CTX, user_id="dave")
        fresh = vault.seal(resealing, Purpose.TAX_ID, plain, CTX, user_id="dave")
        thread, errors = _shred_in_background(container, "dave")
        _until_blocked_or_done(container, thread)
        resealing.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not errors
    vault.forget_cached_keys()
    with container.uow() as uow:
        for blob in (old, fresh):
            with pytest.raises(UnreadableError):
                vault.open(uow, Purpose.TAX_ID, blob, CTX, user_id="dave")


def test_a_rolled_back_shred_never_reaches_the_shred_register(container: Container) -> None:
    # The after-commit listener outlived the rollback and fired at the session's next commit:
    # the register then named a user who was never shredded, and the next restore shredded them.
    vault = container.vault
    with container.uow() as uow:
        vault.seal(uow, Purpose.TAX_ID, "123", CTX, user_id="erin")
        uow.commit()
    with container.uow() as uow:
        vault.shred_user(uow, "erin")
        uow.session.rollback()
        vault.seal(uow, Purpose.TAX_ID, "456", CTX, user_id="frank")
        uow.commit()
    register = container.settings.data_dir / "vault" / "shredded-users"
    assert not register.exists() or "erin" not in register.read_text().split()
    with container.uow() as uow:
        assert not vault.is_shredded(uow, "erin")


def test_opening_someone_elses_shredded_value_says_unreadable_not_shredded(
    container: Container,
) -> None:
    # "Shredded" is an answer for the data's owner only; anyone else learns nothing about it.
    vault = container.vault
    with container.uow() as uow:
        sealed = vault.seal(uow, Purpose.TAX_ID, "123", CTX, user_id="gina")
        uow.commit()
    with container.uow() as uow:
        vault.shred_user(uow, "gina")
        uow.commit()
    vault.forget_cached_keys()
    with container.uow() as uow:
        with pytest.raises(UnreadableError) as caught:
            vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id="mallory")
        assert type(caught.value) is UnreadableError
        with pytest.raises(ShreddedError):
            vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id="gina")


@pytest.mark.parametrize("warm_cache", [False, True])
def test_a_non_ascii_user_id_is_an_unreadable_value_not_a_crash(
    container: Container, warm_cache: bool
) -> None:
    vault = container.vault
    with container.uow() as uow:
        sealed = vault.seal(uow, Purpose.TAX_ID, "123", CTX, user_id="hank")
        uow.commit()
    if warm_cache:
        with container.uow() as uow:
            vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id="hank")
    with container.uow() as uow, pytest.raises(UnreadableError):
        vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id="hänk")


def test_a_destroyed_key_does_not_linger_in_the_cache(
    container: Container, clock: FrozenClock
) -> None:
    # The cache was emptied before the destroying transaction committed: a reader in between
    # cached the key again, and it kept opening values for `key_cache_seconds` after destruction.
    vault = container.vault
    purpose = Purpose.WEBHOOK_SECRET  # no registered column: nothing blocks destruction
    with container.uow() as uow:
        stray = vault.seal(uow, purpose, "kept in a place the vault does not know", CTX)
        uow.commit()
    with container.uow() as uow:
        vault.rotate(uow, purpose)
        uow.commit()
    clock.advance(timedelta(minutes=container.settings.vault.destroy_grace_minutes + 1))
    with container.uow() as destroying:
        vault.destroy_version(destroying, purpose, 1)
        with container.db.read() as reader:
            assert vault.open(reader, purpose, stray, CTX).reveal()
        destroying.commit()
    with container.db.read() as reader, pytest.raises(UnreadableError):
        vault.open(reader, purpose, stray, CTX)


def test_unwrapped_keys_neither_pile_up_nor_outlive_the_cache_time(
    container: Container, clock: FrozenClock
) -> None:
    # The cache dropped an expired key only when that same key was looked up again: per-user
    # keys of every user ever touched stayed in the heap for the life of the process.
    from rampart.vault import keys as service

    vault = container.vault
    with container.uow() as uow:
        for i in range(300):
            vault.seal(uow, Purpose.PERSONAL_DATA, "x", CTX, user_id=f"user-{i}")
        uow.commit()
    assert len(vault._cache) <= service.MAX_CACHED_KEYS
    clock.advance(container.settings.vault.key_cache_seconds + 1)
    with container.uow() as uow:
        for i in range(300, 600):
            vault.seal(uow, Purpose.PERSONAL_DATA, "x", CTX, user_id=f"user-{i}")
        uow.commit()
    # Everything from the first round has expired and is gone, not just unreachable.
    assert len(vault._cache) <= 300 + 10
    small = service._KeyCache(60, clock, max_entries=50)
    for i in range(200):
        small.put(("user", "p", 1, f"u{i}"), (b"id", b"k" * 32))
    assert len(small) == 50
