"""Backup codes are stored with a salted, slow hash (argon2id over the vault's keyed hash), and
the migration that wraps the old keyed hashes keeps every printed code working."""

from __future__ import annotations

from sqlalchemy import select

from rampart.bootstrap import Container
from rampart.identity.mfa.backup_codes import ARGON2_PREFIX, wrap_legacy_digests
from rampart.identity.mfa.db import BackupCodeRow
from rampart.identity.mfa.domain import FactorKind, normalise_backup_code
from rampart.identity.mfa.service import FactorResponse
from tests.mfa.support import make_user
from tests.mfa.test_service import verify


def _codes(container: Container, user: str) -> list[str]:
    with container.uow() as uow:
        codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user)]
        uow.commit()
    return codes


def test_backup_codes_are_stored_with_argon2id_and_a_salt_of_their_own(
    container: Container,
) -> None:
    user = make_user(container)
    codes = _codes(container, user)
    with container.db.read() as session:
        stored = session.scalars(
            select(BackupCodeRow.code_digest).where(BackupCodeRow.user_id == user)
        ).all()
    assert len(stored) == len(codes)
    assert all(d.startswith(ARGON2_PREFIX) for d in stored)
    # A salt of their own: no two stored values share a salt.
    salts = {d.split("$")[4] for d in stored}
    assert len(salts) == len(stored)
    assert verify(container, user, FactorResponse(FactorKind.BACKUP_CODE, code=codes[5]))


def test_the_migration_wraps_the_old_keyed_hashes_and_old_codes_keep_working(
    container: Container,
) -> None:
    user = make_user(container)
    codes = _codes(container, user)
    # Put the rows back as the previous release stored them: the bare keyed hash.
    with container.uow() as uow:
        rows = list(
            uow.session.scalars(
                select(BackupCodeRow)
                .where(BackupCodeRow.user_id == user)
                .order_by(BackupCodeRow.created_at, BackupCodeRow.id)
            )
        )
        for row, code in zip(rows, codes, strict=True):
            normal = normalise_backup_code(code)
            assert normal is not None
            row.code_digest = container.mfa._code_digest(uow.session, "backup", user, normal)
        uow.commit()
    with container.db.engine.begin() as connection:
        assert wrap_legacy_digests(connection) == len(codes)
        # Run again, it finds nothing left to wrap.
        assert wrap_legacy_digests(connection) == 0
    with container.db.read() as session:
        stored = session.scalars(select(BackupCodeRow.code_digest)).all()
    assert all(d.startswith(ARGON2_PREFIX) for d in stored)
    for code in codes[:2]:
        assert verify(container, user, FactorResponse(FactorKind.BACKUP_CODE, code=code))
