"""access: row-level security on every table that holds one user's data

Revision ID: access_0002

Until this revision only `apikey` carried the owner policy. The list is fixed here, as this
revision's: `rampart.access.rls.USER_OWNED_TABLES` may grow, and a table added later gets its
policy from a later migration. The test of row-level security checks that every registered table
has its policy. Nothing changes on SQLite, which has no row-level security.
"""

from __future__ import annotations

from alembic import op

from rampart.access.rls import disable_owner_rls, enable_owner_rls

revision = "access_0002"
down_revision = "access_0001"
branch_labels = None
# The tables it protects: each domain's newest revision at the time of writing.
depends_on = (
    "identity_0003",
    "identity_mfa_0001",
    "ledger_0002",
    "risk_0002",
    "trading_0002",
)

#: (table, owner column, via parent (table, key, owner column) or None)
_TABLES: tuple[tuple[str, str, tuple[str, str, str] | None], ...] = (
    ("access_role_assignment", "user_id", None),
    ("identity_user", "id", None),
    ("identity_device", "user_id", None),
    ("identity_email_token", "user_id", None),
    ("identity_pending_login", "user_id", None),
    ("identity_session", "user_id", None),
    ("identity_refresh_token", "session_id", ("identity_session", "id", "user_id")),
    ("mfa_backup_code", "user_id", None),
    ("mfa_challenge", "user_id", None),
    ("mfa_otp_channel", "user_id", None),
    ("mfa_reset", "user_id", None),
    ("mfa_totp", "user_id", None),
    ("mfa_webauthn_credential", "user_id", None),
    ("ledger_account", "user_id", None),
    ("ledger_position", "user_id", None),
    ("ledger_posting", "account_id", ("ledger_account", "id", "user_id")),
    ("trading_order", "user_id", None),
    ("trading_fill", "user_id", None),
    ("risk_cancel_on_disconnect", "account_id", None),
    ("risk_event", "account_id", None),
    ("risk_locate", "account_id", None),
    ("vault_user_key", "user_id", None),
    ("vault_shredded_user", "user_id", None),
)


def upgrade() -> None:
    for table, column, via in _TABLES:
        enable_owner_rls(op, table, column, via)


def downgrade() -> None:
    for table, _column, _via in reversed(_TABLES):
        disable_owner_rls(op, table)
