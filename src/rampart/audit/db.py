"""The audit log's tables.

`audit_entry`, `audit_subtree` and `audit_checkpoint` are append-only (database triggers refuse
UPDATE and DELETE, and TRUNCATE on PostgreSQL). `audit_tree_state` is the one mutable row: the
tree's size and right border, updated under a row lock in the same transaction as the entries it
counts, so sequence numbers are dense and in commit order. It can always be recomputed from the
entries.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Base

#: SQLite indexes actors by block of 2**ACTOR_BLOCK_BITS sequence numbers (audit_0003): a commit
#: dirties only the newest block's index pages instead of one page per actor it touches.
#: PostgreSQL keeps the plain (actor, ts_ns) index (see the migration for why).
ACTOR_BLOCK_BITS = 10


class AuditEntryRow(Base):
    __tablename__ = "audit_entry"

    #: The leaf index in the Merkle tree: 0, 1, 2, ... with no gaps (SQLite: the rowid itself).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The RFC 8785 canonical JSON that was hashed: the entry itself. The columns above are
    #: copies for searching, checked against it by `rampart audit verify`.
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (
        Index("ix_audit_entry_ts", "ts_ns"),
        Index("ix_audit_entry_actor_ts", "actor", "ts_ns").ddl_if(dialect="postgresql"),
        Index(
            "ix_audit_entry_actor_block", text(f"(seq >> {ACTOR_BLOCK_BITS})"), "actor", "ts_ns"
        ).ddl_if(dialect="sqlite"),
        Index("ix_audit_entry_subject_ts", "subject", "ts_ns"),
        Index("ix_audit_entry_action_ts", "action", "ts_ns"),
    )


class AuditTreeStateRow(Base):
    __tablename__ = "audit_tree_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    #: The compact range: 32 bytes per set bit of `size`, largest subtree first.
    border: Mapped[bytes] = mapped_column(LargeBinary)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoint"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    #: The compact range at this size: what the next checkpoint's consistency proof starts from.
    border: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(8))
    #: The C2SP signed note, exactly as signed and shipped.
    note: Mapped[str] = mapped_column(Text)


class AuditSigningKeyRow(Base):
    __tablename__ = "audit_signing_key"

    #: `<name>+<hex key id>+<base64 key>`, the C2SP verifier key.
    verifier_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    valid_from_ns: Mapped[int] = mapped_column(BigInteger)
    #: Set when another key takes over; the key still verifies the checkpoints it signed.
    retired_at_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


#: Perfect subtrees of at least 2**SUBTREE_MIN_HEIGHT leaves are stored as they complete (one row
#: per 8 entries on average); smaller ones are rebuilt from at most 8 leaf hashes.
SUBTREE_MIN_HEIGHT = 4


class AuditSubtreeRow(Base):
    """The hash of one complete perfect subtree: leaves [idx << level, (idx + 1) << level).

    Written in the same transaction as the entries that complete it, never changed (append-only
    like the entries). Proofs are assembled from these in O(log n) reads; they are checked
    against the entries by `rampart audit verify` and every proof is checked against its root
    before it is served, so a wrong row can only refuse a proof, never pass a false one.
    """

    __tablename__ = "audit_subtree"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = {"sqlite_with_rowid": False}
