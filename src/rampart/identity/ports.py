"""What the identity services need from other domains, as interfaces.

`SecondFactors` is the seam for multi-factor authentication (`rampart.identity.mfa`): after the
password step, a user for whom it names any factor gets a pending sign-in instead of a session,
and only `LoginService.complete_pending_login` (called by the MFA code once a factor is proven)
turns that into a session or tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


class RoleDirectory(Protocol):
    """Implemented by `rampart.access.service.AccessService`."""

    def assign_role(
        self,
        uow: UnitOfWork,
        user_id: str,
        role: str,
        *,
        granted_by: str | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> Any: ...

    def roles_of(self, session: Session, user_id: str, now: datetime) -> frozenset[str]: ...

    def permissions_of(self, session: Session, user_id: str, now: datetime) -> frozenset[str]: ...


class SecondFactors(Protocol):
    """The factors a user must pass after the password, e.g. `["totp", "webauthn"]`; an empty
    list means the password alone completes the sign-in."""

    def required_factors(self, session: Session, user_id: str) -> list[str]: ...


class Notifier(Protocol):
    """Implemented by `rampart.notifications.service.NotificationService`."""

    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None: ...

    def job(self, uow: UnitOfWork, *, topic: str, secret: str) -> None:
        """Queue `secret` for the background handler of `topic` (sealed, in `uow`)."""
        ...


class AuditLog(Protocol):
    """Implemented by the audit log (`container.audit_log`), for events outside a transaction."""

    def append(self, event: AuditEvent) -> Any: ...
