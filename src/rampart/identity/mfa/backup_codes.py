"""How backup codes are stored: argon2id (salted, slow, memory-hard) over the vault's keyed hash.

A backup code has about 50 bits of entropy. Its keyed hash alone (`MfaSecrets.digest`, the
vault's blind index) is fast: whoever obtains both the table and that key could try every code
of every user quickly. Wrapping it in argon2id with a per-code salt makes each guess cost tens of
milliseconds and a megabyte-scale memory, per code, per user, while the pepper still keeps a
table dump without the key useless.

Why argon2id over the existing keyed hash, rather than over the code itself: the rows written
before this change hold only that keyed hash (the codes themselves were never stored), so the
migration (`identity_mfa_0002`) can wrap them in place, `argon2id(keyed_hash)`, and every code a
user already printed keeps working; new codes are stored the same way, so there is one format.

Checking a code costs one argon2 verification per unused code of the user (at most
`BACKUP_CODE_COUNT`, ten, bounded by the query), and every one is checked whether or not an
earlier one matched, so the time does not reveal which code, or whether any, matched.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection

from rampart.identity.mfa.db import BackupCodeRow
from rampart.identity.mfa.domain import (
    BACKUP_CODE_COUNT,
    InvalidFactorError,
    new_backup_codes,
    normalise_backup_code,
)
from rampart.identity.mfa.ports import MfaSecrets, Notifier
from rampart.kernel.clock import Clock
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.uow import UnitOfWork

ARGON2_PREFIX = "$argon2id$"

# The OWASP minimum for argon2id (19 MiB, two passes): the input is already a keyed hash of a
# 50-bit secret, so this is defence in depth, and a sign-in may check ten of them.
_HASHER = PasswordHasher(
    time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)


def seal_code_digest(keyed_digest: str) -> str:
    """What is stored for a backup code whose keyed hash is `keyed_digest`."""
    return _HASHER.hash(keyed_digest)


def code_digest_matches(stored: str, keyed_digest: str) -> bool:
    """Whether `stored` was made from `keyed_digest`; a malformed row is simply no match."""
    try:
        return _HASHER.verify(stored, keyed_digest)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def wrap_legacy_digests(connection: Connection) -> int:
    """Migration step: wrap every stored keyed hash not yet in argon2id. Returns how many."""
    rows = connection.execute(
        text("SELECT id, code_digest FROM mfa_backup_code WHERE code_digest NOT LIKE :prefix"),
        {"prefix": ARGON2_PREFIX + "%"},
    ).all()
    for row_id, digest in rows:
        connection.execute(
            text("UPDATE mfa_backup_code SET code_digest = :sealed WHERE id = :id"),
            {"sealed": seal_code_digest(digest), "id": row_id},
        )
    return len(rows)


class BackupCodes:
    """Ten single-use codes for the day every other factor is lost."""

    def __init__(self, clock: Clock, secrets_port: MfaSecrets, notifier: Notifier) -> None:
        self._clock = clock
        self._secrets = secrets_port
        self._notifier = notifier

    def regenerate(self, uow: UnitOfWork, user_id: str) -> list[Secret[str]]:
        """Ten new codes, shown once; every older code stops working in the same transaction."""
        session = uow.session
        session.execute(delete(BackupCodeRow).where(BackupCodeRow.user_id == user_id))
        codes = new_backup_codes(BACKUP_CODE_COUNT)
        now = self._clock.now()
        for code in codes:
            normal = normalise_backup_code(code)
            assert normal is not None
            session.add(
                BackupCodeRow(
                    id=new_id(),
                    user_id=user_id,
                    code_digest=seal_code_digest(
                        self._secrets.code_digest(session, "backup", user_id, normal)
                    ),
                    created_at=now,
                )
            )
        session.flush()
        uow.audit(
            AuditEvent(
                action="mfa.backup_codes.generated",
                subject=f"user:{user_id}",
                details={"count": len(codes)},
            )
        )
        self._notifier.security_notice(
            uow, user_id, "mfa.backup_codes_generated", {"count": len(codes)}
        )
        return [Secret(c) for c in codes]

    def use(self, uow: UnitOfWork, user_id: str, code: str) -> int:
        """Spend `code`; returns how many unused codes remain. Raises `InvalidFactorError`."""
        session = uow.session
        normal = normalise_backup_code(code)
        if normal is None:
            raise InvalidFactorError
        digest = self._secrets.code_digest(session, "backup", user_id, normal)
        rows = session.scalars(
            select(BackupCodeRow)
            .where(BackupCodeRow.user_id == user_id, BackupCodeRow.used_at.is_(None))
            .limit(BACKUP_CODE_COUNT * 2)
        ).all()
        match: BackupCodeRow | None = None
        for row in rows:
            # Every unused code is checked, whether or not an earlier one matched: the time
            # taken says nothing about which code, or whether any, matched.
            if code_digest_matches(row.code_digest, digest) and match is None:
                match = row
        if match is None:
            raise InvalidFactorError
        now = self._clock.now()
        spent = session.execute(
            update(BackupCodeRow)
            .where(BackupCodeRow.id == match.id, BackupCodeRow.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        return len(rows) - 1
