"""identity_mfa: recovery holds (email-only resets), four-eyes factor-reset requests, backup
codes in argon2id (each stored keyed hash wrapped in place: existing codes keep working)

Revision ID: identity_mfa_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.identity.mfa.backup_codes import wrap_legacy_digests
from rampart.platform.base import UTCDateTime

revision = "identity_mfa_0002"
down_revision = "identity_mfa_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mfa_recovery_hold",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("cause", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("cooling_until", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_mfa_recovery_hold_user_id", "mfa_recovery_hold", ["user_id"])
    op.create_table(
        "mfa_reset_request",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("verification_method", sa.String(40), nullable=False),
        sa.Column("verification_reference", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(80), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_mfa_reset_request_user_id", "mfa_reset_request", ["user_id"])
    wrap_legacy_digests(op.get_bind())


def downgrade() -> None:
    # The wrapped backup-code hashes cannot be unwrapped (that is the point): a downgrade keeps
    # them, and users regenerate their codes.
    op.drop_index("ix_mfa_reset_request_user_id", table_name="mfa_reset_request")
    op.drop_table("mfa_reset_request")
    op.drop_index("ix_mfa_recovery_hold_user_id", table_name="mfa_recovery_hold")
    op.drop_table("mfa_recovery_hold")
