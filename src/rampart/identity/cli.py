"""`rampart users`: operator commands on accounts (the first admin, test users, locks).

The password comes from a hidden prompt (asked twice) or from `--password-file`, never from the
command line, where it would sit in the shell history and the process list.

A staff account (any role that gives more than a trader's permissions) gets no password here: the
command prints a single-use enrolment link instead, on whose page the account's owner chooses a
password and registers a security key (WebAuthn). Without that key the account can do nothing a
trader could not (`rampart.access.domain.person_principal`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rampart.identity.domain import normalise_email
from rampart.kernel.errors import RampartError

console = Console(stderr=True, soft_wrap=True)

OPERATOR = "system:cli"


def _read_password(password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _user_id(c: Any, email: str) -> str:
    with c.db.read() as session:
        row = c.identity.accounts.by_email(session, normalise_email(email))
        user_id = row.id if row is not None else None
    if user_id is None:
        console.print("[bold red]refused:[/] no account has that email")
        raise typer.Exit(1)
    return str(user_id)


def _is_staff_role(c: Any, role: str) -> bool:
    from rampart.access.domain import is_staff

    with c.db.read() as session:
        permissions = c.access.list_roles(session).get(role)
    return permissions is not None and is_staff(permissions)


def _print_enrolment_link(c: Any, link: str) -> None:
    hours = c.settings.identity.staff_enrolment_hours
    typer.echo(link)
    console.print(
        f"give this single-use enrolment link (valid {hours} hours) to the account's owner: "
        "they set their password and register a security key there"
    )


def mount(root: typer.Typer, container: Callable[[], Any]) -> None:
    """Add `rampart users ...` to the root command; `container` builds the wired platform."""
    app = typer.Typer(help="User accounts.", no_args_is_help=True)

    @app.command("create")
    def create(
        email: Annotated[str, typer.Option("--email", help="The sign-in address.")],
        role: Annotated[str, typer.Option("--role", help="TRADER, ADMIN, COMPLIANCE, SUPPORT...")],
        verified: Annotated[
            bool, typer.Option("--verified", help="Treat the address as confirmed already.")
        ] = False,
        password_file: Annotated[
            Path | None,
            typer.Option("--password-file", help="Read the password from this file."),
        ] = None,
    ) -> None:
        """Create an account with a role (audited). Prompts for a trader's password, which its
        owner must replace at the first sign-in; prints a staff account's enrolment link
        instead."""
        c = container()
        link: str | None = None
        try:
            address = normalise_email(email)
            staff = _is_staff_role(c, role)
            if staff and password_file is not None:
                console.print(
                    "[bold red]refused:[/] a staff account sets its own password on its "
                    "enrolment link; leave out --password-file"
                )
                raise typer.Exit(1)
            password_hash = None
            if not staff:
                password = c.identity.policy.check(_read_password(password_file), address)
                password_hash = c.identity.hashing.hasher.hash(password)
            with c.uow() as uow:
                # A password the operator chose is only a way in to choose one's own.
                user_id = c.identity.accounts.create_user(
                    uow,
                    address,
                    password_hash,
                    role=role,
                    verified=verified,
                    created_by=OPERATOR,
                    must_change_password=password_hash is not None,
                )
                if staff:
                    link = c.identity.accounts.staff_enrolment_link(
                        uow, user_id, issued_by=OPERATOR
                    )
                uow.commit()
            if not verified:
                c.outbox_worker.drain()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        typer.echo(user_id)
        console.print(f"created user {user_id} with role {role}")
        if link is not None:
            _print_enrolment_link(c, link)

    @app.command("enrolment-link")
    def enrolment_link(
        email: Annotated[str, typer.Option("--email", help="The staff account's address.")],
    ) -> None:
        """A new single-use enrolment link for a staff account (a promoted user, a lost key);
        earlier unused links of the account stop working."""
        c = container()
        try:
            user_id = _user_id(c, email)
            with c.uow() as uow:
                link = c.identity.accounts.staff_enrolment_link(uow, user_id, issued_by=OPERATOR)
                uow.commit()
            _print_enrolment_link(c, link)
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()

    @app.command("lock")
    def lock(
        email: Annotated[str, typer.Option("--email")],
        reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    ) -> None:
        """Lock an account: no sign-in, and every session and token stops working at once."""
        c = container()
        try:
            user_id = _user_id(c, email)
            with c.uow() as uow:
                c.identity.accounts.set_locked(uow, user_id, True, reason=reason)
                uow.commit()
        finally:
            c.close()
        console.print(f"locked user {user_id}")

    @app.command("unlock")
    def unlock(
        email: Annotated[str, typer.Option("--email")],
        reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    ) -> None:
        """Unlock an account locked by an operator."""
        c = container()
        try:
            user_id = _user_id(c, email)
            with c.uow() as uow:
                c.identity.accounts.set_locked(uow, user_id, False, reason=reason)
                uow.commit()
        finally:
            c.close()
        console.print(f"unlocked user {user_id}")

    @app.command("reset-password")
    def reset_password(
        email: Annotated[str, typer.Option("--email", help="The account's address.")],
        reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    ) -> None:
        """Email the account a single-use link to reset its password (audited). The link goes
        to the account's address only and is not shown here: nobody but its owner chooses the
        new password."""
        c = container()
        try:
            user_id = _user_id(c, email)
            with c.uow() as uow:
                c.identity.accounts.send_password_reset_for_operator(
                    uow, user_id, reason=reason, actor=OPERATOR
                )
                uow.commit()
            c.outbox_worker.drain()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        console.print(f"sent user {user_id} a password reset link")

    sessions = typer.Typer(help="Sign-ins: end them.", no_args_is_help=True)

    @sessions.command("end")
    def end_sessions(
        reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
        email: Annotated[
            str | None, typer.Argument(help="The user whose sessions end.", show_default=False)
        ] = None,
        everyone: Annotated[
            bool, typer.Option("--all", help="End every user's sessions instead.")
        ] = False,
    ) -> None:
        """End a user's sessions and tokens, or everyone's (--all), at once, audited; their open
        streams close within seconds."""
        if (email is None) == (not everyone):
            console.print("[bold red]refused:[/] name one user's email, or give --all")
            raise typer.Exit(1)
        c = container()
        try:
            with c.uow() as uow:
                if everyone:
                    ended = c.identity.sessions.revoke_everyone(uow, reason=reason, actor=OPERATOR)
                else:
                    assert email is not None
                    user_id = _user_id(c, email)
                    ended = c.identity.sessions.end_user_sessions(
                        uow, user_id, reason=reason, actor=OPERATOR
                    )
                uow.commit()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        console.print(f"ended {ended} session(s)")

    app.add_typer(sessions, name="sessions")

    @app.command("rotate-signing-key")
    def rotate_signing_key() -> None:
        """Start signing access tokens with a new key; the old one stays published until the
        tokens it signed have expired, so nobody is signed out."""
        c = container()
        try:
            kid = c.identity.keys.rotate()
        finally:
            c.close()
        console.print(f"access tokens are now signed with key {kid}")

    root.add_typer(app, name="users")
