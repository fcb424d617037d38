"""ledger: the collateral each short position holds (Regulation T, marked to market)

Revision ID: ledger_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount

revision = "ledger_0002"
down_revision = "ledger_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Positions written before this revision held no collateral (short sales reserved their full
    # value only until they filled); the engine marks a short on its next trade.
    with op.batch_alter_table("ledger_position") as batch:
        batch.add_column(sa.Column("margin_held", Amount(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ledger_position") as batch:
        batch.drop_column("margin_held")
