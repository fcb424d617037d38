"""Identity: the bearer-token check, sign-ins per second at production hashing cost, and the
latency of a cheap authenticated request while 50 sign-ins run at once.

Baselines measured in this process: a plain PyJWT EdDSA decode of the same token (what a bearer
check costs without the verified-token cache), and the authenticated request on an idle server.
Everything runs through the real app (ASGI, middleware, authenticators) on SQLite under a
temporary directory, with the production argon2id parameters (m=19 MiB, t=2, p=1).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.identity.authn import BearerAuthenticator
from rampart.platform.migrate import upgrade
from rampart.web.app import create_app

PASSWORD = "correct horse battery staple 42"
CHECKS = 20_000
CONCURRENT_LOGINS = 50


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _setup(data_dir: Path) -> Container:
    url = f"sqlite:///{data_dir / 'rampart.db'}"
    upgrade(url)
    # The per-IP limiters (ip.login: 20/minute) would refuse a bench that signs in 90 times from
    # one address in seconds; they are measured in bench/ratelimit.py, not here.
    container = bootstrap(
        Settings(profile="dev", data_dir=data_dir, database_url=url, ratelimit={"enabled": False})
    )
    container.start()
    password_hash = container.identity.hashing.hasher.hash(PASSWORD)
    with container.uow() as uow:
        for i in range(CONCURRENT_LOGINS + 1):
            container.identity.accounts.create_user(
                uow,
                f"bench{i}@example.com",
                password_hash,
                role="TRADER",
                verified=True,
                created_by="bench",
            )
        uow.commit()
    return container


async def _bearer_check(container: Container, token: str) -> dict[str, list[float]]:
    from starlette.requests import Request

    authenticator = BearerAuthenticator(container.identity, container.clock)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/v1/me",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    await authenticator.authenticate(Request(scope))  # warm both caches
    cached: list[float] = []
    for _ in range(CHECKS):
        started = time.perf_counter_ns()
        await authenticator.authenticate(Request(scope))
        cached.append((time.perf_counter_ns() - started) / 1000)

    public_key = container.identity.keys.public_key(jwt.get_unverified_header(token)["kid"])
    cfg = container.settings.identity
    plain: list[float] = []
    for _ in range(CHECKS // 4):
        started = time.perf_counter_ns()
        jwt.decode(
            token,
            public_key,
            algorithms=["EdDSA"],
            audience=cfg.jwt_audience,
            issuer=cfg.jwt_issuer,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
        plain.append((time.perf_counter_ns() - started) / 1000)

    cold: list[float] = []
    tokens = container.identity.tokens
    for _ in range(CHECKS // 4):
        started = time.perf_counter_ns()
        tokens._verify_signature(token, container.clock.time_ns() / 1e9)
        cold.append((time.perf_counter_ns() - started) / 1000)
    return {"cached": cached, "plain": plain, "cold": cold}


async def _http(container: Container) -> list[dict[str, Any]]:
    app = create_app(container)
    transport = httpx.ASGITransport(app=app)
    rows: list[dict[str, Any]] = []
    async with httpx.AsyncClient(transport=transport, base_url="https://bench") as client:
        response = await client.post(
            "/v1/auth/login", json={"email": "bench0@example.com", "password": PASSWORD}
        )
        token = response.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def cheap_get_latencies(n: int) -> list[float]:
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                reply = await client.get("/v1/me/sessions", headers=headers)
                assert reply.status_code == 200
                samples.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.002)
            return samples

        idle = await cheap_get_latencies(200)

        async def one_login(i: int) -> float:
            started = time.perf_counter()
            reply = await client.post(
                "/v1/auth/login",
                json={"email": f"bench{i + 1}@example.com", "password": PASSWORD},
            )
            assert reply.status_code == 200, reply.text
            return time.perf_counter() - started

        started = time.perf_counter()
        logins = asyncio.gather(*(one_login(i) for i in range(CONCURRENT_LOGINS)))
        busy = await cheap_get_latencies(200)
        login_times = await logins
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "name": f"sign-ins per second ({CONCURRENT_LOGINS} at once, argon2id m=19MiB t=2)",
                "value": CONCURRENT_LOGINS / elapsed,
                "unit": "logins/s",
                "note": f"hashing_concurrency={container.settings.identity.hashing_concurrency}; "
                f"slowest sign-in {max(login_times) * 1000:.0f} ms",
            }
        )
        rows.append(
            {
                "name": "cheap authenticated GET p50 while 50 sign-ins run",
                "value": statistics.median(busy),
                "unit": "ms",
                "baseline": round(statistics.median(idle), 3),
                "note": "baseline: the same GET on an idle server",
            }
        )
        rows.append(
            {
                "name": "cheap authenticated GET p99 while 50 sign-ins run",
                "value": _pct(busy, 0.99),
                "unit": "ms",
                "baseline": round(_pct(idle, 0.99), 3),
                "note": "baseline: idle p99",
            }
        )

        async def failed_login(email: str) -> float:
            begun = time.perf_counter()
            reply = await client.post(
                "/v1/auth/login", json={"email": email, "password": "wrong pw"}
            )
            assert reply.status_code in (401, 429)
            return (time.perf_counter() - begun) * 1000

        # Alternate so that the load of the machine falls on both equally; different accounts
        # so that throttling does not step in.
        wrong, unknown = [], []
        for i in range(20):
            wrong.append(await failed_login(f"bench{(i % CONCURRENT_LOGINS) + 1}@example.com"))
            unknown.append(await failed_login(f"nobody{i}@example.com"))
        rows.append(
            {
                "name": "failed sign-in, unknown email (median)",
                "value": statistics.median(unknown),
                "unit": "ms",
                "baseline": round(statistics.median(wrong), 3),
                "note": "baseline: wrong password for an existing account",
            }
        )
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        container = _setup(Path(tmp))
        try:
            with container.uow() as uow:
                from rampart.identity.sessions import KIND_API, ClientInfo

                user = container.identity.accounts.by_email(uow.session, "bench0@example.com")
                assert user is not None
                user_id = user.id
                session = container.identity.sessions.create(
                    uow, user_id, KIND_API, ClientInfo("bench-device", "bench", "127.0.0.1"), None
                )
                uow.commit()
            token, _ = container.identity.tokens.issue(user_id, session.id)
            # The revocation cache is refreshed every second in a real run; the bench runs for
            # longer, so it includes those refreshes (one database read per second).
            samples = asyncio.run(_bearer_check(container, token))
            rows: list[dict[str, Any]] = [
                {
                    "name": "bearer check p50 (parse, verify, revocation check)",
                    "value": statistics.median(samples["cached"]),
                    "unit": "µs",
                    "baseline": round(statistics.median(samples["plain"]), 1),
                    "note": "baseline: plain PyJWT EdDSA decode of the same token",
                },
                {
                    "name": "bearer check p99",
                    "value": _pct(samples["cached"], 0.99),
                    "unit": "µs",
                    "baseline": round(_pct(samples["plain"], 0.99), 1),
                    "note": "baseline: plain PyJWT p99",
                },
                {
                    "name": "bearer check, first sight of a token (signature verified)",
                    "value": statistics.median(samples["cold"]),
                    "unit": "µs",
                    "note": "cache miss: header, key lookup, EdDSA verify, claim checks",
                },
            ]
            rows.extend(asyncio.run(_http(container)))
            return rows
        finally:
            container.close()
