"""risk: a version counter of the trading controls (every process sees a change at its next
order) and per-instrument price bands (limit-up/limit-down style)

Revision ID: risk_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount, UTCDateTime

revision = "risk_0002"
down_revision = "risk_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_controls_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "risk_price_band",
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("band_percent", Amount(), nullable=True),
        sa.Column("window_seconds", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("risk_price_band")
    op.drop_table("risk_controls_version")
