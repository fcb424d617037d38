"""Row-level security on PostgreSQL: the second wall behind the services' owner scoping.

Services already filter every query for user-owned rows by owner. On PostgreSQL the tables also
carry a policy that shows and accepts only the rows of the user named by the transaction setting
`rampart.user_id`, unless the transaction declared itself system work (`rampart.system = on`:
authentication lookups, background jobs). A query that forgot its `WHERE user_id = ...` in a
user-scoped transaction therefore still sees only that user's rows; a transaction that set
neither sees nothing (deny by default).

Policies bind every role except superusers, roles with BYPASSRLS, and the table owner (no FORCE:
migrations and maintenance run as the owner). Production therefore runs the application as a
role that owns nothing (see docs/architecture.md, "Data isolation"):

    CREATE ROLE rampart_app LOGIN NOSUPERUSER NOBYPASSRLS;
    GRANT USAGE ON SCHEMA public TO rampart_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rampart_app;

The settings are `SET LOCAL` (`set_config(..., true)`): they end with the transaction, so a pooled
connection never carries one user's scope into another user's request. On SQLite, which has no
row-level security, the helpers do nothing and the service-layer scoping is the wall.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

USER_SETTING = "rampart.user_id"
SYSTEM_SETTING = "rampart.system"


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def scope_to_user(session: Session, user_id: str) -> None:
    """Until the end of the transaction, RLS tables show and accept only `user_id`'s rows."""
    if _is_postgres(session):
        session.execute(
            text("SELECT set_config(:name, :value, true)"),
            {"name": USER_SETTING, "value": user_id},
        )


def scope_to_system(session: Session) -> None:
    """Until the end of the transaction, RLS tables show every row (authentication, jobs)."""
    if _is_postgres(session):
        session.execute(text("SELECT set_config(:name, 'on', true)"), {"name": SYSTEM_SETTING})


def owner_policy_statements(table: str, column: str = "user_id") -> list[str]:
    """The DDL enabling the owner policy on `table` (PostgreSQL)."""
    condition = (
        f"({column} = current_setting('{USER_SETTING}', true) "
        f"OR current_setting('{SYSTEM_SETTING}', true) = 'on')"
    )
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'CREATE POLICY "{table}_owner" ON "{table}" USING {condition} WITH CHECK {condition}',
    ]


def enable_owner_rls(op: Any, table: str, column: str = "user_id") -> None:
    """For a domain's migration: `enable_owner_rls(op, "order")` (no-op on SQLite)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in owner_policy_statements(table, column):
        op.execute(statement)


def disable_owner_rls(op: Any, table: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'DROP POLICY IF EXISTS "{table}_owner" ON "{table}"')
    op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
