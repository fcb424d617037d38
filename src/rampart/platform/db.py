"""Database engines for the two first-class backends: SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with `synchronous=FULL`, so a committed transaction survives a crash and
readers never block the writer. Writes on SQLite start with `BEGIN IMMEDIATE`: a deferred
transaction that later needs the write lock can fail with "database is locked" no matter how long
it waits, while an immediate one queues for the lock up front. Reads use a second engine with
ordinary deferred transactions so they never queue behind writers.

A SQLite file is opened read-write only (`mode=rw`), never created: a mistyped path or data
directory would otherwise become a fresh, empty database that every later command reads as "no
such user". Only the migrations (`rampart db upgrade`) create the file, through
`single_connection_engine(url, create=True)`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or none)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _json_text(value: Any) -> str:
    """JSON columns (outbox payloads, risk limits) serialised by orjson: the order engine writes
    an outbox row per order transition, and the standard library's encoder cost ~5 % of its
    time. Non-string keys become strings, as `json.dumps` makes them."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class DatabaseNotFoundError(Exception):
    """The SQLite file of the configured database does not exist (it is never created here)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"database not found at {path} (run `rampart db upgrade`)")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _existing_file_opener(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections to `path` that fail rather than create it: the existence check names the
    problem, and `mode=rw` closes the race between that check and the open."""
    uri = f"{path.resolve().as_uri()}?mode=rw"

    def connect() -> sqlite3.Connection:
        if not path.is_file():
            raise DatabaseNotFoundError(str(path))
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)

    return connect


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int, create: bool) -> Engine:
    path = sqlite_file(url)
    extra: dict[str, Any] = {}
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            extra["creator"] = _existing_file_opener(path)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        **extra,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=False,
        json_serializer=_json_text,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


#: A pooled connection unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping`, but only for connections that sat idle: a connection that was in use a
    moment ago is alive, and a ping per checkout costs a round trip per transaction (a sixth of
    the order engine's time per batch on PostgreSQL). A dead idle connection is replaced before
    use (the pool retries on `DisconnectionError`); one that dies within the second is caught by
    SQLAlchemy's disconnect handling, which fails that transaction and refreshes the pool."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("connection lost while idle") from exc
        if not alive:
            raise DisconnectionError("connection lost while idle")


class Database:
    """The engines and session factories of one database.

    A SQLite file must exist already (`DatabaseNotFoundError` on first use otherwise) unless
    `create` is given: the application never makes a database by opening one.
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, create: bool = False
    ) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(
                self.url, immediate=True, pool_size=pool_size, create=create
            )
            self.read_engine = _sqlite_engine(
                self.url, immediate=False, pool_size=pool_size, create=create
            )
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                echo=echo,
                json_serializer=_json_text,
            )
            _ping_when_idle(self.engine)
            self.read_engine = self.engine
        else:
            raise ValueError(f"unsupported database backend: {self.dialect}")
        self._write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def write_session(self) -> Session:
        return self._write_sessions()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries only; closing it rolls back whatever it changed.

        Objects loaded through it stay readable after the block (closing detaches them without
        expiring their loaded state).
        """
        session = self._read_sessions()
        try:
            yield session
        finally:
            session.close()

    def ping(self) -> None:
        with self.read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def single_connection_engine(url: str, *, create: bool = False) -> Engine:
    """An engine without pooling, for one-off admin work: migrations (`create=True`, the one
    caller that may make a new SQLite file) and schema checks.

    On SQLite, BEGIN is ours to emit as on the app's engines: left to pysqlite, DDL would run
    outside the transaction (each CREATE or ALTER committed at once), so a migration that fails
    half-way would leave a schema that matches no revision; and savepoints, which a data
    migration's writes may use, would not nest."""
    url = normalise_url(url)
    path = sqlite_file(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    if path is None or create:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool)
    else:
        engine = create_engine(url, poolclass=NullPool, creator=_existing_file_opener(path))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine
