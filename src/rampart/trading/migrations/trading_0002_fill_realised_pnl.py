"""trading: the P&L each fill realised

Revision ID: trading_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount

revision = "trading_0002"
down_revision = "trading_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Fills written before this revision count as realising nothing: the daily loss limit then
    # reads today's figure from fills recorded from now on, never from a restarted baseline.
    with op.batch_alter_table("trading_fill") as batch:
        batch.add_column(sa.Column("realised_pnl", Amount(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trading_fill") as batch:
        batch.drop_column("realised_pnl")
