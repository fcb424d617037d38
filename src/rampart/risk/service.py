"""`RiskService`: risk's use cases in one object for the routes, the CLI and the order path, each
one the method of the part that owns it. New code should take the part it uses:

- `rampart.risk.limits` (`LimitsService`): effective limits and their overrides;
- `rampart.risk.states` (`TradingStatesService`): ACTIVE / REDUCING, and the system's escalations;
- `rampart.risk.halts` (`HaltsService`): the kill switch and the four-eyes resume;
- `rampart.risk.restricted` (`RestrictedListService`): the restricted list;
- `rampart.risk.locates` (`LocatesService`): Regulation SHO locates;
- `rampart.risk.disconnect` (`CancelOnDisconnectService`): cancel-on-disconnect;
- `rampart.risk.events` (`RiskEventLog`): the risk event log, refusals included.

Every change is one transaction of the caller's unit of work, audited (`uow.audit`) and recorded
as a risk event; none of the parts commits. Tightening changes reach the in-memory `ControlBook` at
once; loosening ones only after their commit.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from rampart.config import RiskSettings
from rampart.kernel.clock import Clock
from rampart.platform.uow import UnitOfWork
from rampart.risk.controls import ControlBook
from rampart.risk.disconnect import CancelOnDisconnectService
from rampart.risk.domain import ActivityTracker, TradingControls
from rampart.risk.events import RejectionRecord, RiskEventLog
from rampart.risk.halts import FourEyesError, HaltsService
from rampart.risk.inputs import MAX_PAGE, MAX_REASON
from rampart.risk.limits import LimitsService
from rampart.risk.loading import load_controls
from rampart.risk.locates import LocatesService
from rampart.risk.ports import OpenOrderCanceller
from rampart.risk.restricted import RestrictedListService
from rampart.risk.revisions import read_version
from rampart.risk.states import TradingStatesService

# `risk.api` and `risk.gate` import these from here; their owners move the imports in turn.
__all__ = ["MAX_PAGE", "MAX_REASON", "FourEyesError", "RejectionRecord", "RiskService"]


class RiskService:
    """The parts of risk, wired together over one clock, control book and activity tracker."""

    def __init__(
        self,
        settings: RiskSettings,
        clock: Clock,
        book: ControlBook,
        activity: ActivityTracker,
        canceller: OpenOrderCanceller | None = None,
    ) -> None:
        self._settings = settings
        self.clock = clock
        self.book = book
        self.activity = activity
        self.event_log = RiskEventLog(clock)
        self.halt_service = HaltsService(clock, book, activity, self.event_log)
        self.state_service = TradingStatesService(clock, book, self.event_log, self.halt_service)
        self.limit_service = LimitsService(clock, book, self.event_log)
        self.restricted_service = RestrictedListService(clock, book, self.event_log)
        self.locate_service = LocatesService(clock, self.event_log)
        self.disconnect_service = CancelOnDisconnectService(clock, self.event_log)
        self.canceller = canceller

        # The use cases, each the owning part's own method (no wrapper in between).
        self.limits = self.limit_service.limits
        self.set_limits = self.limit_service.set_limits
        self.set_platform_account_limits = self.limit_service.set_platform_account_limits
        self.state_of = self.state_service.state_of
        self.set_trading_state = self.state_service.set_trading_state
        self.halt = self.halt_service.halt
        self.halts = self.halt_service.halts
        self.request_resume = self.halt_service.request_resume
        self.approve_resume = self.halt_service.approve_resume
        self.record_four_eyes_refusal = self.halt_service.record_four_eyes_refusal
        self.regulator_notifications = self.halt_service.regulator_notifications
        self.restrict = self.restricted_service.restrict
        self.unrestrict = self.restricted_service.unrestrict
        self.restricted = self.restricted_service.restricted
        self.record_locate = self.locate_service.record_locate
        self.located = self.locate_service.located
        self.enable_cancel_on_disconnect = self.disconnect_service.enable_cancel_on_disconnect
        self.disable_cancel_on_disconnect = self.disconnect_service.disable_cancel_on_disconnect
        self.on_disconnect = self.disconnect_service.on_disconnect
        self.events = self.event_log.events

    @property
    def canceller(self) -> OpenOrderCanceller | None:
        """The order engine: cancels pending orders after a halt, and on a dropped connection."""
        return self.halt_service.canceller

    @canceller.setter
    def canceller(self, canceller: OpenOrderCanceller | None) -> None:
        self.halt_service.canceller = canceller
        self.disconnect_service.canceller = canceller

    @property
    def default_band(self) -> tuple[Decimal, int]:
        return self._settings.price_band_percent, self._settings.price_band_window_seconds

    def load(self, session: Session) -> TradingControls:
        """Read the stored controls into the book (at start and whenever their version moved)."""
        return load_controls(session, self.book)

    def controls_version(self, session: Session) -> int:
        """The stored version of the controls (compare with `book.version`)."""
        return read_version(session)

    def record_rejections(self, uow: UnitOfWork, records: list[RejectionRecord]) -> None:
        """Write refused orders as risk events and audit entries; apply their escalations."""
        self.event_log.record_rejections(uow, records, self.state_service.escalate)
