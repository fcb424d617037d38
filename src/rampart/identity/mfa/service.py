"""Second factors, as the rest of Rampart sees them: one object wiring the parts together.

Each factor and each policy lives in its own module, and this facade only builds them and keeps
the names callers use (`mfa.begin_totp`, `mfa.verify`, ...):

- `totp` (authenticator apps), `webauthn` (security keys, passkeys), `one_time_codes` (email
  and SMS), `backup_codes`;
- `verification` (one answer, any factor), `policy` (step-up, enrolment, recovery holds),
  `support_reset` (four-eyes removal of every factor);
- `factors` (what they share), `ports` (the vault and the notifier).

Every method takes a unit of work (or, for reads, a session) and never commits.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rampart.config import MfaSettings
from rampart.identity.mfa.backup_codes import BackupCodes
from rampart.identity.mfa.domain import FactorSummary
from rampart.identity.mfa.factors import (
    FactorCheck,
    FactorEvents,
    FactorResponse,
    backup_codes_remaining,
    factor_summary,
)
from rampart.identity.mfa.one_time_codes import EmailOf, OneTimeCodes
from rampart.identity.mfa.policy import StepUpPolicy, is_in_cooling_period
from rampart.identity.mfa.ports import MfaSecrets, Notifier
from rampart.identity.mfa.support_reset import ResetRecord, SupportReset
from rampart.identity.mfa.totp import TotpEnrolment, TotpFactor
from rampart.identity.mfa.verification import FactorVerifier
from rampart.identity.mfa.webauthn import Authenticator, WebAuthnCeremony, WebAuthnFactor
from rampart.identity.mfa.webauthn_rp import RelyingParty
from rampart.kernel.clock import Clock

__all__ = [
    "Authenticator",
    "FactorCheck",
    "FactorResponse",
    "MfaSecrets",
    "MfaService",
    "Notifier",
    "ResetRecord",
    "TotpEnrolment",
    "WebAuthnCeremony",
    "is_in_cooling_period",
]


class MfaService:
    def __init__(
        self,
        settings: MfaSettings,
        clock: Clock,
        secrets_port: MfaSecrets,
        notifier: Notifier,
        relying_party: RelyingParty,
        *,
        issuer: str = "Rampart",
        email_of: EmailOf | None = None,
        email_factor: bool = True,
    ) -> None:
        self._secrets = secrets_port
        self._email_factor = email_factor
        events = FactorEvents(notifier)
        self.totp = TotpFactor(
            clock, secrets_port, events, issuer=issuer, late_steps=settings.totp_late_steps
        )
        self.webauthn = WebAuthnFactor(clock, relying_party, events, secrets_port)
        self.codes = OneTimeCodes(
            clock, secrets_port, notifier, events, email_of, email_factor=email_factor
        )
        self.backup_codes = BackupCodes(clock, secrets_port, notifier)
        self.policy = StepUpPolicy(
            settings, clock, notifier, self.backup_codes, email_factor=email_factor
        )
        self.resets = SupportReset(clock, notifier, hold_listeners=self.policy.hold_listeners)
        self.verifier = FactorVerifier(
            self.totp, self.backup_codes, self.codes, self.webauthn, notifier
        )
        self.relying_party = relying_party
        self.reset_listeners = self.resets.reset_listeners
        self.hold_listeners = self.policy.hold_listeners

        # The names callers have always used, bound to the part that does the work.
        self.verify = self.verifier.verify
        self.require_step_up = self.policy.require_step_up
        self.require_mfa_enrolled = self.policy.require_mfa_enrolled
        self.require_recent_sign_in = self.policy.require_recent_sign_in
        self.in_cooling_period = self.policy.in_cooling_period
        self.after_password_reset = self.policy.after_password_reset
        self.lift_recovery_hold = self.policy.lift_recovery_hold
        self.has_mfa = self.policy.has_mfa
        self.begin_totp = self.totp.begin
        self.confirm_totp = self.totp.confirm
        self.remove_totp = self.totp.remove
        self.regenerate_backup_codes = self.backup_codes.regenerate
        self.enrol_sms = self.codes.enrol_sms
        self.enrol_email = self.codes.enrol_email
        self.confirm_channel = self.codes.confirm_channel
        self.remove_channel = self.codes.remove_channel
        self.send_code = self.codes.send_code
        self.account_label = self.codes.account_label
        self.authenticators = self.webauthn.authenticators
        self.begin_webauthn_registration = self.webauthn.begin_registration
        self.finish_webauthn_registration = self.webauthn.finish_registration
        self.begin_webauthn_authentication = self.webauthn.begin_authentication
        self.rename_authenticator = self.webauthn.rename
        self.remove_authenticator = self.webauthn.remove
        self.request_support_reset = self.resets.request
        self.approve_support_reset = self.resets.approve

    def summary(self, session: Session, user_id: str) -> FactorSummary:
        return factor_summary(session, user_id, email_factor=self._email_factor)

    def required_factors(self, session: Session, user_id: str) -> list[str]:
        """The factors a sign-in may be completed with (identity's `SecondFactors` seam); empty
        when the user has none, so the password alone completes the sign-in."""
        summary = self.summary(session, user_id)
        return summary.kinds() if summary.enrolled else []

    def backup_codes_remaining(self, session: Session, user_id: str) -> int:
        return backup_codes_remaining(session, user_id)

    def _code_digest(self, session: Session, kind: str, user_id: str, code: str) -> str:
        # Kept for the storage tests, which rebuild a legacy (pre-argon2) row by hand.
        return self._secrets.code_digest(session, kind, user_id, code)
