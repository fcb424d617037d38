"""identity: when a session last proved a WebAuthn factor (what staff permissions need)

Revision ID: identity_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import UTCDateTime

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_session") as batch:
        batch.add_column(sa.Column("webauthn_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_session") as batch:
        batch.drop_column("webauthn_at")
