"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends
from starlette.responses import Response

from rampart.platform.http.access import public
from rampart.platform.http.deps import DatabaseDep
from rampart.platform.http.problems import problem_response
from rampart.platform.http.services import ServiceSlot
from rampart.platform.logging import get_logger
from rampart.platform.migrate import NotMigratedError, assert_migrated

router = APIRouter(tags=["health"], dependencies=[Depends(public)])
log = get_logger(__name__)


class Pingable(Protocol):
    def ping(self) -> Any: ...


#: The Redis client, when Redis is configured.
redis_slot: ServiceSlot[Pingable | None] = ServiceSlot("redis")
RedisDep = Annotated[Pingable | None, Depends(redis_slot)]


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="The database (and Redis, when configured) answer", response_model=None
)
def readyz(db: DatabaseDep, redis: RedisDep) -> dict[str, Any] | Response:
    checks: dict[str, str] = {}
    try:
        db.ping()
        assert_migrated(db.engine, db.url)
        checks["database"] = "ok"
    except NotMigratedError:
        checks["database"] = "not migrated"
    except Exception:
        log.warning("readiness: database unavailable", exc_info=True)
        checks["database"] = "unavailable"
    if redis is not None:
        try:
            redis.ping()
            checks["redis"] = "ok"
        except Exception:
            log.warning("readiness: redis unavailable", exc_info=True)
            checks["redis"] = "unavailable"
    if all(value == "ok" for value in checks.values()):
        return {"status": "ready", "checks": checks}
    return problem_response(
        503, "unavailable", "Not ready", "A dependency is not available.", "/readyz", checks=checks
    )
