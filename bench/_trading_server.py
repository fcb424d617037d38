"""Bench only: serve the real app (one uvicorn worker) with a header authenticator.

Not a test double of the order path: orders go through the same routes, access checks (recorded
to the audit log), engine, ledger and audit writes as in production. Only authentication is a
header naming the user, because signed API-key requests (`rampart.client`) were not available when
this bench was written. The echo route takes the same authentication and permission check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import Depends
from starlette.requests import HTTPConnection

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal, Role, permissions_for
from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.platform.migrate import upgrade
from rampart.venue.service import DEMO_INSTRUMENTS
from rampart.web.app import create_app


class BenchAuthenticator:
    permissions = permissions_for({Role.TRADER})

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        user = conn.headers.get("x-bench-user")
        if not user:
            return None
        return Principal(
            actor=f"user:{user}",
            user_id=user,
            roles=frozenset({Role.TRADER}),
            permissions=self.permissions,
            credential_id=f"bench:{user}",
        )


def main(database_url: str, data_dir: str, port: int) -> None:
    upgrade(database_url)
    settings = Settings(
        profile="dev", data_dir=Path(data_dir), database_url=database_url, log_level="warning"
    )
    container = bootstrap(settings)
    with container.uow() as uow:
        for instrument in DEMO_INSTRUMENTS:
            container.instruments.upsert(uow, instrument)
        for i in range(8):
            container.ledger.deposit(uow, f"bench-{i}", "10000000")
        uow.commit()
    container.authenticators.insert(0, BenchAuthenticator())
    app = create_app(container)

    @app.post("/bench/echo")
    async def echo(
        body: dict[str, str], principal: Principal = Depends(requires(Permission.ORDER_PLACE))
    ) -> dict[str, str]:
        return body

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        log_config=None,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
