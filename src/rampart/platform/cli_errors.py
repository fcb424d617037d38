"""The `rampart` command's one error boundary: every failure is one line on stderr, never a
traceback.

The root Typer app is built with `cls=OneLineErrors`, so every command of every domain runs
inside `OneLineErrors.invoke`. A refusal (`RampartError`), a missing, unreachable or unmigrated
database, an unreadable file and an invalid setting each become one line naming the problem, with
exit code 1 (2 for the configuration, as for usage errors, which Click reports itself). Anything
else is a bug: one line with its type, and the traceback only when `RAMPART_DEBUG` asks for it,
since a driver's or library's message may quote SQL or data.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from pydantic import ValidationError as SettingsValidationError
from sqlalchemy.exc import DBAPIError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from rampart.config import ConfigError
from rampart.kernel.errors import RampartError
from rampart.platform.db import DatabaseNotFoundError
from rampart.platform.migrate import DatabaseUnavailableError, NotMigratedError

#: Exit code of a refusal or a failure; Click uses 2 for usage errors.
FAILED = 1
MISCONFIGURED = 2
_MAX_MESSAGE = 300


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return (lines[0] if lines else "")[:_MAX_MESSAGE]


def _settings_problem(exc: SettingsValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid settings"
    first = errors[0]
    name = "RAMPART_" + "__".join(str(part) for part in first.get("loc", ())).upper()
    return f"invalid setting {name}: {first.get('msg', 'invalid value')}"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code for `exc`; None for what is not ours to report (re-raised)."""
    if isinstance(exc, RampartError):
        return f"refused: {_first_line(exc.detail or exc.code)}", FAILED
    if isinstance(exc, DatabaseNotFoundError | DatabaseUnavailableError):
        return str(exc), FAILED
    if isinstance(exc, NotMigratedError):
        return "schema is not current (run `rampart db upgrade`)", FAILED
    if isinstance(exc, DBAPIError):
        # The driver's first line names the cause; the statement and parameters that SQLAlchemy
        # appends below it stay out of the terminal (they may hold personal data).
        return f"database error: {_first_line(str(exc.orig or type(exc).__name__))}", FAILED
    if isinstance(exc, ConfigError):
        return "the configuration is unsafe: " + "; ".join(exc.problems), MISCONFIGURED
    if isinstance(exc, SettingsValidationError):
        return _settings_problem(exc), MISCONFIGURED
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot use{where}: {exc.strerror or type(exc).__name__}", FAILED
    if isinstance(exc, Exception):
        return (
            f"unexpected error ({type(exc).__name__}); set RAMPART_DEBUG=1 to see where",
            FAILED,
        )
    return None


def _debugging() -> bool:
    return os.environ.get("RAMPART_DEBUG", "").strip().lower() in ("1", "true", "yes")


class OneLineErrors(TyperGroup):
    """The root command group: runs the chosen command and turns its failure into one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # exit codes, usage errors and Ctrl-C: Click reports those itself
        except Exception as exc:
            described = describe(exc)
            if described is None or (_debugging() and described[0].startswith("unexpected")):
                raise
            message, code = described
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code) from None
