"""Tables of second factors. Seeds and phone numbers are vault ciphertexts; codes are keyed hashes.

No foreign keys to the identity tables: a domain reaches another only through its services.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Base, UTCDateTime
from rampart.vault import Purpose, Sealed


class TotpRow(Base):
    """A user's authenticator-app seed (one per user), sealed by the vault."""

    __tablename__ = "mfa_totp"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), unique=True)
    seed_sealed: Mapped[bytes] = mapped_column(Sealed(Purpose.MFA_SECRET))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Null until the user proves with a first code that the app holds the seed.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The last accepted RFC 6238 time-step; a code of this step or earlier is refused (replay),
    #: across processes because the update is a compare-and-set in the database.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebAuthnCredentialRow(Base):
    __tablename__ = "mfa_webauthn_credential"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    #: base64url of the credential id (at most 1023 bytes by the spec).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: Keyed MAC (the vault's blind-index key, `MfaSecrets.credential_mac`) over the user, the
    #: credential id and the public key: a database write that swaps in an attacker's key (or
    #: moves a key to another user) fails the check and the key signs nothing in (ASVS 6.7.1).
    #: NULL only for a row nobody sealed, which is refused like a forged one.
    key_mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36))
    #: `single_device` (security key) or `multi_device` (synced passkey).
    device_type: Mapped[str] = mapped_column(String(16))
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    user_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OtpChannelRow(Base):
    """An email or SMS second factor. The phone number is sealed; email uses the account's."""

    __tablename__ = "mfa_otp_channel"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(8))
    destination_sealed: Mapped[bytes | None] = mapped_column(
        Sealed(Purpose.PERSONAL_DATA), nullable=True
    )
    #: Masked for display (`+44•••••23`), so listing factors never opens the vault.
    destination_hint: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("user_id", "channel", name="uq_mfa_otp_channel_user"),)


class BackupCodeRow(Base):
    __tablename__ = "mfa_backup_code"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    #: Keyed hash (vault blind index) of the normalised code.
    code_digest: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ChallengeRow(Base):
    """A server-side, single-use challenge: an emailed or texted code, or a WebAuthn challenge."""

    __tablename__ = "mfa_challenge"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    #: `email`, `sms`, `webauthn.create` or `webauthn.get`.
    kind: Mapped[str] = mapped_column(String(24))
    #: What the challenge may be used for (`login:<id>`, `step-up:<credential>`, `enrol:sms`).
    purpose: Mapped[str] = mapped_column(String(128))
    #: Keyed hash of a code, or the base64url WebAuthn challenge (not secret, only single-use).
    secret: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_mfa_challenge_user_kind", "user_id", "kind", "purpose"),)


class FactorResetRow(Base):
    """A support-assisted removal of every factor; starts the cooling period."""

    __tablename__ = "mfa_reset"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    performed_by: Mapped[str] = mapped_column(String(80))
    #: How the user's identity was re-verified (`video-call`, `id-document`, ...).
    verification_method: Mapped[str] = mapped_column(String(40))
    #: Where the evidence is kept (ticket or case number), never the evidence itself.
    verification_reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cooling_until: Mapped[datetime] = mapped_column(UTCDateTime())


class RecoveryHoldRow(Base):
    """A cooling period that no support operator started: a password reset by email of an
    account whose only second factor is that same mailbox. Blocks what `mfa_reset` blocks."""

    __tablename__ = "mfa_recovery_hold"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    #: Why the hold started (`password-reset-email-only`).
    cause: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cooling_until: Mapped[datetime] = mapped_column(UTCDateTime())


class FactorResetRequestRow(Base):
    """A support-assisted factor reset asked for by one staff member and waiting for a second
    one's approval (four eyes); nothing is removed until it is approved."""

    __tablename__ = "mfa_reset_request"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    requested_by: Mapped[str] = mapped_column(String(80))
    verification_method: Mapped[str] = mapped_column(String(40))
    verification_reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: `approved` or `rejected` once decided; None while pending.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
