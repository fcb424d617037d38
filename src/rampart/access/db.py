"""Access tables: role assignments (possibly time-limited) and custom roles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Base, UTCDateTime


class RoleAssignmentRow(Base):
    """A role held by a user. Active while not revoked and, when it has one, before `expires_at`.

    Rows are never deleted: a revoked or lapsed grant stays as the record of who could do what,
    when, and on whose word.
    """

    __tablename__ = "access_role_assignment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(64))
    granted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)

    __table_args__ = (Index("ix_access_role_assignment_user", "user_id", "revoked_at"),)


class CustomRoleRow(Base):
    """A role defined by an administrator as a set of existing permissions."""

    __tablename__ = "access_custom_role"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    permissions: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
