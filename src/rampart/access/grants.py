"""What the service's database role may do: least privilege on PostgreSQL.

Migrations run as the owner of the schema (`rampart db upgrade`); the service runs as a role that
owns nothing (so row-level security binds it, see `rampart.access.rls`) and holds only these
grants: read and write the ordinary tables, append to the audit log and never change or remove
an entry, read the schema version, and no DDL (it owns no table and gets no CREATE on the
schema). `rampart db grant-app-role ROLE` prints the statements (`--apply` runs them as the
owner); run it again after a migration that adds tables. The role's attributes are the
administrator's (`CREATE ROLE ... LOGIN NOSUPERUSER NOBYPASSRLS`; changing them needs a
superuser); the production pre-flight refuses to serve as a role with the wrong ones.
"""

from __future__ import annotations

import re

#: The audit log: rows are appended and read, never updated or deleted (database triggers refuse
#: it too; the grants are the wall that does not depend on the owner's triggers).
APPEND_ONLY_TABLES: tuple[str, ...] = ("audit_entry", "audit_subtree", "audit_checkpoint")
#: Read by the service to check the schema is current; written only by migrations.
READ_ONLY_TABLES: tuple[str, ...] = ("alembic_version",)

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class InvalidRoleNameError(ValueError):
    def __init__(self, role: str) -> None:
        super().__init__(
            f"{role!r} is not a plain role name (lower-case letters, digits and _ only)"
        )


def app_role_grants(role: str, schema: str = "public") -> list[str]:
    """The statements, in order, that give `role` exactly the service's privileges."""
    if not _ROLE_NAME.fullmatch(role) or not _ROLE_NAME.fullmatch(schema):
        raise InvalidRoleNameError(role if not _ROLE_NAME.fullmatch(role) else schema)
    quoted = f'"{role}"'
    restricted = ", ".join(f'"{schema}"."{t}"' for t in APPEND_ONLY_TABLES + READ_ONLY_TABLES)
    append_only = ", ".join(f'"{schema}"."{t}"' for t in APPEND_ONLY_TABLES)
    read_only = ", ".join(f'"{schema}"."{t}"' for t in READ_ONLY_TABLES)
    return [
        # No CREATE on the schema: the role can make no table, view or function.
        f'REVOKE CREATE ON SCHEMA "{schema}" FROM {quoted}',
        f'REVOKE CREATE ON SCHEMA "{schema}" FROM PUBLIC',
        f'GRANT USAGE ON SCHEMA "{schema}" TO {quoted}',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {quoted}',
        f'REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA "{schema}" FROM {quoted}',
        f"REVOKE UPDATE, DELETE ON {restricted} FROM {quoted}",
        f"REVOKE INSERT ON {read_only} FROM {quoted}",
        f"GRANT SELECT, INSERT ON {append_only} TO {quoted}",
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO {quoted}',
    ]
