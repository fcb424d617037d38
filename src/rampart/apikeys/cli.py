"""`rampart apikeys`: operator commands on API keys (support and incident response).

A leaked secret is read from a file or a hidden prompt, never from the command line, where it
would sit in the shell history and the process list. Every revocation is audited and the owner
is told by email.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampart.apikeys.jobs import flag_old_keys
from rampart.apikeys.views import ApiKeyView
from rampart.kernel.errors import RampartError
from rampart.kernel.events import AuditEvent

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

OPERATOR = "system:cli"


def _user_id(c: Any, email: str | None, user_id: str | None) -> str:
    if (email is None) == (user_id is None):
        console.print("[bold red]refused:[/] give exactly one of --email or --user-id")
        raise typer.Exit(2)
    if user_id is not None:
        # Listing (and auditing the look at) the keys of a mistyped id would show "no keys".
        with c.db.read() as session:
            known = c.identity.accounts.exists(session, user_id[:64])
        if not known:
            console.print(f"[bold red]refused:[/] no user has the id {user_id[:64]!r}")
            raise typer.Exit(1)
        return user_id[:64]
    from rampart.identity.domain import InvalidEmailError, normalise_email

    try:
        address = normalise_email(email or "")
    except InvalidEmailError:
        address = ""
    with c.db.read() as session:
        row = c.identity.accounts.by_email(session, address) if address else None
    if row is None:
        console.print("[bold red]refused:[/] no account has that email")
        raise typer.Exit(1)
    return str(row.id)


def _row(view: ApiKeyView) -> dict[str, Any]:
    return {
        "id": view.id,
        "label": view.label,
        "algorithm": view.algorithm,
        "scopes": view.scopes,
        "state": view.state,
        "old": view.old,
        "created_at": view.created_at.isoformat(),
        "expires_at": view.expires_at.isoformat() if view.expires_at else None,
        "last_used_at": view.last_used_at.isoformat() if view.last_used_at else None,
        "last_used_ip": view.last_used_ip,
        "secret_hint": view.secret_hint,
    }


def _read_secret(secret_file: Path | None) -> str:
    if secret_file is not None:
        return secret_file.read_text(encoding="utf-8").strip()
    return str(typer.prompt("Leaked secret", hide_input=True)).strip()


def mount(root: typer.Typer, container: Callable[[], Any]) -> None:
    """Add `rampart apikeys ...` to the root command; `container` builds the wired platform."""
    app = typer.Typer(help="API keys: list, revoke, revoke leaked secrets, flag old keys.")

    @app.command("list")
    def list_keys(
        email: Annotated[str | None, typer.Option("--email", help="The owner's address.")] = None,
        user_id: Annotated[str | None, typer.Option("--user-id", help="The owner's id.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    ) -> None:
        """A user's keys, newest first (never a secret; the hint is its public prefix)."""
        c = container()
        try:
            owner = _user_id(c, email, user_id)
            with c.uow() as uow:
                views = c.apikeys.list_for_user(uow.session, owner)
                # Staff looking at a customer's credentials is itself worth a record.
                uow.audit(
                    AuditEvent(
                        action="apikey.listed-by-operator",
                        subject=f"user:{owner}",
                        actor=OPERATOR,
                        details={"count": len(views)},
                    )
                )
                uow.commit()
        finally:
            c.close()
        if as_json:
            for view in views:
                out.print(json.dumps(_row(view)), highlight=False)
            return
        table = Table()
        # The id is what `revoke` takes: never truncated, whatever the terminal's width.
        table.add_column("id", no_wrap=True, min_width=36)
        for name in ("label", "algorithm", "scopes", "state", "old", "created", "last used"):
            table.add_column(name)
        for view in views:
            table.add_row(
                view.id,
                view.label or "",
                view.algorithm,
                ",".join(view.scopes),
                view.state,
                "yes" if view.old else "",
                view.created_at.strftime("%Y-%m-%d"),
                view.last_used_at.strftime("%Y-%m-%d %H:%M") if view.last_used_at else "never",
            )
        out.print(table)

    @app.command("revoke")
    def revoke(
        key_id: Annotated[str, typer.Argument(help="The key's id (its `keyid`).")],
        reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    ) -> None:
        """Revoke one key at once; requests signed with it are refused from now on."""
        c = container()
        try:
            with c.uow() as uow:
                view = c.apikeys.revoke_by_operator(uow, key_id[:64], reason=reason[:400])
                uow.commit()
            c.outbox_worker.drain()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        console.print(f"revoked API key {view.id}")

    @app.command("revoke-leaked")
    def revoke_leaked(
        secret_file: Annotated[
            Path | None,
            typer.Option("--secret-file", help="Read the leaked secret from this file."),
        ] = None,
    ) -> None:
        """Revoke the key whose secret was found in public (a secret scanner's report)."""
        secret = _read_secret(secret_file)
        c = container()
        try:
            with c.uow() as uow:
                key_id = c.apikeys.revoke_leaked(uow, secret)
                uow.commit()
            c.outbox_worker.drain()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        if key_id is None:
            console.print("no key has that secret (already deleted, or not ours)")
            raise typer.Exit(1)
        console.print(f"revoked API key {key_id}")
        typer.echo(key_id)

    @app.command("flag-old")
    def flag_old() -> None:
        """Flag keys older than `apikeys.max_age_days` and email their owners (once per key)."""
        c = container()
        try:
            flagged = flag_old_keys(c.apikeys, c.uow)
            c.outbox_worker.drain()
        finally:
            c.close()
        console.print(f"flagged {flagged} old API key(s); their owners were notified")
        typer.echo(flagged)

    root.add_typer(app, name="apikeys")
