"""access: row-level security on the recovery tables (`mfa_recovery_hold`, `mfa_reset_request`)

Revision ID: access_0003

The two tables `identity_mfa_0002` added hold one user's rows each: the cooling period after an
email-only reset, and a support operator's request to reset a user's factors (owned by the user
whose factors it would remove; staff tools act as system work). Nothing changes on SQLite.
"""

from __future__ import annotations

from alembic import op

from rampart.access.rls import disable_owner_rls, enable_owner_rls

revision = "access_0003"
down_revision = "access_0002"
branch_labels = None
depends_on = ("identity_mfa_0002",)

_TABLES = ("mfa_recovery_hold", "mfa_reset_request")


def upgrade() -> None:
    for table in _TABLES:
        enable_owner_rls(op, table, "user_id", None)


def downgrade() -> None:
    for table in reversed(_TABLES):
        disable_owner_rls(op, table)
