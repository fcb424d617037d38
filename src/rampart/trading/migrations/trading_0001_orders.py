"""trading: orders, fills, engine state

Revision ID: trading_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount, UTCDateTime

revision = "trading_0001"
down_revision = None
branch_labels = ("trading",)
depends_on = ("platform_0001", "ledger_0001", "venue_0001")


def upgrade() -> None:
    op.create_table(
        "trading_order",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(12), nullable=False),
        sa.Column("type", sa.String(12), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("quantity", Amount(), nullable=False),
        sa.Column("limit_price", Amount(), nullable=True),
        sa.Column("stop_price", Amount(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filled_quantity", Amount(), nullable=False),
        sa.Column("filled_notional", Amount(), nullable=False),
        sa.Column("reserved", Amount(), nullable=False),
        sa.Column("priority", sa.BigInteger(), nullable=False),
        sa.Column("triggered", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_trading_order_client_order_id"),
    )
    op.create_index("ix_trading_order_user", "trading_order", ["user_id", "id"])
    op.create_index("ix_trading_order_open", "trading_order", ["status"])
    op.create_table(
        "trading_fill",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trade_id", sa.String(36), nullable=False),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(12), nullable=False),
        sa.Column("price", Amount(), nullable=False),
        sa.Column("quantity", Amount(), nullable=False),
        sa.Column("liquidity", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_trading_fill_order", "trading_fill", ["order_id"])
    op.create_index("ix_trading_fill_user", "trading_fill", ["user_id", "id"])
    op.create_table(
        "trading_engine_state",
        sa.Column("venue", sa.String(32), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trading_engine_state")
    op.drop_index("ix_trading_fill_user", table_name="trading_fill")
    op.drop_index("ix_trading_fill_order", table_name="trading_fill")
    op.drop_table("trading_fill")
    op.drop_index("ix_trading_order_open", table_name="trading_order")
    op.drop_index("ix_trading_order_user", table_name="trading_order")
    op.drop_table("trading_order")
