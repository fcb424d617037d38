"""Test principals: a header-mapped authenticator standing in for identity's login.

`X-Test-User: <user id>` authenticates as that user with the permissions their real role grants
(`container.access`); `X-Test-Mfa-At: <epoch seconds>` says when they last passed a second factor.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from rampart.access.domain import Principal
from rampart.bootstrap import Container
from rampart.kernel.ids import new_id


class HeaderAuthenticator:
    def __init__(self, container: Container) -> None:
        self._container = container

    async def authenticate(self, request: HTTPConnection) -> Principal | None:
        user_id = request.headers.get("x-test-user")
        if not user_id:
            return None
        now = self._container.clock.now()
        with self._container.db.read() as session:
            roles = self._container.access.roles_of(session, user_id, now)
            perms = self._container.access.permissions_of(session, user_id, now)
        mfa_at = request.headers.get("x-test-mfa-at")
        return Principal(
            actor=f"user:{user_id}",
            user_id=user_id,
            roles=roles,
            permissions=perms,
            method="session",
            credential_id=f"test-session-{user_id}",
            mfa_at=float(mfa_at) if mfa_at else None,
        )


def install(container: Container) -> None:
    container.authenticators.insert(0, HeaderAuthenticator(container))


def new_user(container: Container, role: str | None = "TRADER") -> str:
    user_id = new_id()
    if role is not None:
        with container.uow() as uow:
            container.access.assign_role(uow, user_id, role)
            uow.commit()
    return user_id


def as_user(user_id: str, *, mfa_at: float | None = None) -> dict[str, str]:
    headers = {"X-Test-User": user_id}
    if mfa_at is not None:
        headers["X-Test-Mfa-At"] = str(mfa_at)
    return headers
