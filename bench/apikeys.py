"""API-key signed requests: signature verification alone, and the whole authenticated request.

Baselines are measured in the same process: for verification, nothing (absolute figures); for
the server's whole authentication, verification alone; for the request, the same app answering
`/healthz` (no authentication) through the same test client.
"""

from __future__ import annotations

import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class Conn:
    """The slice of a Starlette connection `signed_request` reads."""

    scope: dict[str, Any]


def _per_call_us(fn: Any, n: int) -> float:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(samples)


def run() -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from rampart.access.domain import Principal
    from rampart.apikeys.auth import signed_request
    from rampart.apikeys.signatures import (
        check_content_digest,
        check_coverage,
        parse_signature,
        signature_base,
        verify,
    )
    from rampart.bootstrap import bootstrap
    from rampart.client import RampartClient
    from rampart.client.signing import Ed25519Signer, HmacSigner, sign_request
    from rampart.config import Settings
    from rampart.kernel.ids import new_id
    from rampart.platform.migrate import upgrade
    from rampart.web.app import create_app

    rows: list[dict[str, Any]] = []
    data = Path(tempfile.mkdtemp(prefix="bench-apikeys-"))
    settings = Settings(
        profile="dev",
        data_dir=data,
        database_url=f"sqlite:///{data / 'rampart.db'}",
        mfa={"required_for_trading": False},  # type: ignore[arg-type]
    )
    upgrade(settings.effective_database_url)
    container = bootstrap(settings)
    # A real account: a key works only while its owner's account is active.
    password_hash = container.identity.hashing.hasher.hash("bench owner passphrase 42")
    with container.uow() as uow:
        user_id = container.identity.accounts.create_user(
            uow,
            f"bench-{new_id()[-12:]}@example.com",
            password_hash,
            role="TRADER",
            verified=True,
            created_by="bench",
        )
        uow.commit()
    with container.db.read() as session:
        perms = container.access.permissions_of(session, user_id, container.clock.now())
    owner = Principal(actor=f"user:{user_id}", user_id=user_id, permissions=perms, method="session")
    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    with container.uow() as uow:
        hmac_key = container.apikeys.create(uow, owner, algorithm="hmac-sha256", scopes=["trade"])
        ed_key = container.apikeys.create(
            uow, owner, algorithm="ed25519", scopes=["trade"], public_key=public.decode()
        )
        uow.commit()
    assert hmac_key.secret is not None
    keys = {
        "hmac-sha256": (
            hmac_key.key.id,
            HmacSigner(hmac_key.secret.reveal()),
            hmac_key.secret.reveal().encode(),
        ),
        "ed25519": (ed_key.key.id, Ed25519Signer(private), base64.b64decode(public)),
    }

    # 1. Verification alone: parse, coverage, digest, signature base, crypto (no DB, no nonce).
    body = b'{"symbol":"ACME","side":"buy","qty":"10","price":"101.25"}'
    url = "https://bench.invalid/api/v1/orders"
    for algorithm, (key_id, signer, material) in keys.items():
        headers = {"content-type": "application/json"}
        headers.update(
            {
                k.lower(): v
                for k, v in sign_request(
                    "POST", url, headers, body, key_id=key_id, signer=signer
                ).items()
            }
        )
        scope = {
            "type": "http",
            "method": "POST",
            "scheme": "https",
            "path": "/api/v1/orders",
            "raw_path": b"/api/v1/orders",
            "query_string": b"",
            "headers": [(b"host", b"bench.invalid")]
            + [(k.encode(), v.encode()) for k, v in headers.items()],
        }

        conn = Conn()
        conn.scope = scope  # type: ignore[attr-defined]
        message = signed_request(conn, body, None)  # type: ignore[arg-type]

        def check(message: Any = message, material: bytes = material, alg: str = algorithm) -> None:
            parsed = parse_signature(message.headers)
            assert parsed is not None
            check_coverage(parsed, message)
            check_content_digest(message)
            assert verify(alg, material, signature_base(parsed, message), parsed.signature)

        rows.append(
            {
                "name": f"verify {algorithm} signature (parse+digest+base+crypto)",
                "value": round(_per_call_us(check, 2000), 1),
                "unit": "µs",
            }
        )

    # 2. The server's whole authentication of a signed request (`SignatureAuthenticator`):
    # parse, coverage, freshness, digest, key, crypto, nonce, key state, owner: the verified key
    # cached (the common case, on the event loop) and read from the database (first use, or
    # after a change), each call with a fresh nonce. Baseline: step 1 (crypto and parsing).
    from rampart.apikeys.auth import SignatureAuthenticator

    authenticator = next(
        a for a in container.authenticators if isinstance(a, SignatureAuthenticator)
    )
    for algorithm, (key_id, signer, _material) in keys.items():
        n = 400
        messages = []
        for _ in range(6 * n + 100):
            headers = {"content-type": "application/json"}
            headers.update(
                {
                    k.lower(): v
                    for k, v in sign_request(
                        "POST", url, headers, body, key_id=key_id, signer=signer
                    ).items()
                }
            )
            conn = Conn()
            conn.scope = {  # type: ignore[attr-defined]
                "type": "http",
                "method": "POST",
                "scheme": "https",
                "path": "/api/v1/orders",
                "raw_path": b"/api/v1/orders",
                "query_string": b"",
                "headers": [(b"host", b"bench.invalid")]
                + [(k.encode(), v.encode()) for k, v in headers.items()],
            }
            messages.append(signed_request(conn, body, None))  # type: ignore[arg-type]
        pending = iter(messages)
        verify_only = next(r["value"] for r in rows if r["name"].startswith(f"verify {algorithm}"))

        def cached(pending: Any = pending) -> None:
            authenticator.verify_in_memory(next(pending), "127.0.0.1")

        def uncached(pending: Any = pending) -> None:
            container.apikeys._verified.clear()  # as after a revocation elsewhere
            authenticator.verify(next(pending), "127.0.0.1")

        uncached()  # first use: last use recorded, HMAC secret unsealed
        for label, fn, count in (
            ("key cached", cached, n),
            ("key read from the database", uncached, n // 8),
        ):
            value = _per_call_us(fn, count)
            rows.append(
                {
                    "name": f"authenticate signed request, {algorithm}, {label}",
                    "value": round(value, 1),
                    "unit": "µs",
                    "baseline": verify_only,
                    "note": f"{value - verify_only:,.0f} µs over verification alone",
                }
            )

    # 3. Whole requests over the app, same process, same client.
    app = create_app(container)
    with TestClient(app, base_url="https://testserver") as client:
        baseline = _per_call_us(lambda: client.get("/healthz"), 300)
        rows.append(
            {
                "name": "GET /healthz (unauthenticated)",
                "value": round(baseline, 1),
                "unit": "µs",
                "note": "baseline",
            }
        )
        for algorithm, (key_id, _signer, _material) in keys.items():
            bot = (
                RampartClient(
                    "https://testserver",
                    key_id=key_id,
                    secret=hmac_key.secret.reveal(),
                    http_client=client,
                )
                if algorithm == "hmac-sha256"
                else RampartClient(
                    "https://testserver", key_id=key_id, private_key=private, http_client=client
                )
            )

            def call(bot: RampartClient = bot) -> None:
                response = bot.get("/api/v1/apikeys/whoami")
                assert response.status_code == 200, response.text

            value = _per_call_us(call, 300)
            rows.append(
                {
                    "name": f"signed GET whoami, {algorithm} (client signs + server verifies)",
                    "value": round(value, 1),
                    "unit": "µs",
                    "baseline": round(baseline, 1),
                    "note": f"overhead {value - baseline:,.0f} µs over /healthz",
                }
            )
    container.close()
    return rows
