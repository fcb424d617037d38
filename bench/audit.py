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
from rampart.audit.service import SearchQuery
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
WRITER_BATCH = 512
WRITER_BATCHES = 40


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


def _server_cpu(container: Container) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving this database (0 on SQLite,
    whose work runs inside this process and is in `_cpu`). Read from /proc: the server runs on
    this machine. Shared server processes (WAL writer, checkpointer) are not counted."""
    if not container.db.is_postgres:
        return 0.0
    with container.db.engine.connect() as conn:
        pids = [
            row[0]
            for row in conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _threads(container: Container) -> tuple[float, float, float, float]:
    """Appends/s with THREADS blocking callers, the mean batch, and CPU seconds per append (this
    process, and the database server's)."""
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
    server, cpu, started = _server_cpu(container), _cpu(), time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    server = _server_cpu(container) - server
    n = per_thread * THREADS
    batch = (log.batched_entries - entries) / max(log.batches - batches, 1)
    return n / elapsed, batch, cpu / n, server / n


def _tasks(container: Container) -> tuple[float, float, float, float]:
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

    server, cpu = _server_cpu(container), _cpu()
    elapsed = asyncio.run(main())
    cpu = _cpu() - cpu
    server = _server_cpu(container) - server
    n = per_task * TASKS
    batch = (log.batched_entries - entries) / max(log.batches - batches, 1)
    return n / elapsed, batch, cpu / n, server / n


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


def _writer_alone(container: Container) -> tuple[float, float, float, int]:
    """The writer without callers: WRITER_BATCHES durable transactions of WRITER_BATCH prepared
    entries at the log's current size; entries/s, CPU per entry (process, server), the size."""
    ctx = RequestContext(request_id="req-0192b2c4", client_ip="203.0.113.9")
    writer = container.audit_writer
    assert writer is not None
    size = container.audit.state()[0]
    now = container.clock.time_ns()
    batches = [
        [prepare(_event(size + b * WRITER_BATCH + i), ctx, now) for i in range(WRITER_BATCH)]
        for b in range(WRITER_BATCHES)
    ]
    server, cpu, started = _server_cpu(container), _cpu(), time.perf_counter()
    for batch in batches:
        session = container.db.write_session()
        try:
            writer.write_prepared(session, batch)  # type: ignore[attr-defined]
            session.commit()
        finally:
            session.close()
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    server = _server_cpu(container) - server
    n = WRITER_BATCH * WRITER_BATCHES
    return n / elapsed, cpu / n, server / n, size


def _verify_once(container: Container, *, thorough: bool) -> tuple[float, float, int, int]:
    """One full verification: entries/s (wall), entries per CPU-second (this process plus the
    database server's backends), entries read, entries whose canonical form was checked."""
    gc.collect()
    server, cpu, started = _server_cpu(container), _cpu(), time.perf_counter()
    report = container.audit.verify(
        sink=container.audit_checkpointer.sink, trusted_keys=[], thorough=thorough
    )
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    cpu += _server_cpu(container) - server
    assert report.ok, report.problems
    return report.entries / elapsed, report.entries / cpu, report.entries, report.canonical_checked


def _verify(container: Container) -> list[tuple[str, float, float, int, int]]:
    """Full verification, as `rampart audit verify` runs it and with --thorough, and the
    baselines over the same bytes in memory (hash + tree only; entry by entry)."""
    container.audit_checkpointer.checkpoint()
    runs = []
    for label, thorough in (("default", False), ("--thorough", True)):
        wall, per_cpu, n, canonical = _verify_once(container, thorough=thorough)
        runs.append((label, wall, per_cpu, n, canonical))
    return runs


def _verify_baselines(container: Container) -> tuple[float, float]:
    stored = list(container.audit.stored_entries())
    datas = [e.data for e in stored]
    started = time.perf_counter()
    perfect_levels(leaf_hashes(datas))
    baseline = len(datas) / (time.perf_counter() - started)
    # The entry-by-entry check (what verification did first, and still does to name a bad entry).
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
    return baseline, one_by_one


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


def _search(container: Container) -> tuple[float, float, int]:
    """Mean ms for the first page (100) of a search by actor, and for every page of it, over a
    few actors of the log; and the entries found per actor."""
    with container.db.read() as session:
        actors = [
            row[0]
            for row in session.execute(
                text("SELECT DISTINCT actor FROM audit_entry WHERE seq < 2000 LIMIT 5")
            )
        ]
    first = every = 0.0
    found = 0
    for actor in actors:
        started = time.perf_counter()
        page, cursor = container.audit.search(SearchQuery(actor=actor, limit=100))
        first += time.perf_counter() - started
        found += len(page)
        while cursor is not None:
            page, cursor = container.audit.search(
                SearchQuery(actor=actor, limit=100, after_seq=cursor)
            )
            found += len(page)
        every += time.perf_counter() - started
    n = max(len(actors), 1)
    return first / n * 1000, every / n * 1000, found // n


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
            rate, batch, cpu, server = run(container)
            cost = f"{cpu * 1e6:.1f} µs CPU/append in-process"
            if container.db.is_postgres:
                cost += f" + {server * 1e6:.1f} µs in the server's backends"
            rows.append(
                {
                    "name": f"append, {label}, durable, group commit, {callers} {name}",
                    "value": rate,
                    "unit": "entries/s",
                    "baseline": f"{leaf_rate:,.0f}/s leaf hashing",
                    "note": f"mean batch {batch:.0f}; {cost}",
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
        rate, cpu, server, size = _writer_alone(container)
        cost = f"{cpu * 1e6:.1f} µs CPU/entry in-process"
        if container.db.is_postgres:
            cost += f" + {server * 1e6:.1f} µs in the server's backends"
        rows.append(
            {
                "name": f"append, {label}, writer alone, batches of {WRITER_BATCH}",
                "value": rate,
                "unit": "entries/s",
                "note": f"durable; log at {size:,} entries; {cost}",
            }
        )
        runs = _verify(container)
        baseline, one_by_one = _verify_baselines(container)
        where = "verifier + server backends" if container.db.is_postgres else "verifier"
        for mode, wall, per_cpu, n, canonical in runs:
            rows.append(
                {
                    "name": f"verify, {label}, full, {mode}",
                    "value": per_cpu,
                    "unit": "entries/CPU-s",
                    "baseline": (
                        f"{baseline:,.0f}/s hash+tree only; {one_by_one:,.0f}/s entry by entry"
                    ),
                    "note": (
                        f"{n:,} entries, {wall:,.0f}/s wall; CPU of the {where}; canonical "
                        f"form checked exactly for {canonical:,}"
                    ),
                }
            )
        first, every, found = _search(container)
        rows.append(
            {
                "name": f"search by actor, {label}, first page of 100",
                "value": first,
                "unit": "ms",
                "note": f"every page: {every:.1f} ms for ~{found} entries",
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
