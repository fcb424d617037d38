"""Schema migrations with Alembic.

Each domain keeps its migrations beside its code in `src/rampart/<domain>/migrations/`, as its
own Alembic branch (labelled with the domain's name) that depends on the branches it needs. A new
domain adds a folder and nothing else; `upgrade` takes every branch to its head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from rampart.platform.db import (
    DatabaseNotFoundError,
    normalise_url,
    single_connection_engine,
    sqlite_file,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent


class DatabaseUnavailableError(Exception):
    """The database could not be reached (server down, wrong host, refused credentials)."""

    def __init__(self, url: str, reason: str) -> None:
        where = make_url(normalise_url(url)).render_as_string(hide_password=True)
        self.reason = reason
        super().__init__(f"database unreachable at {where}: {reason}")


def unavailable(url: str, exc: DBAPIError) -> DatabaseUnavailableError:
    """The one-line reason of a driver's connection error (its first line: drivers put the
    host and the cause there, never the password)."""
    lines = str(exc.orig or exc).strip().splitlines()
    return DatabaseUnavailableError(url, (lines[0] if lines else type(exc).__name__)[:200])


class NotMigratedError(Exception):
    def __init__(self, current: set[str], heads: set[str]) -> None:
        self.current, self.heads = current, heads
        super().__init__(
            "the database schema is not at the current version; run `rampart db upgrade`"
        )


def version_locations() -> list[str]:
    locations = [str(PACKAGE_DIR / "platform" / "migrations" / "versions")]
    for folder in sorted(PACKAGE_DIR.glob("*/migrations")):
        if folder.parent.name != "platform" and folder.is_dir():
            locations.append(str(folder))
    return locations


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PACKAGE_DIR / "platform" / "migrations"))
    config.set_main_option("version_locations", " ".join(version_locations()))
    config.set_main_option("path_separator", "space")
    # Alembic interpolates %-signs in option values; a password may contain them.
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads", *, attributes: dict[str, Any] | None = None) -> None:
    """Take the schema to `revision`; the one operation that may create a SQLite file.
    `attributes` reach the migrations (`context.config.attributes`): services a data migration
    needs, such as the vault that seals existing rows (`identity_0002`), which only the caller
    can build from its settings."""
    engine = single_connection_engine(url, create=True)
    try:
        config = alembic_config(url)
        config.attributes.update(attributes or {})
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def heads(url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def applied_revisions(engine: Engine, url: str) -> set[str]:
    """Every revision the database has, including those implied by the recorded heads.

    Alembic records only the heads of each branch; a revision that another one depends on is
    implied by it and is not listed itself.
    """
    current = current_revisions(engine)
    if not current:
        return set()
    script = ScriptDirectory.from_config(alembic_config(url))
    try:
        return {
            rev.revision
            for rev in script.revision_map.iterate_revisions(tuple(current), "base", inclusive=True)
            if rev is not None
        }
    except Exception:  # noqa: BLE001 - an unknown revision in the table means "not current"
        return set(current)


def assert_migrated(engine: Engine, url: str) -> None:
    """`NotMigratedError` unless every migration is applied (a missing SQLite file has none)."""
    wanted = heads(url)
    try:
        applied = applied_revisions(engine, url)
    except DatabaseNotFoundError:
        raise NotMigratedError(set(), wanted) from None
    if not wanted <= applied:
        raise NotMigratedError(current_revisions(engine), wanted)


def check_current(url: str) -> None:
    """Refuse a database that is missing, unreachable or not at the current schema, before a
    command uses it: `DatabaseNotFoundError` (SQLite file absent; never created here),
    `DatabaseUnavailableError`, or `NotMigratedError`."""
    path = sqlite_file(normalise_url(url))
    if path is not None and not path.is_file():
        raise DatabaseNotFoundError(str(path))
    engine = single_connection_engine(url)
    try:
        assert_migrated(engine, url)
    except DBAPIError as exc:
        raise unavailable(url, exc) from None
    finally:
        engine.dispose()
