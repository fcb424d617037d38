"""When a second factor is demanded: step-up before sensitive actions, enrolment before trading,
and the recovery holds (cooling periods) that block money and credentials after a recovery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from rampart.access.domain import (
    MfaEnrolmentRequiredError,
    PermissionDeniedError,
    Principal,
    check_staff_step_up,
    check_step_up,
)
from rampart.config import MfaSettings
from rampart.identity.mfa.backup_codes import BackupCodes
from rampart.identity.mfa.domain import (
    COOLING_BLOCKED,
    MFA_MANDATORY,
    STAFF_ACTIONS,
    CoolingPeriodError,
    FactorKind,
    InvalidFactorError,
    SensitiveAction,
    SignInAgainError,
)
from rampart.identity.mfa.factors import FactorCheck, factor_summary
from rampart.identity.mfa.ports import Notifier
from rampart.identity.mfa.recovery import (
    NoRecoveryHoldError,
    cooling_ends,
    email_only_hold_running,
    end_email_only_holds,
    hold_after_email_reset,
)
from rampart.kernel.clock import Clock
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


def is_in_cooling_period(session: Session, user_id: str, now: datetime) -> bool:
    """True during the 24 hours after a support-assisted factor reset of the user, or after a
    password reset by email when that mailbox was its only second factor
    (`rampart.identity.mfa.recovery`).

    Withdrawals, new API keys and new orders are refused meanwhile (`StepUpPolicy.require_step_up`
    for the actions in `COOLING_BLOCKED`, the risk gate for orders; other domains may call this
    directly).
    """
    ends = cooling_ends(session, user_id)
    return ends is not None and now < ends


class StepUpPolicy:
    def __init__(
        self,
        settings: MfaSettings,
        clock: Clock,
        notifier: Notifier,
        backup_codes: BackupCodes,
        *,
        email_factor: bool,
    ) -> None:
        self._settings = settings
        self._backup_codes = backup_codes
        self._email_factor = email_factor
        self._clock = clock
        self._notifier = notifier
        #: Called with (uow, user_id) whenever a recovery hold starts (a factor reset or an
        #: email-only password reset): the risk gate drops its cached view of the trader.
        self.hold_listeners: list[Callable[[UnitOfWork, str], object]] = []

    def has_mfa(self, session: Session, user_id: str) -> bool:
        """Whether a sign-in of this user must pass a second factor."""
        return factor_summary(session, user_id, email_factor=self._email_factor).enrolled

    def require_step_up(
        self, session: Session, principal: Principal, action: SensitiveAction | str
    ) -> None:
        """The one check a sensitive action calls before doing anything.

        Refuses with 401 `step-up-required` unless a second factor was passed within
        `mfa.step_up_minutes`, with 403 `mfa-enrolment-required` when the user has no factor and
        the platform requires one, and with 403 `mfa-cooling-period` for withdrawals and new API
        keys during the 24 hours after a support-assisted reset. Staff actions (`STAFF_ACTIONS`)
        need a WebAuthn factor within `mfa.staff_step_up_minutes`.
        """
        if principal.user_id is None:
            raise PermissionDeniedError("Only a person can do this.")
        now = self._clock.now()
        action = SensitiveAction(action)
        if action in STAFF_ACTIONS:
            # A staff action is confirmed with a security key, never a code that a fake page
            # could have relayed (and never by an API key).
            check_staff_step_up(
                principal, now.timestamp(), step_up_minutes=self._settings.staff_step_up_minutes
            )
            return
        if action in COOLING_BLOCKED and is_in_cooling_period(session, principal.user_id, now):
            raise CoolingPeriodError(
                "Your account was recovered (second factors reset, or the password reset by "
                "email alone) less than 24 hours ago; this is blocked until the cooling period "
                "ends."
            )
        # An API key acts without a person present: it can never step up.
        if principal.method == "apikey":
            raise PermissionDeniedError("API keys cannot perform this action.")
        check_step_up(
            principal,
            now.timestamp(),
            step_up_minutes=self._settings.step_up_minutes,
            # Money and credentials demand a factor; changing one's own password, email or
            # factors does not (a user without any has nothing to step up with).
            mfa_required=self._settings.required_for_trading and action in MFA_MANDATORY,
            mfa_enrolled=self.has_mfa(session, principal.user_id),
        )

    def require_recent_sign_in(self, signed_in_at: datetime | None) -> None:
        """Full re-authentication for a user who has no second factor (ASVS 7.5.1): their
        password, proven by a sign-in within `mfa.step_up_minutes`. Refuses with 401
        `reauthentication-required` otherwise (the client signs in again)."""
        if signed_in_at is not None:
            age = (self._clock.now() - signed_in_at).total_seconds()
            if -5.0 <= age <= self._settings.step_up_minutes * 60:
                return
        raise SignInAgainError(
            f"Sign in again (within {self._settings.step_up_minutes} minutes of this change) "
            "to set up your first second factor.",
            step_up_minutes=self._settings.step_up_minutes,
        )

    def require_mfa_enrolled(self, session: Session, principal: Principal) -> None:
        """Trading, withdrawals and API keys need a second factor set up (when configured)."""
        if not self._settings.required_for_trading or principal.user_id is None:
            return
        if not self.has_mfa(session, principal.user_id):
            raise MfaEnrolmentRequiredError(
                "Set up a second factor in your security settings before trading."
            )

    def in_cooling_period(self, session: Session, user_id: str) -> bool:
        """Whether the user is in a recovery cooling period now (the risk gate refuses orders)."""
        return is_in_cooling_period(session, user_id, self._clock.now())

    def after_password_reset(self, uow: UnitOfWork, user_id: str) -> None:
        """Identity calls this in the transaction of a password reset by email: when that
        mailbox was the account's only second factor, the account goes on a 24-hour hold and
        its owner is told (`rampart.identity.mfa.recovery`)."""
        ends = hold_after_email_reset(
            uow, user_id, factor_summary(uow.session, user_id), self._clock.now()
        )
        if ends is not None:
            self._notifier.security_notice(
                uow, user_id, "mfa.recovery_hold", {"cooling_until": ends.isoformat()}
            )
            for listener in self.hold_listeners:
                listener(uow, user_id)

    def lift_recovery_hold(self, uow: UnitOfWork, user_id: str, backup_code: str) -> FactorCheck:
        """The owner ends the hold after an email-only password reset early, with a backup code:
        the one proof such an account has that its mailbox does not also give a thief (its
        codes were shown once, at enrolment, and never mailed). A support reset's cooling
        period cannot be lifted. Like `verify`, a wrong code is returned, not raised: the
        caller commits first, so the spent attempt and its audit entry stay."""
        now = self._clock.now()
        if not email_only_hold_running(uow.session, user_id, now):
            raise NoRecoveryHoldError
        try:
            remaining = self._backup_codes.use(uow, user_id, backup_code)
        except InvalidFactorError as exc:
            uow.audit(
                AuditEvent(
                    action="mfa.recovery_hold.lift",
                    outcome="failure",
                    subject=f"user:{user_id}",
                    details={"error": exc.code},
                )
            )
            return FactorCheck(ok=False, kind=FactorKind.BACKUP_CODE, error=exc)
        end_email_only_holds(uow, user_id, now)
        self._notifier.security_notice(
            uow, user_id, "mfa.recovery_hold_lifted", {"remaining": remaining}
        )
        for listener in self.hold_listeners:
            listener(uow, user_id)
        return FactorCheck(ok=True, kind=FactorKind.BACKUP_CODE, backup_codes_remaining=remaining)
