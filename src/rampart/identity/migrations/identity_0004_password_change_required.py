"""identity: an operator-set password must be replaced at the first sign-in

Revision ID: identity_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0004"
down_revision = "identity_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_user") as batch:
        batch.add_column(
            sa.Column(
                "password_change_required",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_user") as batch:
        batch.drop_column("password_change_required")
