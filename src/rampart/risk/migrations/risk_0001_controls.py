"""risk: limits, trading states, halts, regulator notifications, restricted list, locates,
cancel-on-disconnect registrations and risk events

Revision ID: risk_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import Amount, UTCDateTime

revision = "risk_0001"
down_revision = None
branch_labels = ("risk",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "risk_limit",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "risk_trading_state",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "risk_halt",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("halted_by", sa.String(100), nullable=False),
        sa.Column("halted_at", UTCDateTime(), nullable=False),
        sa.Column("resume_requested_by", sa.String(100), nullable=True),
        sa.Column("resume_requested_at", UTCDateTime(), nullable=True),
        sa.Column("resume_reason", sa.Text(), nullable=True),
        sa.Column("resumed_by", sa.String(100), nullable=True),
        sa.Column("resumed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_risk_halt_status", "risk_halt", ["status", "scope", "target"])
    op.create_table(
        "risk_regulator_notification",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("halt_id", sa.String(36), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("regulator", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_risk_regulator_notification_halt", "risk_regulator_notification", ["halt_id"]
    )
    op.create_table(
        "risk_restricted_security",
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(100), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "risk_locate",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("quantity", Amount(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("trade_date", sa.String(10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_index("ix_risk_locate_account", "risk_locate", ["account_id", "symbol", "trade_date"])
    op.create_table(
        "risk_cancel_on_disconnect",
        sa.Column("credential_id", sa.String(100), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("enabled_at", UTCDateTime(), nullable=False),
        sa.Column("enabled_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "risk_event",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("account_id", sa.String(100), nullable=True),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_risk_event_time", "risk_event", ["occurred_at"])
    op.create_index("ix_risk_event_account", "risk_event", ["account_id", "occurred_at"])
    op.create_index("ix_risk_event_kind", "risk_event", ["kind", "occurred_at"])


def downgrade() -> None:
    for index, table in (
        ("ix_risk_event_kind", "risk_event"),
        ("ix_risk_event_account", "risk_event"),
        ("ix_risk_event_time", "risk_event"),
        ("ix_risk_locate_account", "risk_locate"),
        ("ix_risk_regulator_notification_halt", "risk_regulator_notification"),
        ("ix_risk_halt_status", "risk_halt"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "risk_event",
        "risk_cancel_on_disconnect",
        "risk_locate",
        "risk_restricted_security",
        "risk_regulator_notification",
        "risk_halt",
        "risk_trading_state",
        "risk_limit",
    ):
        op.drop_table(table)
