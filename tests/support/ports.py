"""The backend a port's contract test runs on (see the `port_backend` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from rampart.platform.memory import InMemoryUnitOfWork


@dataclass
class PortBackend:
    backend: str
    clock: FrozenClock
    #: None for `memory`.
    container: Container | None

    @property
    def in_memory(self) -> bool:
        return self.container is None

    @property
    def app(self) -> Container:
        assert self.container is not None, "no container on the in-memory backend"
        return self.container

    def uow(self) -> Any:
        """A unit of work: the container's on a database, an `InMemoryUnitOfWork` in memory."""
        if self.container is None:
            return InMemoryUnitOfWork(self.clock)
        return self.container.uow()

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A read session on a database; None in memory (the in-memory adapters need none)."""
        if self.container is None:
            yield None
            return
        with self.container.db.read() as session:
            yield session
