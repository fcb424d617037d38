"""What the pipeline answers: accept, or reject with a stable code. A rejection is a value, never
an exception."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rampart.risk.domain.states import TradingState
from rampart.risk.domain.vocabulary import RejectCode


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    code: RejectCode | None = None
    detail: str = ""
    #: The check that decided (for a rejection), e.g. `buying_power`.
    check: str = ""
    #: When set, the account moves to this state (a breached loss or activity limit, a
    #: repeated-execution lock). Applied by the service, audited there.
    escalate: TradingState | None = None
    flags: tuple[str, ...] = ()
    #: For a market (or stop) order: the worst price it may execute at, the collar applied.
    protection_price: Decimal | None = None

    @property
    def rejected(self) -> bool:
        return not self.accepted


ACCEPT = Decision(True)


def reject(
    code: RejectCode, detail: str, *, escalate: TradingState | None = None, check: str = ""
) -> Decision:
    return Decision(False, code, detail, check, escalate)
