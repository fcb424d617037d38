"""The `rampart` command.

Every command runs inside one error boundary (`rampart.platform.cli_errors.OneLineErrors`): a
failure is one line on stderr and a non-zero exit, never a traceback. Every command but
`db upgrade` opens an existing, current database only (`_container` checks it first), so a typo
in a path or URL is refused instead of becoming a new, empty database.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from rampart import __version__
from rampart.apikeys.cli import mount as mount_apikeys_cli
from rampart.audit.cli import app as audit_app
from rampart.identity.cli import mount as mount_users_cli
from rampart.ledger.cli import mount as mount_ledger_cli
from rampart.platform.cli_errors import OneLineErrors
from rampart.risk.cli import mount as mount_risk_cli
from rampart.trading.cli import mount as mount_trading_cli
from rampart.vault.cli import mount as mount_vault_cli

app = typer.Typer(
    name="rampart",
    help="Rampart: a security-first trading platform core.",
    no_args_is_help=True,
    add_completion=False,
    cls=OneLineErrors,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

console = Console(stderr=True, soft_wrap=True)

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[
    int | None, typer.Option(help="Port to listen on (default: RAMPART_PORT or 8000).")
]


def _refuse(problems: list[str]) -> typer.Exit:
    console.print("[bold red]Refusing to start: the configuration is unsafe.[/]")
    for problem in problems:
        # Printed as data: a problem may quote a setting's value, never read as markup.
        console.print(f"  - {problem}", markup=False, highlight=False)
    return typer.Exit(2)


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    from rampart.config import ConfigError, load_settings

    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise _refuse(exc.problems) from None


def _serving_settings(**overrides: object):  # type: ignore[no-untyped-def]
    """The settings `serve` runs with, after the production pre-flight: every problem, from the
    settings and from connecting to the database and Redis, listed together."""
    from rampart.config import ConfigError, Settings
    from rampart.platform.preflight import preflight

    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        problems = preflight(settings)
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        raise _refuse(problems)
    return settings


def _container(database_url: str | None = None, *, check: bool = True):  # type: ignore[no-untyped-def]
    """The wired platform on the configured database (or `database_url`).

    `check` refuses a database that is missing, unreachable or not at the current schema before
    anything uses it; only a restore, which builds the database it then opens, skips it.
    """
    from rampart.bootstrap import bootstrap
    from rampart.platform.migrate import check_current

    settings = _settings(**({"database_url": database_url} if database_url else {}))
    if check:
        check_current(settings.effective_database_url)
    return bootstrap(settings)


mount_vault_cli(app, _container)  # `rampart keys ...` and `rampart backup ...`
mount_users_cli(app, _container)  # `rampart users create|lock|unlock|rotate-signing-key`
mount_apikeys_cli(app, _container)  # `rampart apikeys list|revoke|revoke-leaked|flag-old`
mount_ledger_cli(app, _container)  # `rampart ledger deposit|verify`
mount_trading_cli(app, _container)  # `rampart trading instruments|define|status|expire-day`
mount_risk_cli(app, _container)  # `rampart halt ...` (kill switch) and `rampart risk ...`


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"rampart {__version__}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending schema migration."""
    from rampart.platform.migrate import upgrade

    settings = _settings()
    upgrade(settings.effective_database_url, attributes=_migration_attributes(settings))
    console.print("database schema is up to date")


@db_app.command("grant-app-role")
def db_grant_app_role(
    role: str = typer.Argument(..., help="The service's database role (owns nothing)."),
    apply: bool = typer.Option(
        False, "--apply", help="Run the statements as the configured (owner) database user."
    ),
) -> None:
    """Print (or apply) the least-privilege grants of the service's PostgreSQL role."""
    from sqlalchemy import text

    from rampart.access.grants import InvalidRoleNameError, app_role_grants
    from rampart.platform.db import single_connection_engine

    try:
        statements = app_role_grants(role)
    except InvalidRoleNameError as exc:
        console.print(f"[bold red]Error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    if not apply:
        for statement in statements:
            typer.echo(f"{statement};")
        return
    settings = _settings()
    engine = single_connection_engine(settings.effective_database_url)
    try:
        if engine.dialect.name != "postgresql":
            console.print("[bold red]Error:[/] database roles are a PostgreSQL feature")
            raise typer.Exit(2)
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    console.print(f"granted the service's privileges to {role}", markup=False)


def _migration_attributes(settings: Any) -> dict[str, Any]:
    from rampart.vault.setup import migration_attributes

    return migration_attributes(settings)


def _serve(host: str, port: int | None, *, demo: bool) -> None:
    import uvicorn

    from rampart.bootstrap import bootstrap
    from rampart.platform.db import DatabaseNotFoundError
    from rampart.platform.logging import configure_logging
    from rampart.platform.migrate import NotMigratedError, check_current, upgrade
    from rampart.platform.runtime import settle_heap
    from rampart.web.app import create_app

    port = port or int(os.environ.get("RAMPART_PORT", "8000"))
    # The demo runs the market simulator: a live market of demo agents (rampart.simulator), and
    # logs for a person at a console (`serve` keeps JSON lines for machines).
    demo_overrides: dict[str, object] = (
        {"profile": "dev", "trading": {"simulator": True}, "log_json": False} if demo else {}
    )
    settings = _serving_settings(host=host, port=port, **demo_overrides)
    configure_logging(settings.log_level, json=settings.log_json)
    if demo:
        _quiet_demo_logs()
        upgrade(settings.effective_database_url, attributes=_migration_attributes(settings))
    try:
        check_current(settings.effective_database_url)
    except DatabaseNotFoundError as exc:
        console.print(f"[bold red]Refusing to serve:[/] {exc}")
        raise typer.Exit(2) from None
    except NotMigratedError:
        console.print(
            "[bold red]Refusing to serve:[/] the database schema is not current. "
            "Run `rampart db upgrade` first."
        )
        raise typer.Exit(2) from None
    container = bootstrap(settings)
    application = create_app(container)
    if demo:
        _start_demo(container, host, port, str(settings.data_dir))
    settle_heap()
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # Uvicorn would otherwise buffer WebSocket frames up to 16 MiB before our limit applies.
        ws_max_size=settings.max_body_bytes,
    )


def _quiet_demo_logs() -> None:
    import logging

    # One line per request, per audit checkpoint and per migration drowns the demo's own output;
    # warnings and errors of these loggers still show.
    for name in ("rampart.access", "rampart.audit.checkpoints", "alembic", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _start_demo(container, host: str, port: int, data_dir: str) -> None:  # type: ignore[no-untyped-def]
    """Create the demo trader and bot (rampart.simulator.demo), print how to sign in, and have
    the bot trade over HTTP once the server is up."""
    from rampart.simulator.demo import DemoBotRunner, banner, provision_demo

    accounts = provision_demo(container)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared only
    base = f"http://{local}:{port}"
    # The trader's password is printed here, on stdout, and nowhere else (never logged).
    out = Console(soft_wrap=True, highlight=False)
    for line in banner(accounts, base, data_dir):
        out.print(line)
    sys.stdout.flush()
    # Last in `closers`: started after the engine, stopped before it.
    container.closers.append(DemoBotRunner(container.orders, base, accounts.bot))


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = None) -> None:
    """Serve the API with the configured settings (refuses an unmigrated database)."""
    _serve(host, port, demo=False)


@app.command()
def demo(host: HostOption = "127.0.0.1", port: PortOption = None) -> None:
    """Migrate and serve the embedded default (SQLite under ./var) with demo data."""
    _serve(host, port, demo=True)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
