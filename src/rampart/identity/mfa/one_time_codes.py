"""Codes sent by email or text message: enrol a channel, send a code, check it once.

A code is valid `OTP_TTL` (10 minutes), for `OTP_MAX_ATTEMPTS` guesses, once, for one purpose;
only its keyed hash is stored. Sending is throttled per user (SMS costs money, floods annoy).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from rampart.identity.mfa.db import ChallengeRow, OtpChannelRow
from rampart.identity.mfa.domain import (
    OTP_MAX_ATTEMPTS,
    OTP_MAX_PER_HOUR,
    OTP_RESEND_INTERVAL,
    OTP_TTL,
    ChallengeExhaustedError,
    CodeSendThrottledError,
    EmailFactorDisabledError,
    FactorAlreadyEnrolledError,
    FactorKind,
    FactorNotEnrolledError,
    InvalidFactorError,
    clean_numeric_code,
    clean_phone_number,
    enrol_purpose,
    mask_email,
    mask_phone,
    new_numeric_code,
    valid_purpose,
)
from rampart.identity.mfa.factors import FactorCheck, FactorEvents
from rampart.identity.mfa.ports import MfaSecrets, Notifier
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.uow import UnitOfWork

#: An account's confirmed address, or None (`AccountService.contact_email`).
EmailOf = Callable[[Session, str], str | None]


class OneTimeCodes:
    def __init__(
        self,
        clock: Clock,
        secrets_port: MfaSecrets,
        notifier: Notifier,
        events: FactorEvents,
        email_of: EmailOf | None,
        *,
        email_factor: bool,
    ) -> None:
        self._clock = clock
        self._secrets = secrets_port
        self._notifier = notifier
        self._events = events
        self._email_of = email_of
        #: `mfa.email_factor_enabled`: off, email codes can be neither enrolled, sent nor used.
        self._email_factor = email_factor

    # ---- enrolment ----
    def enrol_sms(self, uow: UnitOfWork, user_id: str, phone: str) -> str:
        """Start SMS enrolment: texts a code to `phone`; `confirm_channel` activates it."""
        number = clean_phone_number(phone)
        session = uow.session
        row = self._channel_row(session, user_id, FactorKind.SMS)
        if row is not None and row.confirmed_at is not None:
            raise FactorAlreadyEnrolledError("Remove the current phone number first.")
        row_id = row.id if row is not None else new_id()
        sealed = self._secrets.seal(
            session,
            number.encode(),
            table="mfa_otp_channel",
            column="destination_sealed",
            row_id=row_id,
            user_id=user_id,
        )
        if row is None:
            row = OtpChannelRow(
                id=row_id,
                user_id=user_id,
                channel=FactorKind.SMS.value,
                created_at=self._clock.now(),
                destination_sealed=sealed,
            )
            session.add(row)
        row.destination_sealed = sealed
        row.destination_hint = mask_phone(number)
        row.created_at = self._clock.now()
        session.flush()
        self._send(uow, user_id, FactorKind.SMS, enrol_purpose(FactorKind.SMS), number)
        return row.destination_hint

    def enrol_email(self, uow: UnitOfWork, user_id: str) -> str:
        """Start email-code enrolment on the account's (verified) address."""
        self._require_enabled(FactorKind.EMAIL)
        session = uow.session
        email = self._account_email(session, user_id)
        row = self._channel_row(session, user_id, FactorKind.EMAIL)
        if row is not None and row.confirmed_at is not None:
            raise FactorAlreadyEnrolledError("Email codes are already on.")
        if row is None:
            row = OtpChannelRow(
                id=new_id(),
                user_id=user_id,
                channel=FactorKind.EMAIL.value,
                created_at=self._clock.now(),
            )
            session.add(row)
        row.destination_hint = mask_email(email)[:40]
        session.flush()
        self._send(uow, user_id, FactorKind.EMAIL, enrol_purpose(FactorKind.EMAIL), email)
        return row.destination_hint

    def confirm_channel(
        self, uow: UnitOfWork, user_id: str, channel: FactorKind, code: str
    ) -> FactorCheck:
        self._require_enabled(channel)
        session = uow.session
        row = self._channel_row(session, user_id, channel)
        if row is None or row.confirmed_at is not None:
            raise FactorNotEnrolledError("Start the set-up again.")
        try:
            self.check(uow, user_id, channel, enrol_purpose(channel), code)
        except (InvalidFactorError, ChallengeExhaustedError) as exc:
            return FactorCheck(ok=False, kind=channel, error=exc)
        row.confirmed_at = self._clock.now()
        session.flush()
        self._events.enrolled(uow, user_id, channel, {"destination": row.destination_hint})
        return FactorCheck(ok=True, kind=channel)

    def remove_channel(self, uow: UnitOfWork, user_id: str, channel: FactorKind) -> None:
        deleted = uow.session.execute(
            delete(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.channel == channel.value
            )
        )
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise FactorNotEnrolledError
        self._events.removed(uow, user_id, channel, {})

    # ---- sending and checking ----
    def send_code(self, uow: UnitOfWork, user_id: str, channel: FactorKind, purpose: str) -> str:
        """Send a one-time code over an enrolled channel for `purpose`; returns the masked
        destination. The code is valid 10 minutes, 5 attempts, once, for that purpose only."""
        if not valid_purpose(purpose):
            raise ValidationError("Unknown purpose.")
        session = uow.session
        row = self.require_channel(session, user_id, channel)
        if channel is FactorKind.SMS:
            assert row.destination_sealed is not None
            destination = self._secrets.open(
                session,
                row.destination_sealed,
                table="mfa_otp_channel",
                column="destination_sealed",
                row_id=row.id,
                user_id=user_id,
            ).decode()
        else:
            destination = self._account_email(session, user_id)
        self._send(uow, user_id, channel, purpose, destination)
        return row.destination_hint or ""

    def require_channel(self, session: Session, user_id: str, channel: FactorKind) -> OtpChannelRow:
        """The user's confirmed channel; an email channel counts only while email codes are
        a factor here (a row enrolled before they were switched off proves nothing)."""
        if channel is FactorKind.EMAIL and not self._email_factor:
            raise FactorNotEnrolledError
        row = session.scalar(
            select(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id,
                OtpChannelRow.channel == channel.value,
                OtpChannelRow.confirmed_at.is_not(None),
            )
        )
        if row is None:
            raise FactorNotEnrolledError
        return row

    def check(
        self, uow: UnitOfWork, user_id: str, channel: FactorKind, purpose: str, code: str
    ) -> None:
        """Spend the latest live code for `purpose` if `code` is it; raises otherwise."""
        session = uow.session
        now = self._clock.now()
        row = session.scalar(
            select(ChallengeRow)
            .where(
                ChallengeRow.user_id == user_id,
                ChallengeRow.kind == channel.value,
                ChallengeRow.purpose == purpose,
                ChallengeRow.consumed_at.is_(None),
            )
            .order_by(ChallengeRow.created_at.desc(), ChallengeRow.id.desc())
            .limit(1)
        )
        if row is None or utc(row.expires_at) <= now:
            raise InvalidFactorError
        # Count the attempt first, atomically: parallel guesses cannot share one attempt.
        counted = session.execute(
            update(ChallengeRow)
            .where(
                ChallengeRow.id == row.id,
                ChallengeRow.consumed_at.is_(None),
                ChallengeRow.attempts < ChallengeRow.max_attempts,
            )
            .values(attempts=ChallengeRow.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if counted.rowcount != 1:  # type: ignore[attr-defined]
            raise ChallengeExhaustedError
        cleaned = clean_numeric_code(code)
        expected = row.secret
        actual = self._secrets.code_digest(
            session, channel.value, user_id, f"{purpose}\x00{cleaned or 'x'}"
        )
        if cleaned is None or not hmac.compare_digest(expected.encode(), actual.encode()):
            raise InvalidFactorError
        spent = session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.id == row.id, ChallengeRow.consumed_at.is_(None))
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError

    def _require_enabled(self, channel: FactorKind) -> None:
        if channel is FactorKind.EMAIL and not self._email_factor:
            raise EmailFactorDisabledError(
                "Use an authenticator app, a security key or text-message codes instead."
            )

    # ---- the account's address ----
    def account_label(self, session: Session, user_id: str) -> str:
        """How an authenticator app names the account: its confirmed address, else its id."""
        email = self._email_of(session, user_id) if self._email_of else None
        return email or f"user {user_id[:8]}"

    def _account_email(self, session: Session, user_id: str) -> str:
        email = self._email_of(session, user_id) if self._email_of else None
        if not email:
            raise FactorNotEnrolledError("The account has no verified email address.")
        return email

    def _channel_row(
        self, session: Session, user_id: str, channel: FactorKind
    ) -> OtpChannelRow | None:
        return session.scalar(
            select(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.channel == channel.value
            )
        )

    def _send(
        self, uow: UnitOfWork, user_id: str, channel: FactorKind, purpose: str, destination: str
    ) -> None:
        session = uow.session
        now = self._clock.now()
        recent = session.execute(
            select(func.count(), func.max(ChallengeRow.created_at)).where(
                ChallengeRow.user_id == user_id,
                ChallengeRow.kind == channel.value,
                ChallengeRow.created_at > now - (OTP_TTL * 6),
            )
        ).one()
        count, latest = int(recent[0] or 0), recent[1]
        if latest is not None and now - utc(latest) < OTP_RESEND_INTERVAL:
            wait = (OTP_RESEND_INTERVAL - (now - utc(latest))).total_seconds()
            raise CodeSendThrottledError(retry_after=max(1.0, wait))
        if count >= OTP_MAX_PER_HOUR:
            raise CodeSendThrottledError(retry_after=600.0)
        # A new code replaces any earlier one for the same purpose.
        session.execute(
            update(ChallengeRow)
            .where(
                ChallengeRow.user_id == user_id,
                ChallengeRow.kind == channel.value,
                ChallengeRow.purpose == purpose,
                ChallengeRow.consumed_at.is_(None),
            )
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        code = new_numeric_code()
        session.add(
            ChallengeRow(
                id=new_id(),
                user_id=user_id,
                kind=channel.value,
                purpose=purpose,
                secret=self._secrets.code_digest(
                    session, channel.value, user_id, f"{purpose}\x00{code}"
                ),
                attempts=0,
                max_attempts=OTP_MAX_ATTEMPTS,
                created_at=now,
                expires_at=now + OTP_TTL,
            )
        )
        session.flush()
        self._notifier.one_time_code(
            uow,
            user_id,
            channel.value,
            destination,
            Secret(code),
            purpose.split(":")[0],
            int(OTP_TTL.total_seconds() // 60),
        )
        uow.audit(
            AuditEvent(
                action="mfa.code.sent",
                subject=f"user:{user_id}",
                details={"channel": channel.value, "purpose": purpose.split(":")[0]},
            )
        )
