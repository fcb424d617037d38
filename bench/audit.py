"""Audit log: appends per second (group commit, durable) on SQLite and PostgreSQL, and full
verification speed. Baseline: raw hashlib leaf hashing of the same entries in this process."""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from rampart.audit.merkle import CompactRange
from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.kernel.events import AuditEvent
from rampart.platform.migrate import upgrade

APPENDS = 20_000
THREADS = 64


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        "order.placed",
        subject=f"order:{i}",
        actor="user:0192b2c4",
        details={"qty": "10", "px": "101.25"},
    )


def _append_rate(url: str, data_dir: Path) -> tuple[float, float]:
    container = bootstrap(Settings(profile="dev", data_dir=data_dir, database_url=url))
    log = container.audit_log
    log.start()
    per_thread = APPENDS // THREADS

    def worker(t: int) -> None:
        for i in range(per_thread):
            log.append(_event(t * per_thread + i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    batch = log.batched_entries / max(log.batches, 1)
    log.stop()
    container.close()
    return per_thread * THREADS / elapsed, batch


def _verify_rate(url: str, data_dir: Path) -> tuple[float, float, int]:
    container = bootstrap(Settings(profile="dev", data_dir=data_dir, database_url=url))
    container.audit_checkpointer.checkpoint()
    entries = list(container.audit.stored_entries())
    started = time.perf_counter()
    report = container.audit.verify(sink=container.audit_checkpointer.sink, trusted_keys=[])
    verify_rate = report.entries / (time.perf_counter() - started)
    assert report.ok, report.problems
    # Baseline: only SHA-256 leaf hashes and the tree, over bytes already in memory.
    started = time.perf_counter()
    rng = CompactRange()
    sha = hashlib.sha256
    for entry in entries:
        rng.append(sha(b"\x00" + entry.data).digest())
    baseline = len(entries) / (time.perf_counter() - started)
    container.close()
    return verify_rate, baseline, report.entries


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sqlite_url = f"sqlite:///{root / 'bench.db'}"
        upgrade(sqlite_url)
        rate, batch = _append_rate(sqlite_url, root / "var")
        leaf_rate = _hash_baseline()
        rows.append(
            {
                "name": "append, SQLite, durable, group commit",
                "value": rate,
                "unit": "entries/s",
                "baseline": f"{leaf_rate:,.0f}/s leaf hashing",
                "note": f"{THREADS} threads, mean batch {batch:.0f}",
            }
        )
        verify_rate, baseline, n = _verify_rate(sqlite_url, root / "var")
        rows.append(
            {
                "name": "verify, SQLite, full",
                "value": verify_rate,
                "unit": "entries/s",
                "baseline": f"{baseline:,.0f}/s hash+tree only",
                "note": f"{n} entries",
            }
        )
        pg = _postgres_url()
        if pg is not None:
            url, drop = pg
            try:
                upgrade(url)
                rate, batch = _append_rate(url, root / "var-pg")
                rows.append(
                    {
                        "name": "append, PostgreSQL, durable, group commit",
                        "value": rate,
                        "unit": "entries/s",
                        "baseline": f"{leaf_rate:,.0f}/s leaf hashing",
                        "note": f"{THREADS} threads, mean batch {batch:.0f}",
                    }
                )
                verify_rate, baseline, n = _verify_rate(url, root / "var-pg")
                rows.append(
                    {
                        "name": "verify, PostgreSQL, full",
                        "value": verify_rate,
                        "unit": "entries/s",
                        "baseline": f"{baseline:,.0f}/s hash+tree only",
                        "note": f"{n} entries",
                    }
                )
            finally:
                drop()
    return rows


def _hash_baseline() -> float:
    data = [
        b'{"action":"order.placed","actor":"user:0192b2c4","details":{"i":%d}}' % i
        for i in range(100_000)
    ]
    sha = hashlib.sha256
    started = time.perf_counter()
    for item in data:
        sha(b"\x00" + item).digest()
    return len(data) / (time.perf_counter() - started)


def _postgres_url() -> tuple[str, object] | None:
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
