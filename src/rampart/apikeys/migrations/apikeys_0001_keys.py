"""apikeys: API keys for signed requests, with row-level security on PostgreSQL

Revision ID: apikeys_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.access.rls import disable_owner_rls, enable_owner_rls
from rampart.platform.base import UTCDateTime

revision = "apikeys_0001"
down_revision = None
branch_labels = ("apikeys",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "apikey",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("algorithm", sa.String(20), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("allowed_cidrs", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=True),
        sa.Column("secret_hint", sa.String(20), nullable=True),
        sa.Column("public_key", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("grace_until", UTCDateTime(), nullable=True),
        sa.Column("replaced_by", sa.String(36), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_ip", sa.String(45), nullable=True),
        sa.Column("flagged_old_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_apikey_secret_hash"),
    )
    op.create_index("ix_apikey_user", "apikey", ["user_id", "created_at"])
    enable_owner_rls(op, "apikey")


def downgrade() -> None:
    disable_owner_rls(op, "apikey")
    op.drop_index("ix_apikey_user", table_name="apikey")
    op.drop_table("apikey")
