"""A small asyncio HTTP/1.1 load generator (keep-alive connections, pre-built requests).

`python bench/_loadgen.py PORT PATH SECONDS CONNECTIONS` prints one JSON line: requests/s, p50,
p99 (ms), and the status counts. Each request body alternates buy/sell orders near 100 from
eight users so that some orders rest and some trade.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def requests(path: str) -> list[bytes]:
    out = []
    for i in range(64):
        side = "buy" if i % 2 else "sell_short"
        price = f"{100 + (i % 7) - 3}.{i % 10}0"
        body = json.dumps(
            {
                "symbol": "ACME",
                "side": side,
                "type": "limit",
                "quantity": str(1 + i % 5),
                "limit_price": price,
                "time_in_force": "day",
            }
        ).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"x-bench-user: bench-{i % 8}\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def worker(
    port: int,
    reqs: list[bytes],
    stop: float,
    lat: list[float],
    statuses: dict[int, int],
    offset: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    while time.perf_counter() < stop:
        req = reqs[i % len(reqs)]
        i += 1
        started = time.perf_counter()
        writer.write(req)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        lat.append(time.perf_counter() - started)
        status = int(status_line.split()[1])
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def main(port: int, path: str, seconds: float, connections: int) -> None:
    reqs = requests(path)
    # Warm up (connections, caches, JIT-less but still: first-touch paths).
    warm: list[float] = []
    await asyncio.gather(
        *(worker(port, reqs, time.perf_counter() + 0.5, warm, {}, c) for c in range(connections))
    )
    lat: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    await asyncio.gather(
        *(worker(port, reqs, started + seconds, lat, statuses, c * 7) for c in range(connections))
    )
    elapsed = time.perf_counter() - started
    lat.sort()
    print(
        json.dumps(
            {
                "rps": len(lat) / elapsed,
                "p50_ms": lat[len(lat) // 2] * 1000,
                "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
                "statuses": statuses,
            }
        )
    )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
