"""Retention: nothing removes audit entries, however old; the retention can only be raised.

There is deliberately no pruning path (docs/decisions/0014-audit-log.md): every entry is kept for at
least `audit.retention_years` (7 by default, never less), and the application has no code that
deletes, truncates or rewrites audit rows at any age. The database triggers enforce it for every
role that does not own the tables.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rampart.bootstrap import Container
from rampart.config import AuditSettings, Settings
from rampart.kernel.clock import FrozenClock
from rampart.kernel.events import AuditEvent

SRC = Path(__file__).resolve().parents[2] / "src" / "rampart"
AUDIT_TABLES = ("audit_entry", "audit_subtree", "audit_checkpoint")


def test_retention_is_seven_years_and_can_only_be_raised(tmp_path: Path) -> None:
    assert AuditSettings().retention_years == 7
    assert AuditSettings(retention_years=10).retention_years == 10
    for years in (6, 0, -1):
        with pytest.raises(ValidationError):
            AuditSettings(retention_years=years)
    with pytest.raises(ValidationError):
        Settings(profile="dev", data_dir=tmp_path, audit={"retention_years": 3})


@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_entries_older_than_retention_still_cannot_be_deleted(
    container: Container, clock: FrozenClock, table: str
) -> None:
    # Entries from ten years ago: past any retention, and still refused.
    clock.advance(-timedelta(days=3653))
    for i in range(20):
        container.audit_log.append(AuditEvent("order.placed", subject=f"order:{i}"))
    clock.advance(timedelta(days=3653))
    container.audit_checkpointer.checkpoint()
    cutoff = clock.time_ns() - 8 * 365 * 86400 * 1_000_000_000
    statements = [f"DELETE FROM {table}"]
    if table == "audit_entry":
        statements.append(f"DELETE FROM audit_entry WHERE ts_ns < {cutoff}")
        statements.append(
            "UPDATE audit_entry SET entry = X'00'"
            if container.db.is_sqlite
            else "UPDATE audit_entry SET entry = '\\x00'::bytea"
        )
    if container.db.is_postgres:
        statements.append(f"TRUNCATE {table}")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), container.db.engine.begin() as conn:
            conn.execute(text(statement))
    assert container.audit.state()[0] == 20
    code_ok = container.audit.verify(sink=None, trusted_keys=[])
    assert code_ok.ok, code_ok.problems


def test_no_application_code_removes_audit_rows() -> None:
    """No module outside the migrations' downgrades issues DELETE/TRUNCATE/UPDATE on an audit
    table that is append-only (`audit_tree_state` is the one mutable row, by design)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                sql = " ".join(node.value.upper().split())
                for table in AUDIT_TABLES:
                    name = table.upper()
                    if any(
                        f"{verb} {name}" in sql for verb in ("DELETE FROM", "TRUNCATE", "UPDATE")
                    ):
                        offenders.append(f"{path.relative_to(SRC)}: {node.value[:60]!r}")
        if "audit" in path.parts:
            # Nor through SQLAlchemy: the audit package never builds a DELETE at all.
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if name == "delete":
                        offenders.append(f"{path.relative_to(SRC)}:{node.lineno} delete(...)")
    assert offenders == []
