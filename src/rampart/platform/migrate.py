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

from rampart.platform.db import normalise_url, single_connection_engine

PACKAGE_DIR = Path(__file__).resolve().parent.parent


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
    """Take the schema to `revision`. `attributes` reach the migrations (`context.config.
    attributes`): services a data migration needs, such as the vault that seals existing rows
    (`identity_0002`), which only the caller can build from its settings."""
    engine = single_connection_engine(url)
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
    applied, wanted = applied_revisions(engine, url), heads(url)
    if not wanted <= applied:
        raise NotMigratedError(current_revisions(engine), wanted)
