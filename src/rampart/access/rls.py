"""Row-level security on PostgreSQL: the second wall behind the services' owner scoping.

Services already filter every query for user-owned rows by owner. On PostgreSQL the tables also
carry a policy that shows and accepts only the rows of the user named by the transaction setting
`rampart.user_id`, unless the transaction declared itself system work (`rampart.system = on`:
authentication lookups, background jobs). A query that forgot its `WHERE user_id = ...` in a
user-scoped transaction therefore still sees only that user's rows; a transaction that set
neither sees nothing (deny by default).

Policies bind every role except superusers, roles with BYPASSRLS, and the table owner (no FORCE:
migrations and maintenance run as the owner). Production therefore runs the application as a
role that owns nothing (see docs/decisions/0015-access-apikeys-ratelimits.md, "Data isolation"):

    CREATE ROLE rampart_app LOGIN NOSUPERUSER NOBYPASSRLS;
    GRANT USAGE ON SCHEMA public TO rampart_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rampart_app;

The full grants (no DDL, append-only audit tables) are `rampart db grant-app-role` (see
`rampart.access.grants` and docs/operations.md, "Database roles").

`USER_OWNED_TABLES` is the one registry of the tables that hold one user's data, with the column
naming the owner (directly, or through the parent row: a posting through its ledger account, a
refresh token through its session). The `access_0002` migration puts the policy on each;
tests/access/test_row_level_security.py checks every registered table as the application role,
and fails for a table with a user column that is neither registered nor exempted with a reason.

The application's own connections start every transaction as system work (`system_by_default`:
the order engine, jobs, authentication and staff tools need every row), and a service acting for
one user narrows its transaction with `scope_to_user`. The narrowing is `SET LOCAL`
(`set_config(..., true)`): it ends with the transaction, so a pooled connection never carries one
user's scope into another user's request. A connection that is not the application's (a psql
session as the application role, a tool) starts with neither setting and sees nothing. On SQLite,
which has no row-level security, the helpers do nothing and the service-layer scoping is the wall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

USER_SETTING = "rampart.user_id"
SYSTEM_SETTING = "rampart.system"


@dataclass(frozen=True)
class OwnedTable:
    """A table holding one user's rows: `column` names the owner, or, with `via`, the parent row
    (`via` = (parent table, parent key, parent's owner column)) whose owner owns this row."""

    table: str
    column: str = "user_id"
    via: tuple[str, str, str] | None = None


#: Every table that holds one user's data. A new one is added here and in a migration calling
#: `enable_owner_rls` (the test of row-level security fails until both are done).
USER_OWNED_TABLES: tuple[OwnedTable, ...] = (
    OwnedTable("access_role_assignment"),
    OwnedTable("apikey"),
    OwnedTable("identity_user", "id"),
    OwnedTable("identity_device"),
    OwnedTable("identity_email_token"),
    OwnedTable("identity_pending_login"),
    OwnedTable("identity_session"),
    OwnedTable("identity_refresh_token", "session_id", ("identity_session", "id", "user_id")),
    OwnedTable("mfa_backup_code"),
    OwnedTable("mfa_challenge"),
    OwnedTable("mfa_otp_channel"),
    OwnedTable("mfa_recovery_hold"),
    OwnedTable("mfa_reset"),
    OwnedTable("mfa_reset_request"),
    OwnedTable("mfa_totp"),
    OwnedTable("mfa_webauthn_credential"),
    OwnedTable("ledger_account"),
    OwnedTable("ledger_position"),
    OwnedTable("ledger_posting", "account_id", ("ledger_account", "id", "user_id")),
    OwnedTable("trading_order"),
    OwnedTable("trading_fill"),
    # The risk domain calls the trading user its account.
    OwnedTable("risk_cancel_on_disconnect", "account_id"),
    OwnedTable("risk_event", "account_id"),
    OwnedTable("risk_locate", "account_id"),
    OwnedTable("vault_user_key"),
    OwnedTable("vault_shredded_user"),
)

#: Tables deliberately left without an owner policy (with a user column or not), and why.
NOT_USER_OWNED: dict[str, str] = {
    "ledger_journal_entry": "one entry spans several users' and the house's accounts; each "
    "user's side of it is a ledger_posting, which is owned",
    "outbox_message": "system work only (the outbox worker), never read for a user",
    "identity_login_throttle": "keyed by a hash of the address and client, not by a user",
}


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def scope_to_user(session: Session, user_id: str) -> None:
    """Until the end of the transaction, RLS tables show and accept only `user_id`'s rows (also
    in a transaction that started as system work: the narrowing ends it)."""
    if _is_postgres(session):
        session.execute(
            text("SELECT set_config(:user, :value, true), set_config(:system, 'off', true)"),
            {"user": USER_SETTING, "value": user_id, "system": SYSTEM_SETTING},
        )


def scope_to_system(session: Session) -> None:
    """Until the end of the transaction, RLS tables show every row (authentication, jobs)."""
    if _is_postgres(session):
        session.execute(text("SELECT set_config(:name, 'on', true)"), {"name": SYSTEM_SETTING})


def system_by_default(engine: Engine) -> None:
    """The application's connections start each transaction as system work (all rows), the
    session-level default that a `scope_to_user` (`SET LOCAL`) overrides until its transaction
    ends. Only for the application's own engines: other clients of the role see nothing."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SELECT set_config('{SYSTEM_SETTING}', 'on', false)")
        cursor.close()
        # The driver opened a transaction for the query: end it so the setting stays and the
        # connection is handed out idle.
        dbapi_connection.commit()


def owner_policy_statements(
    table: str, column: str = "user_id", via: tuple[str, str, str] | None = None
) -> list[str]:
    """The DDL enabling the owner policy on `table` (PostgreSQL)."""
    owner = f"current_setting('{USER_SETTING}', true)"
    if via is None:
        owned = f"{column} = {owner}"
    else:
        parent, key, parent_owner = via
        # The parent's own policy applies inside the subquery too: it agrees by construction.
        # Identifiers come from the code's own registry, never from input.
        match = f'p.{key} = "{table}".{column} AND p.{parent_owner} = {owner}'
        owned = f'EXISTS (SELECT 1 FROM "{parent}" AS p WHERE {match})'  # noqa: S608
    condition = f"({owned} OR current_setting('{SYSTEM_SETTING}', true) = 'on')"
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'CREATE POLICY "{table}_owner" ON "{table}" USING {condition} WITH CHECK {condition}',
    ]


def enable_owner_rls(
    op: Any, table: str, column: str = "user_id", via: tuple[str, str, str] | None = None
) -> None:
    """For a domain's migration: `enable_owner_rls(op, "order")` (no-op on SQLite)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in owner_policy_statements(table, column, via):
        op.execute(statement)


def disable_owner_rls(op: Any, table: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'DROP POLICY IF EXISTS "{table}_owner" ON "{table}"')
    op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
