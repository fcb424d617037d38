"""The API key table. One row per key; rows are kept after revocation as the record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Base, UTCDateTime
from rampart.vault.columns import Sealed
from rampart.vault.domain import Purpose, SealContext

TABLE = "apikey"


def sealed_secret_context(key_id: str) -> SealContext:
    """Where a key's sealed secret lives (bound into its ciphertext)."""
    return SealContext(table=TABLE, column="sealed_secret", row_id=key_id)


class ApiKeyRow(Base):
    __tablename__ = TABLE

    #: Also the `keyid` of signatures: public, opaque, unguessable (UUIDv7 + 74 random bits).
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    algorithm: Mapped[str] = mapped_column(String(20))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    allowed_cidrs: Mapped[list[str]] = mapped_column(JSON)
    #: hmac-sha256: SHA-256 of the secret (finds the key when a scanner reports a leak) ...
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    #: ... and the secret itself, sealed by the vault under the owner's key.
    sealed_secret: Mapped[bytes | None] = mapped_column(
        Sealed(Purpose.API_KEY_SECRET), nullable=True
    )
    secret_hint: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: ed25519: the raw public key, base64. The server holds no secret for these keys.
    public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Set when the key is rotated: it keeps working until then.
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    #: When the owner was told the key is older than `apikeys.max_age_days`.
    flagged_old_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: When the owner was told the key expires within `apikeys.expiry_notice_days`.
    expiry_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_apikey_user", "user_id", "created_at"),)
