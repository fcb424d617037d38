"""The demo market's agents as real platform accounts, so that every pre-trade check runs on
their orders as on anyone's.

Each agent (`sim-maker-1`, `sim-noise-2`, ...) is an ordinary identity account, created the way
an operator creates one (`created_by="system:simulator"`, audited): active, its address (under
`.invalid`, which never resolves) verified by that operator creation, and a TOTP factor enrolled
through the MFA service. Its password and its TOTP key are random and discarded at once, so
nobody can sign in as an agent: the accounts trade only through the in-process simulator.
Compliance can suspend or halt an agent like any other account.

What sets them apart from a customer is written down, not switched off:

- explicit risk limits sized for a market maker and a busy noise trader (many orders a day, many
  executions in the repeated-execution window), set through
  `RiskService.set_platform_account_limits` with the actor `system:simulator`, recorded as
  limit-change risk events and audit entries, and overridable by an administrator;
- a daily locate per agent and demo symbol (Regulation SHO: a short sale needs a borrow), from a
  simulated stock-loan desk, recorded through `RiskService.record_locate` by a system principal.

Everything else applies: halts, trading states, restricted list, buying power, collars, size,
duplicate and throttle checks, margin and loss limits.
"""

from __future__ import annotations

import secrets
from datetime import date
from decimal import Decimal
from typing import Protocol

import pyotp

from rampart.access.domain import Permission, Principal, Role
from rampart.identity.mfa.service import MfaService
from rampart.identity.service import IdentityService
from rampart.kernel.clock import Clock
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.risk.gate import RiskGate
from rampart.risk.service import RiskService

log = get_logger(__name__)

ACTOR = "system:simulator"
EMAIL_DOMAIN = "agents.rampart.invalid"
#: Shares each agent may borrow per demo symbol and day.
DAILY_LOCATE = Decimal(1_000_000)
LOCATE_SOURCE = "demo stock-loan desk (simulated)"
#: The agents' explicit limits: a market maker quotes a ladder several times a second all day.
AGENT_LIMITS: dict[str, str | None] = {
    "max_orders_per_day": "5000000",
    "max_trades_per_day": "5000000",
    "max_orders_per_second": "1000",
    "max_executions_in_window": "100000",
    "daily_loss_limit": "1000000",
    "max_window_notional": "1000000000",
}
_LIMITS_REASON = "demo market agent: limits sized for continuous quoting"


def agent_email(name: str) -> str:
    return f"{name}@{EMAIL_DOMAIN}"


class AgentServices(Protocol):
    """The services the agents are provisioned with (the bootstrap's container has them).

    Read when the simulator starts, not when it is built: risk is wired after trading."""

    clock: Clock
    identity: IdentityService
    mfa: MfaService
    risk: RiskService
    risk_gate: RiskGate

    def uow(self) -> UnitOfWork: ...


class SimulatorAgents:
    """Provisions the agents (idempotently) and keeps their daily locates current."""

    def __init__(self, services: AgentServices) -> None:
        self._c = services
        self.ids: dict[str, str] = {}
        self._located_on: date | None = None
        self._symbols: list[str] = []

    def ensure(self, names: tuple[str, ...], symbols: list[str]) -> dict[str, str]:
        """The agents' user ids by name, creating and enrolling the ones that do not exist."""
        c = self._c
        unusable: str | None = None
        for name in names:
            with c.uow() as uow:
                row = c.identity.accounts.by_email(uow.session, agent_email(name))
                if row is not None:
                    user_id = row.id
                else:
                    if unusable is None:
                        # A password nobody knows: the hash of a random secret thrown away.
                        unusable = c.identity.hashing.hasher.hash(secrets.token_urlsafe(32))
                    user_id = c.identity.accounts.create_user(
                        uow,
                        agent_email(name),
                        unusable,
                        role=Role.TRADER,
                        verified=True,
                        created_by=ACTOR,
                    )
                if not c.mfa.summary(uow.session, user_id).totp:
                    enrolment = c.mfa.begin_totp(uow, user_id, agent_email(name))
                    check = c.mfa.confirm_totp(
                        uow, user_id, pyotp.TOTP(enrolment.secret).at(c.clock.now())
                    )
                    check.raise_for_failure()
                if c.risk.limits(uow.session, user_id)["overrides"] != _overrides():
                    c.risk.set_platform_account_limits(
                        uow, ACTOR, user_id, dict(AGENT_LIMITS), _LIMITS_REASON
                    )
                uow.commit()
            self.ids[name] = user_id
        self._symbols = list(symbols)
        self._located_on = None
        self.ensure_locates()
        return dict(self.ids)

    def ensure_locates(self) -> None:
        """Record today's locates once per day (they are per trade date)."""
        today = self._c.clock.now().date()
        if self._located_on == today or not self.ids:
            return
        c = self._c
        desk = Principal(
            actor=ACTOR,
            user_id=None,
            permissions=frozenset({str(Permission.RISK_LIMITS)}),
            method="system",
        )
        with c.uow() as uow:
            for user_id in self.ids.values():
                have = c.risk.located(uow.session, user_id, today)
                for symbol in self._symbols:
                    missing = DAILY_LOCATE - have.get(symbol, Decimal(0))
                    if missing > 0:
                        c.risk.record_locate(uow, desk, user_id, symbol, missing, LOCATE_SOURCE)
            uow.commit()
        self._located_on = today
        for user_id in self.ids.values():
            # The gate's cached view of the account still has yesterday's locates.
            c.risk_gate.forget(user_id)


def _overrides() -> dict[str, str]:
    return {k: v for k, v in AGENT_LIMITS.items() if v is not None}
