"""identity: users, link tokens, devices, sessions, refresh tokens, pending sign-ins,
login throttling and JWT signing keys

Revision ID: identity_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rampart.platform.base import UTCDateTime

revision = "identity_0001"
down_revision = None
branch_labels = ("identity",)
depends_on = "platform_0001"


def upgrade() -> None:
    op.create_table(
        "identity_user",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_verified_at", UTCDateTime(), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tokens_not_before", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("password_changed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("email", name="uq_identity_user_email"),
    )
    op.create_table(
        "identity_email_token",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_identity_email_token_token_hash"),
    )
    op.create_index("ix_identity_email_token_user_id", "identity_email_token", ["user_id"])
    op.create_table(
        "identity_device",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("device_key", sa.String(128), nullable=False),
        sa.Column("user_agent", sa.String(256), nullable=True),
        sa.Column("first_ip", sa.String(64), nullable=True),
        sa.Column("last_ip", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("user_id", "device_key", name="uq_identity_device_key"),
    )
    op.create_table(
        "identity_session",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("device_id", sa.String(36), nullable=True),
        sa.Column("user_agent", sa.String(256), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(64), nullable=True),
        sa.Column("mfa_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_identity_session_secret_hash"),
    )
    op.create_index("ix_identity_session_user", "identity_session", ["user_id", "revoked_at"])
    op.create_table(
        "identity_refresh_token",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_identity_refresh_token_token_hash"),
    )
    op.create_index(
        "ix_identity_refresh_token_session_id", "identity_refresh_token", ["session_id"]
    )
    op.create_table(
        "identity_pending_login",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("device_key", sa.String(128), nullable=True),
        sa.Column("user_agent", sa.String(256), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("token_hash", name="uq_identity_pending_login_token_hash"),
    )
    op.create_table(
        "identity_login_throttle",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_failure_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "identity_signing_key",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "identity_signing_key",
        "identity_login_throttle",
        "identity_pending_login",
        "identity_refresh_token",
        "identity_session",
        "identity_device",
        "identity_email_token",
        "identity_user",
    ):
        op.drop_table(table)
