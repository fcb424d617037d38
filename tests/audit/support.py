"""Helpers shared by the audit tests."""

from __future__ import annotations

from collections.abc import Sequence

from rampart.audit.writer import PreparedEntry
from rampart.bootstrap import Container


def commit_prepared(container: Container, entries: Sequence[PreparedEntry]) -> None:
    """Write `entries` through the container's audit writer in one committed transaction."""
    writer = container.audit_writer
    assert writer is not None
    session = container.db.write_session()
    try:
        writer.write_prepared(session, entries)  # type: ignore[attr-defined]
        session.commit()
    finally:
        session.close()
