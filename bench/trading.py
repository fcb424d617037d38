"""Trading: matching throughput in-process, and order entry end to end over HTTP.

1. `matching`: the built-in venue alone (pure Python, no I/O), crossing limit orders.
2. `order entry over HTTP`: the real app in one uvicorn worker (uvloop, httptools; a separate
   process), orders sent by a load generator in another process over loopback keep-alive
   connections, each request signed with an hmac-sha256 API key (RFC 9421, fresh nonce) and
   verified in full by the server; SQLite and PostgreSQL; audit on (every permission check and
   every order transition in the audit log); every order committed before its response. The
   baseline is an echo endpoint of the same app with the same signature check, permission check
   and durable audit entry of it, measured in the same run: the ratio is what holds on a noisy
   machine. Echo and orders alternate `RAMPART_BENCH_ROUNDS` times (medians reported), and the
   server's CPU per request (from /proc) is reported beside the throughput: on a shared machine
   it is the steadier of the two. Then latency at a steady load: an open loop offering half the
   orders/s measured, to orders and to echo. The 1-minute load average before and after is in
   the note (the machine is shared).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from rampart.venue.domain import MatchingVenue, Side, TimeInForce, VenueOrder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG_ADMIN = os.environ.get(
    "RAMPART_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECONDS = float(os.environ.get("RAMPART_BENCH_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("RAMPART_BENCH_CONNECTIONS", "32"))
#: The open loop's offered rate, as a share of the closed loop's orders/s (latency at that load).
OPEN_LOOP_SHARE = float(os.environ.get("RAMPART_BENCH_OPEN_LOOP_SHARE", "0.5"))
OPEN_LOOP_CONNECTIONS = 128
#: Closed-loop runs of each endpoint, alternated (echo, orders, echo, orders, ...).
ROUNDS = int(os.environ.get("RAMPART_BENCH_ROUNDS", "2"))


def matching() -> dict[str, object]:
    rng = random.Random(1)
    venue = MatchingVenue()
    orders = [
        VenueOrder(
            f"o{i}",
            f"u{i % 50}",
            "X",
            Side.BUY if rng.random() < 0.5 else Side.SELL,
            Decimal(rng.randint(1, 10)),
            Decimal(rng.randint(9900, 10100)) / 100,
            TimeInForce.DAY,
            i,
        )
        for i in range(100_000)
    ]
    started = time.perf_counter()
    trades = 0
    for order in orders:
        trades += len(venue.submit(order).matches)
    elapsed = time.perf_counter() - started
    return {
        "name": "matching (in-process, built-in venue)",
        "value": len(orders) / elapsed,
        "unit": "orders/s",
        "note": f"{trades} trades, 100k crossing limit orders",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the bench server did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(
    port: int, path: str, keys: str, rate: float | None = None, server: int | None = None
) -> dict[str, Any]:
    """A closed loop on `CONNECTIONS` connections, or an open loop offering `rate` a second.
    Given the server's pid, a closed loop also reports the server's CPU per request sent: the
    steadier figure on a shared machine."""
    cpu_before = _cpu_seconds(server) if server else 0.0
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "_loadgen.py"),
            str(port),
            path,
            str(SECONDS),
            str(OPEN_LOOP_CONNECTIONS if rate else CONNECTIONS),
            *([str(rate)] if rate else []),
        ],
        input=keys,
        capture_output=True,
        check=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if server and "sent" in result:
        result["cpu_us"] = (_cpu_seconds(server) - cpu_before) * 1e6 / result["sent"]
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _outcomes(url: str) -> str:
    """What became of the orders: the share refused by a check, and the commonest reasons (a
    refusal answers 201 too, and faster than a fill)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT status, reason, COUNT(*) FROM trading_order "
                    "GROUP BY status, reason ORDER BY COUNT(*) DESC"
                )
            ).all()
    finally:
        engine.dispose()
    total = sum(r[2] for r in rows) or 1
    refused = [(r[1], r[2]) for r in rows if r[0] == "rejected"]
    top = ", ".join(f"{reason} {count / total:.0%}" for reason, count in refused[:3])
    share = sum(c for _, c in refused) / total
    return f"{share:.0%} rejected" + (f": {top}" if top else "")


def http(backend: str) -> list[dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="rampart-bench-"))
    db_name = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        from sqlalchemy import create_engine, text

        db_name = f"rampart_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_trading_server.py"), url, str(tmp / "var"), str(port)],
        cwd=ROOT,
        # This tree's code: the shared virtualenv's editable install points at another checkout.
        env={**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT)))},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        keys = (tmp / "var" / "bench-keys.json").read_text()
        load_before = os.getloadavg()[0]
        # Echo and orders alternate, `ROUNDS` times each, so that a change in the machine's load
        # falls on both; the medians are reported.
        echo_runs: list[dict[str, Any]] = []
        order_runs: list[dict[str, Any]] = []
        for _ in range(ROUNDS):
            echo_runs.append(_load(port, "/bench/echo", keys, server=server.pid))
            order_runs.append(_load(port, "/v1/orders", keys, server=server.pid))
        echo = {k: _median(echo_runs, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
        orders = {k: _median(order_runs, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
        statuses: dict[str, int] = {}
        for run in order_runs:
            for status, count in run["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        # Latency at a load the server sustains: half its most, offered at a steady rate, to
        # both endpoints. First past the risk gate's duplicate-order window (2 s): the open loop
        # sends bodies the closed loop sent moments ago.
        time.sleep(2.5)
        rate = round(orders["rps"] * OPEN_LOOP_SHARE)
        steady_orders = _load(port, "/v1/orders", keys, rate)
        steady_echo = _load(port, "/bench/echo", keys, rate)
        load_after = os.getloadavg()[0]
        outcomes = _outcomes(url)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
        if db_name:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin.dispose()
    ok = statuses.get("201", 0) / max(1, sum(statuses.values()))
    return [
        {
            "name": f"order entry over HTTP ({backend})",
            "value": orders["rps"],
            "unit": "orders/s",
            "baseline": f"echo {echo['rps']:.0f} req/s",
            "note": f"ratio {orders['rps'] / echo['rps']:.2f} (by server CPU per request "
            f"{echo['cpu_us'] / orders['cpu_us']:.2f}); {orders['cpu_us']:.0f} µs server CPU "
            f"per order; p50 {orders['p50_ms']:.1f} ms, p99 {orders['p99_ms']:.1f} ms; "
            f"{ok:.0%} 201 ({outcomes}); medians of {ROUNDS} alternated runs; "
            f"load {load_before:.1f} -> {load_after:.1f}",
        },
        {
            "name": f"echo over HTTP ({backend})",
            "value": echo["rps"],
            "unit": "req/s",
            "note": f"{echo['cpu_us']:.0f} µs server CPU per request; p50 {echo['p50_ms']:.1f} "
            f"ms, p99 {echo['p99_ms']:.1f} ms",
        },
        {
            "name": f"order entry at {rate}/s offered, open loop ({backend})",
            "value": steady_orders["p99_ms"],
            "unit": "ms p99",
            "baseline": f"echo p99 {steady_echo['p99_ms']:.1f} ms",
            "note": f"p50 {steady_orders['p50_ms']:.1f} ms, max {steady_orders['max_ms']:.0f} ms; "
            f"answered {steady_orders['rps']:.0f}/s; echo p50 {steady_echo['p50_ms']:.1f} ms",
        },
    ]


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [matching()]
    rows += http("sqlite")
    rows += http("postgresql")
    return rows
