"""Key rotation: new versions, re-encryption, destruction, KEK rotation, status."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import insert, select

from rampart.bootstrap import Container, bootstrap
from rampart.kernel.clock import FrozenClock
from rampart.kernel.ids import new_id
from rampart.vault import Purpose, SealContext, UnreadableError
from rampart.vault.domain import KeyStateError, parse_header
from rampart.vault.jobs import VaultMaintenance, pending_count, reencrypt

P = Purpose.BROKER_CREDENTIAL


def _store(container: Container, table, count: int, *, users: bool = False) -> dict[str, str]:
    stored: dict[str, str] = {}
    with container.uow() as uow:
        for i in range(count):
            row_id = new_id()
            owner = f"user-{i % 3}" if users else None
            ctx = SealContext("vault_test_secret", "credential", row_id)
            secret = f"broker-secret-{i}"
            uow.session.execute(
                insert(table).values(
                    id=row_id,
                    owner=owner,
                    credential=container.vault.seal(uow, P, secret, ctx, user_id=owner),
                )
            )
            stored[row_id] = secret
        uow.commit()
    return stored


def _versions(container: Container, table) -> dict[str, int]:
    with container.uow() as uow:
        rows = uow.session.execute(select(table.c.id, table.c.credential)).all()
    return {row.id: parse_header(row.credential).key_version for row in rows}


def _open_all(container: Container, table, stored: dict[str, str]) -> None:
    with container.uow() as uow:
        for row in uow.session.execute(select(table.c.id, table.c.owner, table.c.credential)):
            ctx = SealContext("vault_test_secret", "credential", row.id)
            opened = container.vault.open(uow, P, row.credential, ctx, user_id=row.owner)
            assert opened.reveal().decode() == stored[row.id]


def test_rotation_then_reencryption_leaves_nothing_on_the_old_version(
    container: Container, vault_table, clock: FrozenClock
) -> None:
    vault = container.vault
    stored = _store(container, vault_table, 7, users=True)
    stored |= _store(container, vault_table, 5)
    assert set(_versions(container, vault_table).values()) == {1}

    with container.uow() as uow:
        assert vault.rotate(uow, P) == [(P.value, 2)]
        uow.commit()
    # New writes use the new version at once; old and new both open.
    stored |= _store(container, vault_table, 2)
    assert sorted(_versions(container, vault_table).values()) == [1] * 12 + [2] * 2
    _open_all(container, vault_table, stored)
    assert pending_count(vault, container.uow, P) == 12

    report = reencrypt(vault, container.uow, P, batch_size=5)
    assert report.reencrypted == 12
    assert report.unreadable == report.shredded == 0
    assert set(_versions(container, vault_table).values()) == {2}
    vault.forget_cached_keys()
    _open_all(container, vault_table, stored)
    with container.uow() as uow:
        assert vault.count_by_version(uow, P) == {2: 14}

    # Version 1 goes only after the grace period, and then for good.
    with container.uow() as uow, pytest.raises(KeyStateError):
        vault.destroy_version(uow, P, 1)
    clock.advance(timedelta(minutes=container.settings.vault.destroy_grace_minutes + 1))
    with container.uow() as uow:
        with pytest.raises(KeyStateError):
            vault.destroy_version(uow, P, 2)  # the current version
        vault.destroy_version(uow, P, 1)
        uow.commit()
    vault.forget_cached_keys()
    _open_all(container, vault_table, stored)
    with container.uow() as uow:
        states = {(s.family, s.version): s.state for s in vault.status(uow)}
    assert states[(P.value, 1)] == "destroyed"
    assert states[(P.value, 2)] == "current"


def test_a_version_in_use_is_never_destroyed(
    container: Container, vault_table, clock: FrozenClock
) -> None:
    vault = container.vault
    stored = _store(container, vault_table, 3)
    old_copy = next(iter(_versions(container, vault_table)))
    with container.uow() as uow:
        vault.rotate(uow, P)
        uow.commit()
    clock.advance(timedelta(days=1))
    with container.uow() as uow, pytest.raises(KeyStateError, match="3 ciphertexts"):
        vault.destroy_version(uow, P, 1)
    _open_all(container, vault_table, stored)
    assert old_copy in stored


def test_the_job_resumes_where_it_stopped(container: Container, vault_table) -> None:
    vault = container.vault
    stored = _store(container, vault_table, 10)
    with container.uow() as uow:
        vault.rotate(uow, P)
        uow.commit()
    batches = 0

    def stop_after_one() -> bool:
        return batches >= 1

    def count(*_args: object) -> None:
        nonlocal batches
        batches += 1

    first = reencrypt(
        vault, container.uow, P, batch_size=4, on_batch=count, should_stop=stop_after_one
    )
    assert first.reencrypted == 4
    assert pending_count(vault, container.uow, P) == 6
    # A new run (another process, after a crash) needs no saved cursor.
    second = reencrypt(vault, container.uow, P, batch_size=4)
    assert second.reencrypted == 6
    assert pending_count(vault, container.uow, P) == 0
    _open_all(container, vault_table, stored)


def test_shredded_rows_do_not_block_retiring_a_version(
    container: Container, vault_table, clock: FrozenClock
) -> None:
    vault = container.vault
    _store(container, vault_table, 6, users=True)  # owners user-0, user-1, user-2
    with container.uow() as uow:
        vault.shred_user(uow, "user-1")
        vault.rotate(uow, P)
        uow.commit()
    report = reencrypt(vault, container.uow, P)
    assert (report.reencrypted, report.shredded) == (4, 2)
    clock.advance(timedelta(hours=1))
    with container.uow() as uow:
        vault.destroy_version(uow, P, 1)
        uow.commit()


def test_keys_fall_due_after_rotation_days(container: Container, clock: FrozenClock) -> None:
    vault = container.vault
    ctx = SealContext("t", "c", "r")
    with container.uow() as uow:
        old = vault.seal(uow, Purpose.MFA_SECRET, "seed", ctx)
        uow.commit()
    maintenance = VaultMaintenance(vault, container.uow, interval=0)
    maintenance.run_once()
    with container.uow() as uow:
        assert vault.current_version(uow, Purpose.MFA_SECRET) == 1
    clock.advance(timedelta(days=container.settings.vault.rotation_days, seconds=1))
    maintenance.run_once()
    with container.uow() as uow:
        assert vault.current_version(uow, Purpose.MFA_SECRET) == 2
        assert parse_header(vault.seal(uow, Purpose.MFA_SECRET, "s", ctx)).key_version == 2
        assert vault.open(uow, Purpose.MFA_SECRET, old, ctx).reveal() == b"seed"


def test_rotate_kek_rewraps_data_keys_without_touching_data(
    container: Container, vault_table
) -> None:
    stored = _store(container, vault_table, 4, users=True)
    before = _versions(container, vault_table)
    with container.uow() as uow:
        ciphertexts_before = dict(
            uow.session.execute(select(vault_table.c.id, vault_table.c.credential)).all()
        )
        blind_before = container.vault.blind_index(uow, "test.index", "value")
        uow.commit()
    old_kek = base64.b64encode(container.keys.get("vault_kek", None).reveal()).decode()
    new_kek = base64.b64encode(os.urandom(32)).decode()
    vault_settings = container.settings.vault.model_copy(
        update={"kek": SecretStr(new_kek), "previous_keks": [SecretStr(old_kek)]}
    )
    rotated = bootstrap(
        container.settings.model_copy(update={"vault": vault_settings}), clock=container.clock
    )
    try:
        from tests.vault.conftest import register

        register(rotated)
        with rotated.uow() as uow:
            assert rotated.vault.rewrap_all(uow) == 2  # the purpose key and the blind-index key
            uow.commit()
    finally:
        rotated.close()
    # With only the new KEK, everything opens; the data itself was not rewritten.
    only_new = bootstrap(
        container.settings.model_copy(
            update={"vault": vault_settings.model_copy(update={"previous_keks": []})}
        ),
        clock=container.clock,
    )
    try:
        register(only_new)
        _open_all(only_new, vault_table, stored)
        with only_new.uow() as uow:
            assert only_new.vault.blind_index(uow, "test.index", "value") == blind_before
            after = dict(
                uow.session.execute(select(vault_table.c.id, vault_table.c.credential)).all()
            )
        assert after == ciphertexts_before
        assert _versions(only_new, vault_table) == before
    finally:
        only_new.close()
    # And the old KEK alone no longer unwraps anything.
    container.vault.forget_cached_keys()
    row_id = next(iter(stored))
    ctx = SealContext("vault_test_secret", "credential", row_id)
    with container.uow() as uow:
        owner = uow.session.scalar(select(vault_table.c.owner).where(vault_table.c.id == row_id))
        with pytest.raises(UnreadableError):
            container.vault.open(uow, P, ciphertexts_before[row_id], ctx, user_id=owner)
