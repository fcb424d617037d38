"""apikeys: when a key's owner was told it expires soon

Revision ID: apikeys_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import UTCDateTime

revision = "apikeys_0002"
down_revision = "apikeys_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apikey") as batch:
        batch.add_column(sa.Column("expiry_notice_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apikey") as batch:
        batch.drop_column("expiry_notice_at")
