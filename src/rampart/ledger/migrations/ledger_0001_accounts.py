"""ledger: accounts, journal entries, postings, positions

Revision ID: ledger_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount, UTCDateTime

revision = "ledger_0001"
down_revision = None
branch_labels = ("ledger",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "ledger_account",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=True, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("balance", Amount(), nullable=False),
        sa.Column("reserved", Amount(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "ledger_journal_entry",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(80), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "ledger_posting",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "entry_id", sa.String(36), sa.ForeignKey("ledger_journal_entry.id"), nullable=False
        ),
        sa.Column("account_id", sa.String(80), sa.ForeignKey("ledger_account.id"), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
    )
    op.create_index("ix_ledger_posting_account", "ledger_posting", ["account_id"])
    op.create_table(
        "ledger_position",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("quantity", Amount(), nullable=False),
        sa.Column("cost_basis", Amount(), nullable=False),
        sa.Column("realised_pnl", Amount(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_position")
    op.drop_index("ix_ledger_posting_account", table_name="ledger_posting")
    op.drop_table("ledger_posting")
    op.drop_table("ledger_journal_entry")
    op.drop_table("ledger_account")
