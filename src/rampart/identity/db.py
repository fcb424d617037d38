"""Identity tables. Secrets are never stored: passwords as argon2id (or imported bcrypt) hashes,
every opaque token (session id, refresh token, link token, pending sign-in) as its SHA-256.
Personal data is never stored in clear: an email address is a vault ciphertext sealed under its
owner's key, found through a blind index (`rampart.identity.emails`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Base, UTCDateTime
from rampart.vault import Purpose, Sealed


class UserRow(Base):
    __tablename__ = "identity_user"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: The address, sealed under the owner's key; None once the account is closed or erased.
    email_sealed: Mapped[bytes | None] = mapped_column(Sealed(Purpose.PERSONAL_DATA), nullable=True)
    #: Blind index of the normalised address: lookups, and one account per address (unique).
    email_index: Mapped[str | None] = mapped_column(String(64), nullable=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    #: Access tokens issued before this instant are refused (logout everywhere, reset, lock).
    tokens_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The password was chosen by an operator (`rampart users create --password-file`): the
    #: first sign-in must replace it before anything else (`PasswordChangeRequiredError`).
    password_change_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    __table_args__ = (UniqueConstraint("email_index", name="uq_identity_user_email_index"),)


class EmailTokenRow(Base):
    """A single-use link token: verify an address, confirm a new address, reset a password."""

    __tablename__ = "identity_email_token"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The address the link was sent to, sealed under the account owner's key (a change of
    #: address needs it back); its blind index tells whether it is still the account's.
    email_sealed: Mapped[bytes] = mapped_column(Sealed(Purpose.PERSONAL_DATA))
    email_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeviceRow(Base):
    __tablename__ = "identity_device"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    device_key: Mapped[str] = mapped_column(String(128))
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    first_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("user_id", "device_key", name="uq_identity_device_key"),)


class SessionRow(Base):
    """One sign-in: a browser session (cookie) or an API session (a refresh-token family)."""

    __tablename__ = "identity_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    #: SHA-256 of the cookie value, for browser sessions.
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mfa_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The last WebAuthn factor proven on this session (sign-in or step-up): staff permissions
    #: are honoured only when it is set (`rampart.access.domain.person_principal`).
    webauthn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_identity_session_user", "user_id", "revoked_at"),)


class RefreshTokenRow(Base):
    __tablename__ = "identity_refresh_token"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Set when the token was exchanged; presenting it again is theft or replay.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PendingLoginRow(Base):
    """A sign-in whose password is proven and which still owes a second factor."""

    __tablename__ = "identity_pending_login"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class LoginThrottleRow(Base):
    """Failed sign-ins per account (`email:<sha256>`) and per client IP (`ip:<addr>`).

    Kept in the database, not in memory, so a restart does not hand an attacker a fresh budget.
    """

    __tablename__ = "identity_login_throttle"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SigningKeyRow(Base):
    """A JWT signing key's public half. The private half is derived from the root key and the
    `kid` whenever it is needed, so it is stored nowhere."""

    __tablename__ = "identity_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: When it stopped signing; published until `retired_at` + the access-token lifetime.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
