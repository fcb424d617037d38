"""vault: wrapped data keys and per-user keys

Revision ID: vault_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import UTCDateTime

revision = "vault_0001"
down_revision = None
branch_labels = ("vault",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "vault_data_key",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("family", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kek_id", sa.String(64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("superseded_at", UTCDateTime(), nullable=True),
        sa.Column("destroyed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("family", "version", name="uq_vault_data_key_version"),
    )
    op.create_table(
        "vault_user_key",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("destroyed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("purpose", "user_id", "key_version", name="uq_vault_user_key_version"),
    )
    op.create_index("ix_vault_user_key_user_id", "vault_user_key", ["user_id"])
    op.create_table(
        "vault_shredded_user",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("shredded_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vault_shredded_user")
    op.drop_index("ix_vault_user_key_user_id", table_name="vault_user_key")
    op.drop_table("vault_user_key")
    op.drop_table("vault_data_key")
