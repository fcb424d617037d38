"""access: role assignments (time-limited grants) and custom roles

Revision ID: access_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import UTCDateTime

revision = "access_0001"
down_revision = None
branch_labels = ("access",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "access_role_assignment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(100), nullable=True),
    )
    op.create_index(
        "ix_access_role_assignment_user", "access_role_assignment", ["user_id", "revoked_at"]
    )
    op.create_table(
        "access_custom_role",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("access_custom_role")
    op.drop_index("ix_access_role_assignment_user", table_name="access_role_assignment")
    op.drop_table("access_role_assignment")
