"""Test users and principals.

`new_account` makes a real identity account (what API keys, bearer tokens and sessions need: an
active owner). `HeaderAuthenticator` stands in for identity's login in tests whose subject is not
authentication (managing keys, the shape of a route's answer): `X-Test-User: <user id>`
authenticates as that user with the permissions their real role grants (`container.access`);
`X-Test-Mfa-At: <epoch seconds>` says when they last passed a second factor, and
`X-Test-WebAuthn-At` when that factor was a security key, which the user must really have enrolled
(`tests.support.staff.enrol_security_key`): the principal is built by `person_principal`, so
staff permissions count only with it, as for a real sign-in. Tests about signing in, step-up or
credentials use the real flows instead (`tests/identity/support.py`, `tests/support/staff.py`).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from rampart.access.domain import Principal, person_principal
from rampart.bootstrap import Container
from rampart.kernel.errors import UnauthorizedError
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
            has_key = self._container.mfa.summary(session, user_id).webauthn > 0
        mfa_at = request.headers.get("x-test-mfa-at")
        webauthn_at = request.headers.get("x-test-webauthn-at")
        if webauthn_at and not has_key:
            raise UnauthorizedError("X-Test-WebAuthn-At for a user without a security key.")
        return person_principal(
            user_id,
            roles=roles,
            permissions=perms,
            method="session",
            credential_id=f"test-session-{user_id}",
            mfa_at=float(mfa_at) if mfa_at else None,
            webauthn_at=float(webauthn_at) if webauthn_at else None,
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


#: The password of every `new_account` (hashed once per process: argon2 is slow on purpose).
ACCOUNT_PASSWORD = "isolation test passphrase 31"
_hashes: dict[str, str] = {}


def new_account(
    container: Container, role: str = "TRADER", *, email: str | None = None, verified: bool = True
) -> str:
    """A real, active identity account with `role`, created as `rampart users create` does."""
    hasher = container.identity.hashing.hasher
    if "hash" not in _hashes:
        _hashes["hash"] = hasher.hash(ACCOUNT_PASSWORD)
    address = email or f"user-{new_id()[-12:]}@example.com"
    with container.uow() as uow:
        user_id = container.identity.accounts.create_user(
            uow, address, _hashes["hash"], role=role, verified=verified, created_by="test"
        )
        uow.commit()
    return user_id


def email_of(container: Container, user_id: str) -> str:
    with container.db.read() as session:
        return container.identity.accounts.get(session, user_id).email


def as_user(
    user_id: str, *, mfa_at: float | None = None, webauthn_at: float | None = None
) -> dict[str, str]:
    headers = {"X-Test-User": user_id}
    if mfa_at is not None:
        headers["X-Test-Mfa-At"] = str(mfa_at)
    if webauthn_at is not None:
        headers["X-Test-WebAuthn-At"] = str(webauthn_at)
    return headers


def new_staff(container: Container, role: str) -> str:
    """A staff user (role assigned) with a security key enrolled."""
    from tests.support.staff import enrol_security_key

    user_id = new_user(container, role)
    enrol_security_key(container, user_id)
    return user_id


def as_staff(container: Container, user_id: str) -> dict[str, str]:
    """A staff user's sign-in that proved their security key just now (fresh step-up)."""
    now = container.clock.now().timestamp()
    return as_user(user_id, mfa_at=now, webauthn_at=now)
