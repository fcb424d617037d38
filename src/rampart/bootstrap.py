"""The one place that chooses implementations and wires the platform together.

`bootstrap(settings)` returns a `Container` holding every service, built from the settings: the
embedded default (SQLite, in-process caches) or PostgreSQL and Redis. Tests call it with their own
settings and clock; nothing else constructs services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rampart.config import Settings, load_settings
from rampart.kernel.clock import Clock, SystemClock
from rampart.platform.db import Database
from rampart.platform.keys import RootKeys
from rampart.platform.uow import AuditWriter, UnitOfWork


@dataclass
class Container:
    settings: Settings
    clock: Clock
    db: Database
    keys: RootKeys
    redis: Any | None = None
    audit_writer: AuditWriter | None = None
    #: Credential checkers tried in order by `rampart.access.api.authenticate`.
    authenticators: list[Any] = field(default_factory=list)
    #: Writes every permission check, allowed or denied, to the audit log.
    access_recorder: Any | None = None
    #: Things to stop on shutdown (background workers), in reverse order of start.
    closers: list[Any] = field(default_factory=list)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db, self.clock, self.audit_writer)

    def start(self) -> None:
        """Start background work (audit sequencer, outbox worker, market simulator)."""
        for component in self.closers:
            start = getattr(component, "start", None)
            if start is not None:
                start()

    def close(self) -> None:
        for component in reversed(self.closers):
            stop = getattr(component, "stop", None)
            if stop is not None:
                stop()
        if self.redis is not None:
            self.redis.close()
        self.db.dispose()


def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    settings = settings or load_settings()
    clock = clock or SystemClock()
    db = Database(settings.effective_database_url)
    container = Container(
        settings=settings,
        clock=clock,
        db=db,
        keys=RootKeys(settings),
        redis=_redis_client(settings.redis_url) if settings.redis_url else None,
    )
    return container
