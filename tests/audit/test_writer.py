"""Writing: entries commit with the business change, sequence numbers are dense and ordered."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select, text

from rampart.audit.db import AuditEntryRow, AuditTreeStateRow
from rampart.audit.domain import AuditEntryError, parse_entry
from rampart.audit.merkle import CompactRange, leaf_hash, root_hash
from rampart.bootstrap import Container
from rampart.kernel.context import RequestContext, reset_context, set_context
from rampart.kernel.events import AuditEvent


def entries(container: Container) -> list[AuditEntryRow]:
    with container.db.read() as session:
        return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))


def tree_state(container: Container) -> AuditTreeStateRow:
    with container.db.read() as session:
        return session.scalars(select(AuditTreeStateRow)).one()


def test_unit_of_work_writes_entries_in_its_transaction(container: Container) -> None:
    token = set_context(
        RequestContext(request_id="req-1", client_ip="203.0.113.9", actor="user:u1")
    )
    try:
        with container.uow() as uow:
            uow.session.execute(text("SELECT 1"))
            uow.audit(AuditEvent("order.placed", subject="order:o1", details={"qty": "10"}))
            uow.audit(AuditEvent("risk.rejected", outcome="denied", actor="system"))
            uow.commit()
    finally:
        reset_context(token)
    rows = entries(container)
    assert [r.seq for r in rows] == [0, 1]
    first = parse_entry(rows[0].entry)
    assert (first.actor, first.action, first.subject) == ("user:u1", "order.placed", "order:o1")
    assert (first.request_id, first.client_ip) == ("req-1", "203.0.113.9")
    assert first.details == {"qty": "10"}
    assert first.ts_ns == container.clock.time_ns()
    assert rows[1].actor == "system"
    assert rows[1].outcome == "denied"
    assert all(r.leaf_hash == leaf_hash(r.entry) for r in rows)
    state = tree_state(container)
    assert state.size == 2
    assert state.root == root_hash([r.leaf_hash for r in rows])


def test_rolled_back_unit_of_work_leaves_no_entry_and_no_gap(container: Container) -> None:
    with container.uow() as uow:
        uow.audit(AuditEvent("order.placed"))
        # leaving without commit rolls back
    with container.uow() as uow:
        uow.audit(AuditEvent("order.cancelled"))
        uow.commit()
    rows = entries(container)
    assert [(r.seq, r.action) for r in rows] == [(0, "order.cancelled")]


def test_an_event_that_cannot_be_kept_fails_the_commit(container: Container) -> None:
    with container.uow() as uow:
        uow.audit(AuditEvent("order.placed", details={"price": 1.5}))
        with pytest.raises(AuditEntryError):
            uow.commit()
    assert entries(container) == []


def test_append_without_writer_thread_is_durable(container: Container) -> None:
    assert container.audit_log.append(AuditEvent("auth.login.failed", outcome="failure")) == 0
    assert container.audit_log.append(AuditEvent("auth.login.failed", outcome="failure")) == 1
    assert [r.seq for r in entries(container)] == [0, 1]


def test_group_commit_from_many_threads_is_dense_and_durable(container: Container) -> None:
    container.audit_log.start()
    seqs: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            seq = container.audit_log.append(AuditEvent("access.denied", details={"n": n, "i": i}))
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every append returned only once committed: a fresh connection sees all of them now,
    # before the writer is stopped.
    rows = entries(container)
    assert sorted(seqs) == list(range(200))
    assert [r.seq for r in rows] == list(range(200))
    container.audit_log.stop()
    assert container.audit_log.batches <= 200
    state = tree_state(container)
    rng = CompactRange()
    rng.extend([r.leaf_hash for r in rows])
    assert (state.size, state.root) == (200, rng.root())


def test_append_async_and_uow_interleave(container: Container) -> None:
    container.audit_log.start()

    async def main() -> list[int]:
        return list(
            await asyncio.gather(
                *(container.audit_log.append_async(AuditEvent("access.allowed")) for _ in range(20))
            )
        )

    seqs = asyncio.run(main())
    with container.uow() as uow:
        uow.audit(AuditEvent("order.placed"))
        uow.commit()
    container.audit_log.stop()
    assert sorted(seqs) == list(range(20))
    assert entries(container)[-1].seq == 20


def test_a_failed_group_fails_each_of_its_callers_and_the_log_goes_on(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rampart.audit.log import AuditUnavailableError

    log = container.audit_log
    writer = container.audit_writer
    real = writer.write_prepared  # type: ignore[union-attr]
    calls = {"n": 0}

    def failing_once(session, entries):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real(session, entries)

    monkeypatch.setattr(writer, "write_prepared", failing_once)
    log.start()
    gate = threading.Barrier(6)
    outcomes: list[object] = []
    lock = threading.Lock()

    def caller() -> None:
        gate.wait()
        try:
            result: object = log.append(AuditEvent("access.denied"))
        except AuditUnavailableError as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [o for o in outcomes if isinstance(o, AuditUnavailableError)]
    written = sorted(o for o in outcomes if isinstance(o, int))
    assert failed, "the first group failed"
    # Whoever was not in the failed group got dense numbers from 0: nothing was half-written.
    assert written == list(range(len(written)))
    assert log.append(AuditEvent("access.allowed")) == len(written)
    log.stop()
    assert [r.seq for r in entries(container)] == list(range(len(written) + 1))


def test_a_cancelled_async_caller_does_not_disturb_the_others(container: Container) -> None:
    log = container.audit_log
    log.start()

    async def main() -> list[int]:
        tasks = [asyncio.ensure_future(log.append_async(AuditEvent("x.y"))) for _ in range(10)]
        tasks[3].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [d for d in done if isinstance(d, int)]

    seqs = asyncio.run(main())
    log.stop()
    # The cancelled caller's entry may or may not have been written (it was already queued or
    # not); the others all were, each with its own sequence number.
    assert len(seqs) >= 9
    assert len(set(seqs)) == len(seqs)
    stored = [r.seq for r in entries(container)]
    assert set(seqs) <= set(stored)
    assert stored == list(range(len(stored)))


@pytest.mark.parametrize("sizes", [[1, 255, 257], [700, 3], [513]])
def test_batches_of_any_size_are_stored_whole_and_in_order(
    container: Container, sizes: list[int]
) -> None:
    """Rows go to SQLite in multi-row statements of 2**k rows: every size must come out dense,
    in order, with every completed subtree stored, and verify clean."""
    from rampart.audit.writer import prepare

    writer = container.audit_writer
    assert writer is not None
    ctx = RequestContext(request_id="req-1", client_ip="192.0.2.1")
    written = 0
    for size in sizes:
        batch = [
            prepare(AuditEvent("order.placed", subject=f"order:{written + i}"), ctx, 1_000 + i)
            for i in range(size)
        ]
        session = container.db.write_session()
        try:
            assert writer.write_prepared(session, batch) == written  # type: ignore[attr-defined]
            session.commit()
        finally:
            session.close()
        written += size
    rows = entries(container)
    assert [r.seq for r in rows] == list(range(written))
    assert [parse_entry(r.entry).subject for r in rows] == [f"order:{i}" for i in range(written)]
    assert tree_state(container).root == root_hash([leaf_hash(r.entry) for r in rows])
    with container.db.read() as session:
        stored = session.execute(text("SELECT count(*) FROM audit_subtree")).scalar_one()
    assert stored == sum(written >> h for h in range(4, written.bit_length()))
    report = container.audit.verify(sink=None, trusted_keys=[])
    assert report.ok, report.problems
    assert report.entries == written
