"""`rampart trading`: instruments, halts, and the end-of-day expiry of day orders.

These commands may run while a server is running: the order engine they start takes the venue's
epoch lock like any other, and the server's engine rebuilds its books after them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampart.kernel.errors import RampartError, ValidationError
from rampart.kernel.money import MoneyError, to_decimal
from rampart.trading.domain import fmt
from rampart.venue.domain import Instrument, InstrumentStatus

console = Console(stderr=True, soft_wrap=True)


def _decimal(option: str, text: str) -> Decimal:
    """A decimal option, or a refusal that names the option (not Python's exception class)."""
    try:
        return to_decimal(text.strip())
    except MoneyError as exc:
        raise ValidationError(f"{option}: {exc}") from None


def _optional(option: str, text: str | None) -> Decimal | None:
    return None if text is None else _decimal(option, text)


def _limit(value: Decimal | None) -> str:
    return fmt(value) or "-"


def mount(root: typer.Typer, container: Callable[[], Any]) -> None:
    app = typer.Typer(help="Instruments and trading sessions.", no_args_is_help=True)

    @app.command("instruments")
    def instruments() -> None:
        """List instruments."""
        c = container()
        try:
            table = Table(
                "symbol", "name", "tick", "lot", "max qty", "max price", "min price", "status",
                "reference",
            )  # fmt: skip
            for i in c.orders.instruments():
                table.add_row(
                    i.symbol,
                    i.name,
                    str(i.tick_size),
                    str(i.lot_size),
                    _limit(i.max_quantity),
                    _limit(i.max_price),
                    _limit(i.min_price),
                    i.status.value,
                    str(i.reference_price),
                )
            Console().print(table)
        finally:
            c.close()

    @app.command("define")
    def define(
        symbol: str,
        name: Annotated[str, typer.Option()],
        price: Annotated[str, typer.Option(help="Reference price.")],
        tick: Annotated[str, typer.Option()] = "0.01",
        lot: Annotated[str, typer.Option()] = "1",
        easy_to_borrow: Annotated[bool, typer.Option()] = True,
        threshold: Annotated[bool, typer.Option()] = False,
        max_quantity: Annotated[
            str | None, typer.Option(help="Largest quantity of one order (default: 10,000,000).")
        ] = None,
        max_price: Annotated[
            str | None, typer.Option(help="Highest limit or stop price (default: 10,000,000).")
        ] = None,
        min_price: Annotated[
            str | None, typer.Option(help="Lowest limit or stop price (default: any above 0).")
        ] = None,
    ) -> None:
        """Create or redefine an instrument (a redefinition states every limit it keeps)."""
        try:
            instrument = Instrument(
                symbol,
                name,
                _decimal("--tick", tick),
                _decimal("--lot", lot),
                InstrumentStatus.ACTIVE,
                _decimal("--price", price),
                easy_to_borrow,
                threshold,
                max_quantity=_optional("--max-quantity", max_quantity),
                max_price=_optional("--max-price", max_price),
                min_price=_optional("--min-price", min_price),
            )
        except (RampartError, ValueError) as exc:
            console.print(f"[bold red]refused:[/] {getattr(exc, 'detail', exc)}")
            raise typer.Exit(1) from None
        c = container()
        try:
            with c.uow() as uow:
                c.instruments.upsert(uow, instrument)
                uow.commit()
        except (RampartError, ValueError, ArithmeticError) as exc:
            console.print(f"[bold red]refused:[/] {getattr(exc, 'detail', exc)}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        console.print(f"{symbol} defined")

    @app.command("status")
    def status(
        symbol: str,
        new_status: Annotated[InstrumentStatus, typer.Argument(metavar="active|halted|restricted")],
    ) -> None:
        """Halt, restrict or reactivate an instrument."""
        c = container()
        try:
            with c.uow() as uow:
                c.instruments.set_status(uow, symbol, new_status)
                uow.commit()
        except RampartError as exc:
            console.print(f"[bold red]refused:[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        console.print(f"{symbol} is now {new_status.value}")

    @app.command("expire-day")
    def expire_day() -> None:
        """End of the trading day: every open DAY order expires and frees what it held."""
        c = container()
        c.orders.engine.start()
        try:
            count = c.orders.expire_day_orders()
        finally:
            c.orders.engine.stop()
            c.close()
        console.print(f"{count} day orders expired")

    root.add_typer(app, name="trading")
