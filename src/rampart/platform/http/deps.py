"""Dependencies shared by the routers: the container, the request context, a unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import Request

from rampart.kernel.context import RequestContext, current_context
from rampart.platform.uow import UnitOfWork

if TYPE_CHECKING:
    from rampart.bootstrap import Container


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_request_context() -> RequestContext:
    return current_context()


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    """A unit of work for one request; the endpoint commits, an exception rolls back."""
    container = get_container(request)
    with container.uow() as uow:
        yield uow
