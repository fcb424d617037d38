"""Bench only: serve the real app in one uvicorn worker, as production would.

`python bench/_trading_server.py DATABASE_URL DATA_DIR PORT` migrates the database, defines the
demo instruments, creates eight funded traders (real identity accounts) each with an hmac-sha256
API key (scope `trade`), writes the keys to `DATA_DIR/bench-keys.json` (mode 0600) for the load
generator, and serves.

Nothing on the order path is replaced: requests are verified by the real RFC 9421 authenticator,
permission checks are recorded in the audit log, orders go through the order engine, ledger and
audit writes. The echo route takes the same authentication and permission check (and so the
same durable audit entry of its access decision) and does nothing else: the baseline.
"""

from __future__ import annotations

import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pyotp
import uvicorn
from fastapi import Depends, Response

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal, Role, permissions_for
from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.platform.logging import configure_logging
from rampart.platform.migrate import upgrade
from rampart.platform.runtime import settle_heap
from rampart.venue.service import DEMO_INSTRUMENTS
from rampart.web.app import create_app

USERS = 8
#: A bench trader sends hundreds of orders a second, all day: limits of a professional client.
BENCH_LIMITS = {
    "max_orders_per_second": "5000",
    "max_orders_per_day": "10000000",
    "max_trades_per_day": "10000000",
    "max_executions_in_window": "1000000",
    "max_window_notional": "1000000000000",
    "max_gross_exposure": "1000000000000",
    "max_position_quantity": "100000000",
}
#: Order-entry rate limits of the bench's keys and users (the defaults suit a retail bot).
BENCH_RATE = "5000/second burst 5000"
_ADMIN = Principal(
    actor="user:bench-admin",
    user_id="bench-admin",
    roles=frozenset({Role.ADMIN}),
    permissions=permissions_for({Role.ADMIN}),
    method="session",
)


def setup(container: object, data_dir: Path) -> None:
    from rampart.bootstrap import Container

    assert isinstance(container, Container)
    keys = []
    with container.uow() as uow:
        for instrument in DEMO_INSTRUMENTS:
            container.instruments.upsert(uow, instrument)
        uow.commit()
    # Real, active identity accounts: API keys act only for an active owner.
    password_hash = container.identity.hashing.hasher.hash("bench passphrase, not a secret 8")
    for i in range(USERS):
        with container.uow() as uow:
            user = container.identity.accounts.create_user(
                uow,
                f"bench-{i}@example.com",
                password_hash,
                role=Role.TRADER,
                verified=True,
                created_by="bench",
            )
            container.ledger.deposit(uow, user, "10000000")
            # Every pre-trade check runs (`risk.pre_trade=full`): the owner enrols an
            # authenticator app through the MFA service, as a customer does...
            enrolment = container.mfa.begin_totp(uow, user, f"bench-{i}@example.com")
            code = pyotp.TOTP(enrolment.secret).at(container.clock.now())
            container.mfa.confirm_totp(uow, user, code).raise_for_failure()
            uow.commit()
        with container.uow() as uow:
            # ...and, like a professional client, gets limits sized for its flow from an
            # administrator (audited) and a borrow for its short sales (Regulation SHO).
            container.risk.set_limits(uow, _ADMIN, user, dict(BENCH_LIMITS), "bench client")
            for instrument in DEMO_INSTRUMENTS:
                container.risk.record_locate(
                    uow, _ADMIN, user, instrument.symbol, Decimal(10_000_000), "bench lender"
                )
            uow.commit()
        with container.uow() as uow:
            owner = Principal(
                actor=f"user:{user}",
                user_id=user,
                roles=frozenset({Role.TRADER}),
                permissions=permissions_for({Role.TRADER}),
                method="session",
                mfa_at=time.time(),
            )
            created = container.apikeys.create(
                uow, owner, algorithm="hmac-sha256", scopes=["trade"], label="bench"
            )
            uow.commit()
        assert created.secret is not None
        keys.append({"key_id": created.key.id, "secret": created.secret.reveal()})
    path = data_dir / "bench-keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f)


def main(database_url: str, data_dir: str, port: int) -> None:
    settings = Settings(
        profile="dev",
        data_dir=Path(data_dir),
        database_url=database_url,
        ratelimit={"limits": {"user.orders": BENCH_RATE, "key.orders": BENCH_RATE}},  # type: ignore[arg-type]
    )
    # Logging as `rampart serve` sets it up (JSON, the configured level: the access log is on).
    configure_logging(settings.log_level, json=True)
    upgrade(database_url)
    container = bootstrap(settings)
    setup(container, Path(data_dir))
    app = create_app(container)

    @app.post("/bench/echo")
    async def echo(
        body: dict[str, str], principal: Principal = Depends(requires(Permission.ORDER_PLACE))
    ) -> Response:
        # Answered like the order route answers: orjson bytes, no response model.
        return Response(orjson.dumps(body), media_type="application/json")

    # As `rampart serve` runs it.
    settle_heap()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
