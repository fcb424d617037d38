"""identity_mfa: second factors (TOTP, WebAuthn, email/SMS), backup codes, challenges, resets

Revision ID: identity_mfa_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import UTCDateTime

revision = "identity_mfa_0001"
down_revision = None
branch_labels = ("identity_mfa",)
depends_on = "identity_0001"


def upgrade() -> None:
    op.create_table(
        "mfa_totp",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("seed_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("user_id", name="uq_mfa_totp_user_id"),
    )
    op.create_table(
        "mfa_webauthn_credential",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("aaguid", sa.String(36), nullable=False),
        sa.Column("device_type", sa.String(16), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("user_verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("credential_id", name="uq_mfa_webauthn_credential_credential_id"),
    )
    op.create_index("ix_mfa_webauthn_credential_user_id", "mfa_webauthn_credential", ["user_id"])
    op.create_table(
        "mfa_otp_channel",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("destination_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("destination_hint", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("user_id", "channel", name="uq_mfa_otp_channel_user"),
    )
    op.create_table(
        "mfa_backup_code",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("code_digest", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_mfa_backup_code_user_id", "mfa_backup_code", ["user_id"])
    op.create_table(
        "mfa_challenge",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("purpose", sa.String(128), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_mfa_challenge_user_kind", "mfa_challenge", ["user_id", "kind", "purpose"])
    op.create_table(
        "mfa_reset",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("performed_by", sa.String(80), nullable=False),
        sa.Column("verification_method", sa.String(40), nullable=False),
        sa.Column("verification_reference", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("cooling_until", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_mfa_reset_user_id", "mfa_reset", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_mfa_reset_user_id", table_name="mfa_reset")
    op.drop_table("mfa_reset")
    op.drop_index("ix_mfa_challenge_user_kind", table_name="mfa_challenge")
    op.drop_table("mfa_challenge")
    op.drop_index("ix_mfa_backup_code_user_id", table_name="mfa_backup_code")
    op.drop_table("mfa_backup_code")
    op.drop_table("mfa_otp_channel")
    op.drop_index("ix_mfa_webauthn_credential_user_id", table_name="mfa_webauthn_credential")
    op.drop_table("mfa_webauthn_credential")
    op.drop_table("mfa_totp")
