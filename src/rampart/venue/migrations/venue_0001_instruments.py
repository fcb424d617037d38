"""venue: instruments

Revision ID: venue_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount, UTCDateTime

revision = "venue_0001"
down_revision = None
branch_labels = ("venue",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "venue_instrument",
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tick_size", Amount(), nullable=False),
        sa.Column("lot_size", Amount(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference_price", Amount(), nullable=False),
        sa.Column("easy_to_borrow", sa.Boolean(), nullable=False),
        sa.Column("threshold_security", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("venue_instrument")
