"""What other domains need of access control, as an interface.

`RoleDirectory`: who holds which role, and so which permissions, at a given time. Identity
assigns the sign-up role and reads a user's permissions for their sessions and tokens.

Implemented by `rampart.access.service.AccessService` (SQL) and
`rampart.access.memory.InMemoryRoles` (built-in roles only);
`tests/access/test_role_directory_contract.py` holds both to the same behaviour.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from rampart.access.service import RoleGrant
from rampart.platform.uow import UnitOfWork


class RoleDirectory(Protocol):
    def assign_role(
        self,
        uow: UnitOfWork,
        user_id: str,
        role: str,
        *,
        granted_by: str | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> RoleGrant:
        """Give `user_id` the role, until `expires_at` when given (audited). Idempotent for a
        grant that already covers as long a time."""
        ...

    def roles_of(self, session: Session, user_id: str, now: datetime) -> frozenset[str]:
        """The roles the user holds at `now`: lapsed and revoked grants are left out."""
        ...

    def permissions_of(self, session: Session, user_id: str, now: datetime) -> frozenset[str]:
        """Every permission the user's active roles give at `now`."""
        ...
