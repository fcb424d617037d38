"""Fixtures shared by every test.

Storage tests take the `database_url` fixture (or anything built on it: `container`, `app`,
`client`) and so run twice: once on SQLite and once on PostgreSQL. Each test starts on an empty,
fully migrated database.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.platform.migrate import upgrade
from tests.support.databases import PostgresEmptier
from tests.support.ports import PortBackend
from tests.support.services import PG_ADMIN_URL, REDIS_URL, require

BACKENDS = ["sqlite", "postgresql"]

#: `RAMPART_TEST_PG_AS_APP_ROLE=1`: the PostgreSQL variants serve as a role holding only the
#: service's grants (`rampart db grant-app-role`), so row-level security binds them as in
#: production; the schema is still migrated and emptied by the superuser. Tests that do admin
#: work through the application's URL (creating roles) need the default, the superuser.
AS_APP_ROLE = os.environ.get("RAMPART_TEST_PG_AS_APP_ROLE", "") in ("1", "true", "yes")


def _app_role_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    from rampart.access.grants import app_role_grants

    role = f"rampart_app_{make_url(url).database}"[:63]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            for statement in app_role_grants(role):
                conn.execute(text(statement))
    finally:
        engine.dispose()
    return make_url(url).set(username=role).render_as_string(hide_password=False)


# --- PostgreSQL: one migrated database per test session, emptied before each test ----------
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    require("PostgreSQL", "127.0.0.1", 5432)
    name = f"rampart_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        with PostgresEmptier(url) as emptier:
            _EMPTIERS[url] = emptier
            yield url
    finally:
        _EMPTIERS.pop(url, None)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "rampart_app_{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_app_url(postgres_url: str) -> str:
    return _app_role_url(postgres_url) if AS_APP_ROLE else postgres_url


_EMPTIERS: dict[str, PostgresEmptier] = {}


def _empty_postgres(url: str) -> None:
    _EMPTIERS[url].empty()


# --- SQLite: one migrated template per session, copied for each test ------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database(db_backend, request, tmp_path)


def fresh_database(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on `db_backend` for the requesting test."""
    if db_backend == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
        _empty_postgres(url)
        return str(request.getfixturevalue("postgres_app_url"))
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "rampart.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def redis_url() -> str:
    require("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


# --- The platform, wired as in production ----------------------------------------------------
@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(profile="dev", data_dir=tmp_path / "var", database_url=database_url)


@pytest.fixture
def container(settings: Settings, clock: FrozenClock) -> Iterator[Container]:
    container = bootstrap(settings, clock=clock)
    try:
        yield container
    finally:
        container.close()


@pytest.fixture
def app(container: Container):  # type: ignore[no-untyped-def]
    from rampart.web.app import create_app

    return create_app(container)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


# --- Ports: one contract suite, run on the in-memory adapter and on both databases ----------
@pytest.fixture(params=["memory", *BACKENDS])
def port_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PortBackend]:
    """Where a port's contract test runs: `memory` (no container, an in-memory unit of work) or
    a container on a fresh SQLite or PostgreSQL database. Each contract test builds the adapter
    for `port_backend.backend` and asks this object for transactions and read sessions."""
    clock = FrozenClock()
    if request.param == "memory":
        yield PortBackend("memory", clock, None)
        return
    url = fresh_database(str(request.param), request, tmp_path)
    settings = Settings(profile="dev", data_dir=tmp_path / "var", database_url=url)
    container = bootstrap(settings, clock=clock)
    try:
        yield PortBackend(str(request.param), clock, container)
    finally:
        container.close()


# --- The quick tier: domain logic and in-memory adapters, no database, server or browser -----
#: Fixtures that put a test on a database, Redis or a browser (and so out of `make test-quick`).
_STORAGE_FIXTURES = frozenset(
    {
        "database_url",
        "postgres_url",
        "postgres_app_url",
        "sqlite_template",
        "db_backend",
        # A module's own scratch PostgreSQL with roles (tests/platform/test_production_preflight).
        "database",
    }
)


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Mark every test that needs a database `storage` and every test that needs Redis `redis`,
    from the fixtures it uses, so that `-m "not storage"` selects the quick tier without anyone
    having to remember a marker (a contract test's `memory` variant stays in it)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_database = (
            bool(names & _STORAGE_FIXTURES)
            or any(isinstance(v, str) and v in BACKENDS for v in params.values())
            or any("postgres" in name or "sqlite" in name for name in names)
        )
        if on_database:
            item.add_marker(pytest.mark.storage)
        if "redis_url" in names:
            item.add_marker(pytest.mark.redis)


# --- Say which backends the storage tests ran on ---------------------------------------------
_BACKEND_ID = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    counts: dict[str, dict[str, int]] = {b: {"passed": 0, "failed": 0} for b in BACKENDS}
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call":
                continue
            match = _BACKEND_ID.search(report.nodeid)
            if match:
                counts[match.group(1)][outcome] += 1
    line = ", ".join(
        f"{backend}: {c['passed']} passed, {c['failed']} failed" for backend, c in counts.items()
    )
    terminalreporter.write_sep("-", f"storage tests by database: {line}")
