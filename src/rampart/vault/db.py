"""The vault's tables: wrapped data keys, wrapped per-user keys.

Key material is only ever stored wrapped: data keys under the key-encryption key (KEK) of the key
provider, per-user keys under their purpose's data key. Destroying a key overwrites its wrapped
bytes with NULL; the row stays as the record that the key existed and when it went.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Base, UTCDateTime


class DataKeyRow(Base):
    __tablename__ = "vault_data_key"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: A `Purpose` value, or `blind-index`.
    family: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    #: Fingerprint of the KEK that wrapped it (`rampart keys rotate-kek` moves it).
    kek_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: When a newer version took over new writes.
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("family", "version", name="uq_vault_data_key_version"),)


class UserKeyRow(Base):
    __tablename__ = "vault_user_key"

    #: 32 hex characters: the 16 bytes carried in the ciphertext header.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The purpose data-key version that wraps this key.
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("purpose", "user_id", "key_version", name="uq_vault_user_key_version"),
    )


class ShreddedUserRow(Base):
    """A user whose keys were destroyed: nothing may be sealed for them again."""

    __tablename__ = "vault_shredded_user"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shredded_at: Mapped[datetime] = mapped_column(UTCDateTime())
