"""Audit log: durable appends per second (group commit) on SQLite and PostgreSQL, the
transactional path the order engine takes, full verification speed per core, and proof cost.

Baselines, measured in this process on the same data: bare `hashlib` leaf hashing (what an append
cannot go below), and leaf hashing + tree building over bytes already in memory (what a full
verification cannot go below).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from rampart.audit.domain import parse_entry
from rampart.audit.merkle import CompactRange, leaf_hash, leaf_hashes, perfect_levels
from rampart.audit.writer import prepare
from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.context import RequestContext
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.migrate import upgrade

THREADS = 256
THREAD_APPENDS = 40_000
TASKS = 1024
TASK_APPENDS = 60_000
SINGLE_APPENDS = 300
UOW_COMMITS = 200
UOW_EVENTS = 32
#: Entries added in bulk (through the same writer, big transactions) before verification.
VERIFY_ENTRIES = 200_000


#: Realistic keys for the search indexes: a thousand users, time-ordered order ids (UUIDv7, as
#: `new_id()` makes them), a handful of actions.
_USERS = [f"user:{new_id()}" for _ in range(1000)]
_ACTIONS = ("order.placed", "order.accepted", "order.filled", "order.cancelled", "access.allowed")


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        _ACTIONS[i % len(_ACTIONS)],
        subject=f"order:{new_id()}",
        actor=_USERS[i * 7919 % len(_USERS)],
        details={"qty": "10", "px": "101.25", "client_order_id": f"c-{i}"},
    )


def _container(url: str, data_dir: Path) -> Container:
    return bootstrap(Settings(profile="dev", data_dir=data_dir, database_url=url))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _threads(container: Container) -> tuple[float, float, float]:
    """Appends/s with THREADS blocking callers, the mean batch, and CPU seconds per append."""
    log = container.audit_log
    per_thread = THREAD_APPENDS // THREADS
    batches, entries = log.batches, log.batched_entries
    barrier = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            log.append(_event(t * per_thread + i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu, started = _cpu(), time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    n = per_thread * THREADS
    batch = (log.batched_entries - entries) / max(log.batches - batches, 1)
    return n / elapsed, batch, cpu / n


def _tasks(container: Container) -> tuple[float, float, float]:
    """Appends/s with TASKS concurrent asyncio callers on one event loop."""
    log = container.audit_log
    per_task = TASK_APPENDS // TASKS
    batches, entries = log.batches, log.batched_entries

    async def caller(t: int) -> None:
        for i in range(per_task):
            await log.append_async(_event(t * per_task + i))

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(caller(t) for t in range(TASKS)))
        return time.perf_counter() - started

    cpu = _cpu()
    elapsed = asyncio.run(main())
    cpu = _cpu() - cpu
    n = per_task * TASKS
    batch = (log.batched_entries - entries) / max(log.batches - batches, 1)
    return n / elapsed, batch, cpu / n


def _single(container: Container) -> float:
    """Mean latency (ms) of one append by a lone caller: one durable commit each."""
    log = container.audit_log
    started = time.perf_counter()
    for i in range(SINGLE_APPENDS):
        log.append(_event(i))
    return (time.perf_counter() - started) / SINGLE_APPENDS * 1000


def _uow(container: Container) -> tuple[float, float]:
    """The transactional path: UOW_EVENTS audit events in each unit of work (as the order engine
    writes a batch of orders), committed; entries/s and mean commit latency (ms)."""
    started = time.perf_counter()
    for c in range(UOW_COMMITS):
        with container.uow() as uow:
            for i in range(UOW_EVENTS):
                uow.audit(_event(c * UOW_EVENTS + i))
            uow.commit()
    elapsed = time.perf_counter() - started
    return UOW_COMMITS * UOW_EVENTS / elapsed, elapsed / UOW_COMMITS * 1000


def _fill(container: Container, n: int) -> None:
    """Grow the log to n entries through the writer itself, in large transactions."""
    ctx = RequestContext(request_id="req-0192b2c4", client_ip="203.0.113.9")
    writer = container.audit_writer
    assert writer is not None
    size = container.audit.state()[0]
    while size < n:
        count = min(20_000, n - size)
        now = container.clock.time_ns()
        entries = [prepare(_event(size + i), ctx, now) for i in range(count)]
        session = container.db.write_session()
        try:
            writer.write_prepared(session, entries)  # type: ignore[attr-defined]
            session.commit()
        finally:
            session.close()
        size += count
        if size % 100_000 < count:
            container.audit_checkpointer.checkpoint()


def _verify(container: Container) -> tuple[float, float, float, float, int]:
    """Full verification: entries/s (wall), entries per CPU-second of this process, and the
    hash+tree-only baseline over the same bytes in memory."""
    container.audit_checkpointer.checkpoint()
    gc.collect()
    cpu, started = _cpu(), time.perf_counter()
    report = container.audit.verify(sink=container.audit_checkpointer.sink, trusted_keys=[])
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    assert report.ok, report.problems
    stored = list(container.audit.stored_entries())
    datas = [e.data for e in stored]
    started = time.perf_counter()
    perfect_levels(leaf_hashes(datas))
    baseline = len(datas) / (time.perf_counter() - started)
    # The entry-by-entry check (what verification did before, and still does to name a bad entry).
    sample = stored[:50_000]
    started = time.perf_counter()
    rng = CompactRange()
    for entry in sample:
        computed = leaf_hash(entry.data)
        assert computed == entry.leaf
        record = parse_entry(entry.data)
        assert (str(record.ts_ns), record.actor, record.action) == tuple(entry.columns or ())[:3]
        rng.append(computed)
    one_by_one = len(sample) / (time.perf_counter() - started)
    return report.entries / elapsed, report.entries / cpu, baseline, one_by_one, report.entries


def _proofs(container: Container) -> tuple[float, float, int]:
    """Mean ms per inclusion and per consistency proof at the current size."""
    reader = container.audit
    size = reader.state()[0]
    step = max(1, size // 200)
    started = time.perf_counter()
    for seq in range(0, size, step):
        reader.inclusion(seq, size)
    inclusion = (time.perf_counter() - started) / len(range(0, size, step)) * 1000
    started = time.perf_counter()
    for old in range(1, size, step):
        reader.consistency(old, size)
    consistency = (time.perf_counter() - started) / len(range(1, size, step)) * 1000
    return inclusion, consistency, size


def _leaf_baseline() -> float:
    ctx = RequestContext(request_id="req-0192b2c4", client_ip="203.0.113.9")
    data = [prepare(_event(i), ctx, 1).data for i in range(50_000)]
    sha = hashlib.sha256
    started = time.perf_counter()
    for item in data:
        sha(b"\x00" + item).digest()
    return len(data) / (time.perf_counter() - started)


def _backend(label: str, url: str, data_dir: Path, leaf_rate: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    container = _container(url, data_dir)
    try:
        rows.append(
            {
                "name": f"append, {label}, 1 caller (latency)",
                "value": _single(container),
                "unit": "ms/append",
                "note": "no writer thread: one durable commit per append",
            }
        )
        container.audit_log.start()
        rows.append(
            {
                "name": f"append, {label}, 1 caller via writer thread (latency)",
                "value": _single(container),
                "unit": "ms/append",
                "note": "group of 1: one durable commit per append",
            }
        )
        for name, run, callers in (
            ("threads", _threads, THREADS),
            ("asyncio tasks", _tasks, TASKS),
        ):
            rate, batch, cpu = run(container)
            rows.append(
                {
                    "name": f"append, {label}, durable, group commit, {callers} {name}",
                    "value": rate,
                    "unit": "entries/s",
                    "baseline": f"{leaf_rate:,.0f}/s leaf hashing",
                    "note": f"mean batch {batch:.0f}; {cpu * 1e6:.1f} µs CPU/append in-process",
                }
            )
        container.audit_log.stop()
        rate, latency = _uow(container)
        rows.append(
            {
                "name": f"unit of work, {label}, {UOW_EVENTS} events per commit",
                "value": rate,
                "unit": "entries/s",
                "note": f"{latency:.2f} ms per commit (the order engine's path)",
            }
        )
        _fill(container, VERIFY_ENTRIES)
        wall, per_cpu, baseline, one_by_one, n = _verify(container)
        rows.append(
            {
                "name": f"verify, {label}, full",
                "value": wall,
                "unit": "entries/s",
                "baseline": f"{baseline:,.0f}/s hash+tree only; {one_by_one:,.0f}/s entry by entry",
                "note": f"{n:,} entries; {per_cpu:,.0f} entries per CPU-second of the verifier",
            }
        )
        inclusion, consistency, size = _proofs(container)
        rows.append(
            {
                "name": f"proofs, {label}, at {size:,} entries",
                "value": inclusion,
                "unit": "ms/inclusion proof",
                "note": f"consistency proof {consistency:.2f} ms",
            }
        )
    finally:
        container.close()
    return rows


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    leaf_rate = _leaf_baseline()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sqlite_url = f"sqlite:///{root / 'bench.db'}"
        upgrade(sqlite_url)
        rows.extend(_backend("SQLite", sqlite_url, root / "var", leaf_rate))
        pg = _postgres_url()
        if pg is not None:
            url, drop = pg
            try:
                upgrade(url)
                rows.extend(_backend("PostgreSQL", url, root / "var-pg", leaf_rate))
            finally:
                drop()
    rows.append(
        {
            "name": "machine",
            "value": os.cpu_count() or 0,
            "unit": "CPUs",
            "note": f"load average {os.getloadavg()[0]:.2f} at the end (shared machine)",
        }
    )
    return rows


def _postgres_url() -> tuple[str, Callable[[], None]] | None:
    from tests.support.services import PG_ADMIN_URL, port_open

    if not port_open("127.0.0.1", 5432):
        return None
    name = f"rampart_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop
