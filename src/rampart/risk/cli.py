"""`rampart halt ...` (the kill switch) and `rampart risk ...` (limits, states, restricted list,
locates, events).

Every command acts as a named person (`--as USER_ID`), with the permissions that person's roles
grant: the CLI is a second door to the same use cases, not a way around their checks. Resuming a
halt takes two commands by two different people. An `--as` user or an account id that names no
account is refused as such (`no-such-user`, `no-such-account`), before anything is recorded.

A halt made here reaches a running server's order engine within
`risk.controls_refresh_seconds` (its worker reloads halts from the database); the server's own
API makes it effective at once. Pending orders are cancelled by the process that declares the
halt, through the order engine it starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rampart.kernel.context import current_context, reset_context, set_context
from rampart.kernel.errors import NotFoundError, RampartError

console = Console(stderr=True, soft_wrap=True)

AsOption = Annotated[str, typer.Option("--as", help="Your user id: the person acting.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]
AccountOption = Annotated[
    str | None, typer.Option("--account", help="An account id (default: the platform).")
]


class NoSuchUserError(NotFoundError):
    code = "no-such-user"
    title = "No such user"


class NoSuchAccountError(NotFoundError):
    code = "no-such-account"
    title = "No such account"


def _known(c: Any, session: Any, user_id: str, error: type[NotFoundError], what: str) -> None:
    """Refuse an id that names no account (identity's `exists`, not its tables): a typo must
    not be reported as a permission problem, nor record a halt or limit on nobody while the
    account meant stays untouched."""
    if not c.identity.accounts.exists(session, user_id[:64]):
        raise error(f"{what} {user_id[:64]!r}")


def _principal(c: Any, user_id: str) -> Any:
    from rampart.access.domain import Principal

    now = c.clock.now()
    with c.db.read() as session:
        _known(c, session, user_id, NoSuchUserError, "no such user (--as)")
        roles = c.access.roles_of(session, user_id, now)
        permissions = c.access.permissions_of(session, user_id, now)
    return Principal(
        actor=f"user:{user_id}",
        user_id=user_id,
        roles=roles,
        permissions=permissions,
        method="session",
        credential_id=f"cli:{user_id}",
    )


def _run(container: Callable[[], Any], user_id: str, action: Callable[[Any, Any], Any]) -> Any:
    """Run `action(container, principal)` with the audit actor set; refusals exit 1."""
    c = container()
    token = set_context(current_context().with_actor(f"user:{user_id}"))
    try:
        with c.db.read() as session:
            c.risk.load(session)
        return action(c, _principal(c, user_id))
    except RampartError as exc:
        console.print(f"[bold red]refused ({exc.code}):[/] {exc.detail}")
        raise typer.Exit(1) from None
    finally:
        reset_context(token)
        c.close()


def _account(c: Any, account_id: str | None) -> None:
    """Refuse an `--account` (or account argument) that names no account."""
    if account_id is not None:
        with c.db.read() as session:
            _known(c, session, account_id, NoSuchAccountError, "no such account")


def _listed(c: Any, uow: Any, symbol: str) -> None:
    """Refuse a symbol that is not a defined instrument (`unknown-instrument`): a typo must not
    record a locate, halt or restriction for a symbol nobody trades while the one meant stays
    open."""
    c.instruments.get(uow, symbol.strip().upper()[:16])


def _with_engine(c: Any) -> None:
    """Let this process cancel pending orders: start its order engine while the command runs,
    when trading provides a canceller."""
    canceller = getattr(c.orders, "cancel_open_orders", None)
    if canceller is not None:
        c.orders.engine.start()
        c.risk.canceller = c.orders


def mount(root: typer.Typer, container: Callable[[], Any]) -> None:
    halt_app = typer.Typer(help="Trading halts: the kill switch.", no_args_is_help=True)
    risk_app = typer.Typer(help="Risk limits, trading states, locates and events.",
                           no_args_is_help=True)  # fmt: skip

    @halt_app.command("market")
    def halt_market(who: AsOption, reason: ReasonOption) -> None:
        """Halt all trading, everywhere."""
        _halt(container, who, "market", None, reason)

    @halt_app.command("symbol")
    def halt_symbol(symbol: str, who: AsOption, reason: ReasonOption) -> None:
        """Halt trading in one symbol."""
        _halt(container, who, "symbol", symbol, reason)

    @halt_app.command("account")
    def halt_account(account_id: str, who: AsOption, reason: ReasonOption) -> None:
        """Halt trading on one account."""
        _halt(container, who, "account", account_id, reason)

    @halt_app.command("list")
    def halt_list(
        all_: Annotated[bool, typer.Option("--all", help="Include lifted halts.")] = False,
    ) -> None:
        """List halts (active ones unless --all)."""
        c = container()
        try:
            with c.db.read() as session:
                halts = c.risk.halts(session, active_only=not all_)
        finally:
            c.close()
        table = Table("id", "scope", "target", "status", "by", "at", "resume asked by")
        for h in halts:
            table.add_row(h.id, h.scope, h.target, h.status, h.halted_by,
                          h.halted_at.isoformat(), h.resume_requested_by or "")  # fmt: skip
        Console().print(table)

    @halt_app.command("request-resume")
    def request_resume(halt_id: str, who: AsOption, reason: ReasonOption) -> None:
        """First of four eyes: ask to resume. A different person must approve."""

        def act(c: Any, principal: Any) -> None:
            with c.uow() as uow:
                c.risk.request_resume(uow, principal, halt_id, reason)
                uow.commit()

        _run(container, who, act)
        console.print("resume requested; another person must approve it")

    @halt_app.command("approve-resume")
    def approve_resume(halt_id: str, who: AsOption) -> None:
        """Second of four eyes: approve someone else's request, and trading resumes."""
        from rampart.risk.halts import FourEyesError

        def act(c: Any, principal: Any) -> None:
            with c.uow() as uow:
                try:
                    c.risk.approve_resume(uow, principal, halt_id)
                except FourEyesError:
                    uow.rollback()
                    c.risk.record_four_eyes_refusal(uow, principal, halt_id)
                    uow.commit()
                    raise
                uow.commit()

        _run(container, who, act)
        console.print("trading resumed")

    @risk_app.command("limits")
    def limits(account: AccountOption = None) -> None:
        """Show the effective limits of an account (or the platform) and their overrides."""
        c = container()
        try:
            _account(c, account)
            with c.db.read() as session:
                c.risk.load(session)
                view = c.risk.limits(session, account)
        except RampartError as exc:
            console.print(f"[bold red]refused ({exc.code}):[/] {exc.detail}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        typer.echo(json.dumps(view, indent=2))

    @risk_app.command("set-limit")
    def set_limit(
        name: str,
        value: Annotated[str, typer.Argument(help="A number, or `inherit` to drop the override.")],
        who: AsOption,
        reason: ReasonOption,
        account: AccountOption = None,
    ) -> None:
        """Change one limit of an account, or of the platform's defaults (admins only)."""

        def act(c: Any, principal: Any) -> dict[str, Any]:
            _account(c, account)
            with c.uow() as uow:
                result: dict[str, Any] = c.risk.set_limits(
                    uow, principal, account, {name: None if value == "inherit" else value},
                    reason,
                )  # fmt: skip
                uow.commit()
            return result

        typer.echo(json.dumps(_run(container, who, act), indent=2))

    @risk_app.command("state")
    def state(
        value: Annotated[str, typer.Argument(help="active or reducing")],
        who: AsOption,
        reason: ReasonOption,
        account: AccountOption = None,
    ) -> None:
        """Move an account (or the platform) to ACTIVE or REDUCING."""
        from rampart.risk.domain import TradingState

        if value not in ("active", "reducing"):
            console.print("[bold red]refused:[/] the state is `active` or `reducing`")
            raise typer.Exit(2)

        def act(c: Any, principal: Any) -> None:
            _account(c, account)
            with c.uow() as uow:
                c.risk.set_trading_state(uow, principal, account, TradingState(value), reason)
                uow.commit()

        _run(container, who, act)
        console.print(f"{account or 'platform'} is now {value}")

    @risk_app.command("band")
    def band(
        symbol: str,
        who: AsOption,
        reason: ReasonOption,
        percent: Annotated[
            str | None, typer.Option("--percent", help="Width in % of the reference (0: none).")
        ] = None,
        window: Annotated[
            int | None, typer.Option("--window", help="Seconds the reference is averaged over.")
        ] = None,
    ) -> None:
        """Give an instrument its own price band (limit-up/limit-down style); with neither
        option, it takes the platform's default again (risk administrators)."""
        from rampart.risk.price_bands import set_price_band

        try:
            width = None if percent is None else Decimal(percent)
        except InvalidOperation:
            console.print("[bold red]refused:[/] the percent is not a number")
            raise typer.Exit(2) from None

        def act(c: Any, principal: Any) -> dict[str, Any]:
            with c.uow() as uow:
                result = set_price_band(c.risk, uow, principal, symbol, width, window, reason)
                uow.commit()
            return result

        typer.echo(json.dumps(_run(container, who, act), indent=2))

    @risk_app.command("restrict")
    def restrict(
        symbol: str,
        who: AsOption,
        reason: ReasonOption,
        remove: Annotated[bool, typer.Option("--remove", help="Take it off the list.")] = False,
    ) -> None:
        """Put a symbol on (or take it off) the restricted list."""

        def act(c: Any, principal: Any) -> None:
            with c.uow() as uow:
                if not remove:  # taking a delisted symbol off the list stays possible
                    _listed(c, uow, symbol)
                (c.risk.unrestrict if remove else c.risk.restrict)(uow, principal, symbol, reason)
                uow.commit()

        _run(container, who, act)
        console.print(f"{symbol.upper()} {'removed from' if remove else 'added to'} the list")

    @risk_app.command("locate")
    def locate(
        account_id: str,
        symbol: str,
        quantity: str,
        who: AsOption,
        source: Annotated[str, typer.Option("--source", help="Lender or stock-loan reference.")],
    ) -> None:
        """Record a borrow (Reg SHO locate) for an account's short sales today."""
        try:
            amount = Decimal(quantity)
        except InvalidOperation:
            console.print("[bold red]refused:[/] the quantity is not a number")
            raise typer.Exit(2) from None

        def act(c: Any, principal: Any) -> dict[str, Any]:
            _account(c, account_id)
            with c.uow() as uow:
                _listed(c, uow, symbol)
                result: dict[str, Any] = c.risk.record_locate(
                    uow, principal, account_id, symbol, amount, source
                )
                uow.commit()
            return result

        typer.echo(json.dumps(_run(container, who, act), indent=2))

    @risk_app.command("events")
    def events(
        who: AsOption,
        account: AccountOption = None,
        kind: Annotated[str | None, typer.Option(help="rejection, halt, resume, ...")] = None,
        limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    ) -> None:
        """Risk events, newest first (compliance)."""

        def act(c: Any, principal: Any) -> list[Any]:
            _account(c, account)
            with c.db.read() as session:
                found: list[Any] = c.risk.events(
                    session, principal, account_id=account, kind=kind, limit=limit
                )
            return found

        table = Table("at", "kind", "code", "account", "symbol", "actor", "detail")
        for e in _run(container, who, act):
            table.add_row(e.occurred_at.isoformat(), e.kind, e.code or "", e.account_id or "",
                          e.symbol or "", e.actor, e.detail[:80])  # fmt: skip
        Console().print(table)

    root.add_typer(halt_app, name="halt")
    root.add_typer(risk_app, name="risk")


def _halt(
    container: Callable[[], Any], who: str, scope: str, target: str | None, reason: str
) -> None:
    from rampart.risk.domain import HaltScope

    def act(c: Any, principal: Any) -> dict[str, Any]:
        if scope == "account":
            _account(c, target)
        if scope == "symbol" and target is not None:
            with c.uow() as uow:
                _listed(c, uow, target)
        _with_engine(c)
        with c.uow() as uow:
            ticket = c.risk.halt(uow, principal, HaltScope(scope), target, reason)
            uow.commit()
        result: dict[str, Any] = ticket.as_dict()
        return result

    result = _run(container, who, act)
    typer.echo(json.dumps(result, indent=2))
    if result["cancelled_orders"] is None:
        console.print(
            "[yellow]pending orders were not cancelled by this command[/]: cancel them through "
            "the server, or halt through the API"
        )
