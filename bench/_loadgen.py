"""A small asyncio HTTP/1.1 load generator: keep-alive connections, every request signed.

`python bench/_loadgen.py PORT PATH SECONDS CONNECTIONS [RATE] < keys.json` prints one JSON line:
requests/s, p50, p99 (ms), and the status counts. Without RATE, a closed loop: each connection
sends its next request when the last is answered (the most the server can do). With RATE, an
open loop offering RATE requests a second (`open_loop`): latency at a given load.

`keys.json` (on stdin, so that no secret shows in a process list) is a list of
`{"key_id": ..., "secret": ...}` hmac-sha256 API keys, one per user. Each request is signed as
`rampart.client` signs it (RFC 9421: `@method`, `@target-uri`, `content-digest`,
`content-type`; a fresh nonce and `created` every time), so the server does its full
verification per request: digest, signature, nonce replay check, key state, permissions.

Bodies alternate buy/sell orders near 100 across the users, so that some orders rest and some
trade. The same signed bodies go to the echo endpoint for the baseline.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from rampart.client.signing import HmacSigner, content_digest, sign_request


class Signed:
    """Pre-computes what does not change per request; signs the rest (created, nonce)."""

    def __init__(self, port: int, path: str, keys: list[dict[str, str]]) -> None:
        self.url = f"http://127.0.0.1:{port}{path}"
        self.path = path
        self.host = f"127.0.0.1:{port}"
        self.items: list[tuple[bytes, str, HmacSigner, str]] = []
        # Distinct orders per key (quantity, price) for several seconds at full rate: the risk
        # gate refuses an order identical to one accepted within its duplicate window. Half the
        # keys buy and half sell short, so orders cross other users' and never their own (a
        # self-cross is refused by self-trade prevention). Prices 97.00-102.99. A bench of
        # mostly refused orders would measure refusals.
        for i in range(8192):
            j = i // len(keys)
            side = "buy" if i % len(keys) < len(keys) // 2 else "sell_short"
            cents = 9700 + j * 37 % 600
            body = json.dumps(
                {
                    "symbol": "ACME",
                    "side": side,
                    "type": "limit",
                    "quantity": str(1 + (j // 600) % 5),
                    "limit_price": f"{cents // 100}.{cents % 100:02d}",
                    "time_in_force": "day",
                }
            ).encode()
            key = keys[i % len(keys)]
            self.items.append(
                (body, key["key_id"], HmacSigner(key["secret"]), content_digest(body))
            )

    def request(self, i: int) -> bytes:
        body, key_id, signer, digest = self.items[i % len(self.items)]
        headers = {"Content-Type": "application/json"}
        added = sign_request("POST", self.url, headers, body, key_id=key_id, signer=signer)
        assert added["Content-Digest"] == digest
        head = (
            f"POST {self.path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
            f"content-digest: {digest}\r\nsignature-input: {added['Signature-Input']}\r\n"
            f"signature: {added['Signature']}\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


async def worker(
    port: int,
    signed: Signed,
    stop: float,
    lat: list[float],
    statuses: dict[int, int],
    offset: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    while time.perf_counter() < stop:
        req = signed.request(i)
        i += 1
        started = time.perf_counter()
        status = await _exchange(reader, writer, req)
        lat.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
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
    return int(status_line.split()[1])


async def open_loop(
    port: int, path: str, seconds: float, connections: int, rate: float, keys: Any
) -> None:
    """Offer `rate` requests a second whatever the answers do, each on a free keep-alive
    connection (at most `connections`), and time each from the moment it was due: a slow answer
    cannot hold back the requests behind it and hide its delay (no coordinated omission)."""
    signed = Signed(port, path, keys)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    lat: list[float] = []
    statuses: dict[int, int] = {}

    async def one(i: int, due: float, record: bool) -> None:
        req = signed.request(i)
        conn = await pool.get()
        try:
            status = await _exchange(*conn, req)
        finally:
            pool.put_nowait(conn)
        if record:
            lat.append(time.perf_counter() - due)
            statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    warm = 0.5
    started = time.perf_counter()
    total = int((seconds + warm) * rate)
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, record=i >= warm * rate)))
    await asyncio.gather(*tasks)
    lat.sort()
    print(
        json.dumps(
            {
                "rps": len(lat) / seconds,
                "offered": rate,
                "p50_ms": lat[len(lat) // 2] * 1000,
                "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
                "max_ms": lat[-1] * 1000,
                "statuses": statuses,
            }
        )
    )


async def main(port: int, path: str, seconds: float, connections: int, keys: Any) -> None:
    signed = Signed(port, path, keys)
    # Each connection walks its own stretch of the orders (a multiple of the key count apart).
    stride = len(signed.items) // connections // len(keys) * len(keys)
    # Warm up: connections, caches, first-touch paths.
    warm: list[float] = []
    await asyncio.gather(
        *(
            worker(port, signed, time.perf_counter() + 0.5, warm, {}, c * stride + stride // 2)
            for c in range(connections)
        )
    )
    lat: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    await asyncio.gather(
        *(
            worker(port, signed, started + seconds, lat, statuses, c * stride)
            for c in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    lat.sort()
    print(
        json.dumps(
            {
                "rps": len(lat) / elapsed,
                # Everything sent, warm-up included: what the server's CPU was spent on.
                "sent": len(warm) + len(lat),
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
    port, path, seconds, connections = (
        int(sys.argv[1]),
        sys.argv[2],
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    keys = json.loads(sys.stdin.read())
    if len(sys.argv) > 5:
        asyncio.run(open_loop(port, path, seconds, connections, float(sys.argv[5]), keys))
    else:
        asyncio.run(main(port, path, seconds, connections, keys))
