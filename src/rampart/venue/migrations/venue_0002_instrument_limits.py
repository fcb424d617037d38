"""venue: per-instrument order limits (maximum quantity, maximum and minimum price)

Nullable: an instrument without them keeps only the platform's bounds (10,000,000).

Revision ID: venue_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount

revision = "venue_0002"
down_revision = "venue_0001"
branch_labels = None
depends_on = None

COLUMNS = ("max_quantity", "max_price", "min_price")


def upgrade() -> None:
    with op.batch_alter_table("venue_instrument") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, Amount(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("venue_instrument") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
