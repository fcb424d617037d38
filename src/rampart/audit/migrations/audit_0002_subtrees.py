"""audit: stored perfect-subtree hashes, so proofs cost O(log n) reads

Revision ID: audit_0002
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "audit_0002"
down_revision = "audit_0001"
branch_labels = None
depends_on = None

#: Must match rampart.audit.db.SUBTREE_MIN_HEIGHT (migrations do not import application code).
MIN_HEIGHT = 4
BACKFILL_CHUNK = 10_000


def upgrade() -> None:
    subtree = op.create_table(
        "audit_subtree",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        # Clustered on its key: SQLite writes one B-tree per row instead of a table and an index.
        sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_subtree_append_only BEFORE UPDATE OR DELETE ON audit_subtree "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_subtree_no_truncate BEFORE TRUNCATE ON audit_subtree "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_subtree_no_{verb.lower()} BEFORE {verb} ON audit_subtree "
                f"BEGIN SELECT RAISE(ABORT, 'audit records are append-only: {verb} on "
                "audit_subtree refused'); END"
            )
    _backfill(bind, subtree)


def _backfill(bind: sa.Connection, subtree: sa.Table) -> None:
    """Store the subtrees of a log written before this revision (a compact range over it)."""
    border: list[bytes] = []
    size = 0
    last = -1
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT seq, leaf_hash FROM audit_entry WHERE seq > :last ORDER BY seq LIMIT :n"
            ),
            {"last": last, "n": BACKFILL_CHUNK},
        ).all()
        if not rows:
            return
        nodes = []
        for seq, leaf in rows:
            if seq != size:
                raise RuntimeError(f"audit_entry has a gap at {size}: run `rampart audit verify`")
            s, h, height = size, bytes(leaf), 0
            while s & 1:
                h = hashlib.sha256(b"\x01" + border.pop() + h).digest()
                s >>= 1
                height += 1
                if height >= MIN_HEIGHT:
                    nodes.append({"level": height, "idx": ((size + 1) >> height) - 1, "hash": h})
            border.append(h)
            size += 1
        if nodes:
            op.bulk_insert(subtree, nodes)
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_subtree_append_only ON audit_subtree")
        op.execute("DROP TRIGGER IF EXISTS audit_subtree_no_truncate ON audit_subtree")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_subtree_no_{verb}")
    op.drop_table("audit_subtree")
