"""Checking one second-factor answer, whatever the factor.

A failed attempt must still be counted, so `FactorVerifier.verify` returns a `FactorCheck`
instead of raising, and its caller commits *then* raises (`FactorCheck.raise_for_failure()`);
see `rampart.identity.mfa.api.commit_check`.
"""

from __future__ import annotations

from typing import Any

from rampart.identity.mfa.backup_codes import BackupCodes
from rampart.identity.mfa.domain import (
    ChallengeExhaustedError,
    FactorKind,
    FactorNotEnrolledError,
    InvalidFactorError,
    valid_purpose,
)
from rampart.identity.mfa.factors import FactorCheck, FactorResponse
from rampart.identity.mfa.one_time_codes import OneTimeCodes
from rampart.identity.mfa.ports import Notifier
from rampart.identity.mfa.totp import TotpFactor
from rampart.identity.mfa.webauthn import WebAuthnFactor
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


class FactorVerifier:
    def __init__(
        self,
        totp: TotpFactor,
        backup_codes: BackupCodes,
        codes: OneTimeCodes,
        webauthn: WebAuthnFactor,
        notifier: Notifier,
    ) -> None:
        self._totp = totp
        self._backup_codes = backup_codes
        self._codes = codes
        self._webauthn = webauthn
        self._notifier = notifier

    def verify(
        self, uow: UnitOfWork, user_id: str, purpose: str, response: FactorResponse
    ) -> FactorCheck:
        """Check one second-factor response for `purpose`. Never raises for a wrong answer:
        the attempt is recorded in `uow` and the caller must commit before raising."""
        if not valid_purpose(purpose):
            raise ValidationError("Unknown purpose.")
        try:
            details: dict[str, Any] = {}
            remaining: int | None = None
            if response.kind is FactorKind.TOTP:
                self._totp.verify(uow, user_id, response.code or "")
            elif response.kind is FactorKind.BACKUP_CODE:
                remaining = self._backup_codes.use(uow, user_id, response.code or "")
                details["remaining"] = remaining
            elif response.kind in (FactorKind.EMAIL, FactorKind.SMS):
                self._codes.require_channel(uow.session, user_id, response.kind)
                self._codes.check(uow, user_id, response.kind, purpose, response.code or "")
            elif response.kind is FactorKind.WEBAUTHN:
                details["authenticator"] = self._webauthn.verify_assertion(
                    uow, user_id, purpose, response.challenge_id or "", response.credential or {}
                )
            else:
                raise InvalidFactorError
        except (InvalidFactorError, ChallengeExhaustedError, FactorNotEnrolledError) as exc:
            uow.audit(
                AuditEvent(
                    action="mfa.verify",
                    outcome="failure",
                    subject=f"user:{user_id}",
                    details={
                        "kind": response.kind.value,
                        "purpose": purpose.split(":")[0],
                        "error": exc.code,
                    },
                )
            )
            return FactorCheck(ok=False, kind=response.kind, error=exc)
        uow.audit(
            AuditEvent(
                action="mfa.verify",
                subject=f"user:{user_id}",
                details={"kind": response.kind.value, "purpose": purpose.split(":")[0], **details},
            )
        )
        if response.kind is FactorKind.BACKUP_CODE:
            self._notifier.security_notice(
                uow, user_id, "mfa.backup_code_used", {"remaining": remaining}
            )
        return FactorCheck(
            ok=True, kind=response.kind, backup_codes_remaining=remaining, details=details
        )
