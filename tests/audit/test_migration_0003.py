"""audit_0003 on a log written before it: on SQLite the actor index becomes the block index (on
PostgreSQL it stays), searches by actor find the old entries and the new ones, the log verifies,
and the revision downgrades cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from rampart.audit.db import SUBTREE_MIN_HEIGHT
from rampart.audit.merkle import CompactRange
from rampart.audit.service import SearchQuery
from rampart.audit.writer import insert_rows, prepare
from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.kernel.context import RequestContext
from rampart.kernel.events import AuditEvent
from rampart.platform.db import single_connection_engine
from rampart.platform.migrate import alembic_config, upgrade
from tests.support.services import scratch_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the shared test databases are already at the heads)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    with scratch_postgres("rampart_mig") as url:
        yield url


def actor_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_entry'"
        if url.startswith("sqlite")
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_entry'"
    )
    try:
        with engine.connect() as conn:
            return {str(name) for name in conn.scalars(text(query)) if "actor" in str(name)}
    finally:
        engine.dispose()


def test_upgrade_keeps_old_entries_searchable_and_downgrades(
    fresh_url: str, tmp_path: Path
) -> None:
    upgrade(fresh_url, "audit_0002")
    assert actor_indexes(fresh_url) == {"ix_audit_entry_actor_ts"}
    # Entries written before the revision, straight into the table as the writer of then did.
    ctx = RequestContext(request_id="req-1", client_ip=None)
    rows = [
        (seq, *prepare(AuditEvent("order.placed", actor=f"user:{seq % 2}"), ctx, 10 + seq).values)
        for seq in range(1500)
    ]
    rng = CompactRange()
    subtrees = rng.extend_recording([row[-1] for row in rows], SUBTREE_MIN_HEIGHT)
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        insert_rows(conn, rows, subtrees)
        conn.execute(
            text("UPDATE audit_tree_state SET size = :size, border = :border, root = :root"),
            {"size": rng.size, "border": rng.pack(), "root": rng.root()},
        )
    engine.dispose()

    upgrade(fresh_url)
    sqlite = fresh_url.startswith("sqlite")
    # PostgreSQL keeps its plain index (audit_0003 says why).
    after = "ix_audit_entry_actor_block" if sqlite else "ix_audit_entry_actor_ts"
    assert actor_indexes(fresh_url) == {after}
    container = bootstrap(
        Settings(profile="dev", data_dir=tmp_path / "var", database_url=fresh_url)
    )
    try:
        container.audit_log.append(AuditEvent("order.placed", actor="user:1"))
        seqs: list[int] = []
        cursor = None
        while True:
            page, cursor = container.audit.search(
                SearchQuery(actor="user:1", limit=500, after_seq=cursor)
            )
            seqs.extend(int(entry["seq"]) for entry in page)
            if cursor is None:
                break
        assert seqs == [*range(1, 1500, 2), 1500]
        report = container.audit.verify(sink=None, trusted_keys=[])
        assert report.ok, report.problems
    finally:
        container.close()

    engine = single_connection_engine(fresh_url)
    try:
        config = alembic_config(fresh_url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "audit_0002")
    finally:
        engine.dispose()
    assert actor_indexes(fresh_url) == {"ix_audit_entry_actor_ts"}
