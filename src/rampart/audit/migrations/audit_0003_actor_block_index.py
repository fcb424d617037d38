"""audit: on SQLite, search by actor through an index clustered by block of sequence numbers

Revision ID: audit_0003

The `(actor, ts_ns)` index takes keys from every actor in every commit: with a thousand actors a
commit of 512 entries dirtied ~400 of its leaf pages (2-3.5 MB of WAL per commit, copied again by
the checkpoint), which bounded SQLite appends at ~20,000/s. Keyed `(seq >> 10, actor, ts_ns)`
instead, a commit only touches the pages of the newest block of 1,024 entries, which stay hot;
searches by actor seek once per block. SQLite maintains the index from the row itself, so it can
never disagree with the `actor` column (which `rampart audit verify` checks against the body).
PostgreSQL keeps the plain index: there it saved only ~1 µs of server CPU per entry (a few per
cent of an append, whose bound is the caller's CPU) and made a search by actor twice as slow,
one probe per block, where logs are largest.
"""

from __future__ import annotations

from alembic import op

revision = "audit_0003"
down_revision = "audit_0002"
branch_labels = None
depends_on = None

#: Must match rampart.audit.db.ACTOR_BLOCK_BITS (migrations do not import application code).
BLOCK_BITS = 10


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"CREATE INDEX ix_audit_entry_actor_block ON audit_entry ((seq >> {BLOCK_BITS}), actor, "
        "ts_ns)"
    )
    op.execute("DROP INDEX ix_audit_entry_actor_ts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE INDEX ix_audit_entry_actor_ts ON audit_entry (actor, ts_ns)")
    op.execute("DROP INDEX ix_audit_entry_actor_block")
