"""Searching by actor across blocks of sequence numbers.

On SQLite the actor index is keyed by block (`seq >> ACTOR_BLOCK_BITS`, actor, ts): a search
probes block after block, so pages must come out complete, in sequence order and without gaps or
repeats wherever a page boundary, a cursor or a time range falls relative to the blocks. The same
tests run on PostgreSQL, which searches its plain (actor, ts) index.
"""

from __future__ import annotations

from sqlalchemy import text

from rampart.audit.db import ACTOR_BLOCK_BITS
from rampart.audit.service import SearchQuery
from rampart.audit.writer import prepare
from rampart.bootstrap import Container
from rampart.kernel.context import RequestContext
from rampart.kernel.events import AuditEvent
from tests.audit.support import commit_prepared

BLOCK = 1 << ACTOR_BLOCK_BITS
ACTORS = ("user:a", "user:b", "user:c", "user:rare")


def actor_of(i: int) -> str:
    # user:rare appears once in the first block and once in the fourth; the others rotate.
    if i in (5, 3 * BLOCK + 700):
        return "user:rare"
    return ACTORS[i % 3]


def write_entries(container: Container, n: int) -> None:
    """n entries in one transaction through the writer, one nanosecond apart."""
    ctx = RequestContext(request_id="req-1", client_ip="203.0.113.9")
    start = container.clock.time_ns()
    entries = [
        prepare(AuditEvent("order.placed", actor=actor_of(i), subject=f"order:{i}"), ctx, start + i)
        for i in range(n)
    ]
    commit_prepared(container, entries)


def all_pages(container: Container, query: SearchQuery) -> list[int]:
    seqs: list[int] = []
    cursor = query.after_seq
    while True:
        page, cursor = container.audit.search(
            SearchQuery(
                since_ns=query.since_ns,
                until_ns=query.until_ns,
                actor=query.actor,
                after_seq=cursor,
                limit=query.limit,
            )
        )
        seqs.extend(int(entry["seq"]) for entry in page)
        assert all(entry["actor"] == query.actor for entry in page)
        if cursor is None:
            return seqs


def test_search_by_actor_pages_through_every_block(container: Container) -> None:
    n = 4 * BLOCK + 300  # four full blocks and a partial one
    write_entries(container, n)
    for actor in ACTORS:
        expected = [i for i in range(n) if actor_of(i) == actor]
        for limit in (1, 7, 100, 500):
            if limit == 1 and len(expected) > 100:
                continue  # a page per entry over thousands of entries only slows the suite
            assert all_pages(container, SearchQuery(actor=actor, limit=limit)) == expected


def test_search_by_actor_from_a_cursor_and_within_a_time_range(container: Container) -> None:
    n = 3 * BLOCK + 800
    write_entries(container, n)
    start = container.clock.time_ns()
    # A cursor in the middle of a block, and a time range crossing block boundaries.
    after = BLOCK + 17
    lo, hi = BLOCK - 40, 3 * BLOCK + 710
    expected = [i for i in range(after + 1, n) if actor_of(i) == "user:b" and lo <= i < hi]
    found = all_pages(
        container,
        SearchQuery(
            actor="user:b", after_seq=after, since_ns=start + lo, until_ns=start + hi, limit=50
        ),
    )
    assert found == expected
    assert all_pages(container, SearchQuery(actor="user:rare", limit=1)) == [5, 3 * BLOCK + 700]
    assert all_pages(container, SearchQuery(actor="user:nobody", limit=10)) == []
    # A cursor far below the first entry starts at the first block, not at a huge negative one.
    assert all_pages(container, SearchQuery(actor="user:rare", after_seq=-(10**15), limit=5)) == [
        5,
        3 * BLOCK + 700,
    ]


def test_search_by_actor_on_an_empty_log(container: Container) -> None:
    assert container.audit.search(SearchQuery(actor="user:a")) == ([], None)


def test_searches_by_actor_go_through_the_actor_index(container: Container) -> None:
    write_entries(container, 10)
    with container.db.read() as session:
        if container.db.is_sqlite:
            query = (
                "SELECT seq FROM audit_entry "
                f"WHERE (seq >> {ACTOR_BLOCK_BITS}) IN (1, 2) AND actor = 'user:a' ORDER BY seq"
            )
            plan = " ".join(
                str(row[-1]) for row in session.execute(text("EXPLAIN QUERY PLAN " + query))
            )
            indexes = {
                str(name)
                for name in session.scalars(
                    text("SELECT name FROM sqlite_master WHERE tbl_name = 'audit_entry'")
                )
            }
            used, gone = "ix_audit_entry_actor_block", "ix_audit_entry_actor_ts"
        else:
            session.execute(text("SET LOCAL enable_seqscan = off"))
            query = "SELECT seq FROM audit_entry WHERE actor = 'user:a' ORDER BY seq"
            plan = " ".join(row[0] for row in session.execute(text("EXPLAIN " + query)))
            indexes = set(
                session.scalars(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_entry'")
                )
            )
            used, gone = "ix_audit_entry_actor_ts", "ix_audit_entry_actor_block"
    assert used in plan
    assert used in indexes
    # On SQLite the scattered (actor, ts) index is gone: it was what bounded appends.
    assert gone not in indexes
