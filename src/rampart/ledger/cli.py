"""`rampart ledger`: operator commands on cash accounts (deposits, verification)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from rampart.kernel.errors import RampartError

console = Console(stderr=True, soft_wrap=True)


def mount(root: typer.Typer, container: Callable[[], Any]) -> None:
    """Add `rampart ledger ...` to the root command; `container` builds the wired platform."""
    app = typer.Typer(help="Cash accounts and the journal.", no_args_is_help=True)

    @app.command("deposit")
    def deposit(
        user: Annotated[str, typer.Option("--user", help="The user id to credit.")],
        amount: Annotated[str, typer.Option("--amount", help="Decimal amount, e.g. 2500.00")],
        memo: Annotated[str | None, typer.Option(help="A note kept with the entry.")] = None,
    ) -> None:
        """Credit a user's cash account from outside the platform (audited)."""
        c = container()
        try:
            # Asked of identity: a mistyped id would otherwise open a cash account for nobody.
            with c.db.read() as session:
                if not c.identity.accounts.is_active(session, user):
                    console.print(f"[bold red]refused:[/] no active user has the id {user[:64]!r}")
                    raise typer.Exit(1)
            with c.uow() as uow:
                account = c.ledger.deposit(uow, user, amount, memo)
                uow.commit()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        console.print(
            f"deposited {amount} to {user}: balance {account.balance}, "
            f"buying power {account.buying_power}"
        )

    @app.command("verify")
    def verify() -> None:
        """Check that every entry balances and every balance equals its postings."""
        c = container()
        try:
            with c.db.read() as session:
                problems = c.ledger.verify(session)
        finally:
            c.close()
        for problem in problems:
            console.print(f"[red]{problem}[/]")
        if problems:
            raise typer.Exit(1)
        console.print("ledger balances: every entry sums to zero, balances match postings")

    root.add_typer(app, name="ledger")
