"""Dependencies shared by the routers: the platform's services and a unit of work.
Each domain declares its own services' slots beside its routes (see `services`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends

from rampart.config import Settings
from rampart.kernel.clock import Clock
from rampart.platform.db import Database
from rampart.platform.http.services import ServiceSlot
from rampart.platform.uow import UnitOfWork

#: The application's settings.
settings_slot: ServiceSlot[Settings] = ServiceSlot("settings")
#: The clock every service of the application shares.
clock_slot: ServiceSlot[Clock] = ServiceSlot("clock")
#: The database, for read-only sessions (`db.read()`).
database_slot: ServiceSlot[Database] = ServiceSlot("database")
#: Opens a unit of work (the caller commits).
unit_of_work_slot: ServiceSlot[Callable[[], UnitOfWork]] = ServiceSlot("unit of work")

SettingsDep = Annotated[Settings, Depends(settings_slot)]
ClockDep = Annotated[Clock, Depends(clock_slot)]
DatabaseDep = Annotated[Database, Depends(database_slot)]
NewUnitOfWorkDep = Annotated[Callable[[], UnitOfWork], Depends(unit_of_work_slot)]


def get_uow(new_uow: NewUnitOfWorkDep) -> Iterator[UnitOfWork]:
    """A unit of work for one request; the endpoint commits, an exception rolls back.

    Use it through `UnitOfWorkDep`, which closes the unit of work when the endpoint returns:
    with FastAPI's default request scope the transaction would stay open until the response is
    sent, holding SQLite's write lock while the access recorder waits for the audit log.
    """
    with new_uow() as uow:
        yield uow


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
