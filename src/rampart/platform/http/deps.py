"""Dependencies shared by the routers: the container, the request context, a unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from rampart.platform.uow import UnitOfWork

if TYPE_CHECKING:
    from rampart.bootstrap import Container


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    """A unit of work for one request; the endpoint commits, an exception rolls back.

    Use it through `UnitOfWorkDep`, which closes the unit of work when the endpoint returns:
    with FastAPI's default request scope the transaction would stay open until the response is
    sent, holding SQLite's write lock while the access recorder waits for the audit log.
    """
    container = get_container(request)
    with container.uow() as uow:
        yield uow


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
