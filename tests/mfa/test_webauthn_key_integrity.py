"""Stored WebAuthn public keys are protected from modification (ASVS 6.7.1): each carries a
keyed MAC (the vault's blind-index key, wrapped by the KEK) over its user, credential id and key,
so whoever can write the database but not read the KEK cannot swap in a key of their own, move
a key to another account, or strip the MAC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update

from rampart.audit.db import AuditEntryRow
from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.identity.mfa.db import WebAuthnCredentialRow
from rampart.kernel.clock import FrozenClock
from rampart.platform.migrate import upgrade
from rampart.vault.setup import migration_attributes
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.support import make_user
from tests.mfa.test_service import authenticate, register
from tests.support.services import scratch_postgres


def _row(container: Container, user: str) -> WebAuthnCredentialRow:
    with container.db.read() as session:
        row = session.scalar(
            select(WebAuthnCredentialRow).where(WebAuthnCredentialRow.user_id == user)
        )
        assert row is not None
        session.expunge(row)
        return row


def _tamper(container: Container, row_id: str, **values: object) -> None:
    """What an attacker with write access to the database (and nothing else) can do."""
    with container.uow() as uow:
        uow.session.execute(
            update(WebAuthnCredentialRow).where(WebAuthnCredentialRow.id == row_id).values(**values)
        )
        uow.commit()


def _tamper_audits(container: Container) -> int:
    with container.db.read() as session:
        return len(
            session.scalars(
                select(AuditEntryRow.seq).where(AuditEntryRow.action == "mfa.webauthn.key_tampered")
            ).all()
        )


def test_a_registered_key_is_stored_with_its_mac_and_signs_in(container: Container) -> None:
    user = make_user(container)
    key = SoftAuthenticator()
    assert register(container, user, key)
    stored = _row(container, user)
    assert stored.key_mac is not None
    assert len(stored.key_mac) == 64
    assert authenticate(container, user, key)


def test_a_public_key_swapped_in_the_database_signs_nothing_in(container: Container) -> None:
    victim = make_user(container)
    genuine = SoftAuthenticator()
    assert register(container, victim, genuine)
    # The attacker registers a key of their own on their own account, then copies its public
    # key over the victim's, and signs with their key under the victim's credential id.
    attacker = make_user(container, "mallory@example.com")
    forged = SoftAuthenticator()
    assert register(container, attacker, forged)
    victims_row, attackers_row = _row(container, victim), _row(container, attacker)
    _tamper(container, victims_row.id, public_key=attackers_row.public_key)
    forged.credential_id = genuine.credential_id
    forged.sign_count = genuine.sign_count

    assert not authenticate(container, victim, forged)
    assert _tamper_audits(container) == 1
    # The MAC, copied along with the key, is bound to the attacker's account, and no MAC at
    # all is refused the same way.
    _tamper(container, victims_row.id, key_mac=attackers_row.key_mac)
    assert not authenticate(container, victim, forged)
    _tamper(container, victims_row.id, key_mac=None)
    assert not authenticate(container, victim, forged)
    assert _tamper_audits(container) == 3

    # Put back as the application wrote it, the genuine key works again.
    _tamper(
        container, victims_row.id, public_key=victims_row.public_key, key_mac=victims_row.key_mac
    )
    assert authenticate(container, victim, genuine)


def test_a_key_moved_to_another_account_is_refused(container: Container) -> None:
    owner = make_user(container)
    key = SoftAuthenticator()
    assert register(container, owner, key)
    thief = make_user(container, "mallory@example.com")
    _tamper(container, _row(container, owner).id, user_id=thief)
    assert not authenticate(container, thief, key)
    assert _tamper_audits(container) == 1


@pytest.fixture
def database_before_the_macs(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of the kind under test, migrated up to the revision before the key MACs."""
    if db_backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "identity_mfa_0002")
        upgrade(url, "vault_0001")
        yield url
        return
    with scratch_postgres("rampart_webauthn_mac") as url:
        upgrade(url, "identity_mfa_0002")
        upgrade(url, "vault_0001")
        yield url


def test_the_migration_macs_the_keys_registered_before_it(
    database_before_the_macs: str, tmp_path: Path
) -> None:
    url = database_before_the_macs
    key = SoftAuthenticator()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO mfa_webauthn_credential (id, user_id, credential_id, public_key, "
                    "sign_count, name, transports, aaguid, device_type, backed_up, user_verified, "
                    "created_at) VALUES ('k-1', 'u-1', :cid, :pk, 0, 'Old key', '[]', "
                    "'00000000-0000-0000-0000-000000000000', 'single_device', false, true, :now)"
                ),
                {"cid": key.id, "pk": key._cose_public_key(), "now": datetime.now(UTC)},
            )
    finally:
        engine.dispose()
    settings = Settings(profile="dev", data_dir=tmp_path / "var", database_url=url)

    with pytest.raises(RuntimeError, match="needs the vault"):
        upgrade(url)
    upgrade(url, attributes=migration_attributes(settings))

    container = bootstrap(settings, clock=FrozenClock())
    try:
        assert _row(container, "u-1").key_mac is not None
        assert authenticate(container, "u-1", key)
    finally:
        container.close()
