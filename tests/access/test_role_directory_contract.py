"""`RoleDirectory`: the SQL access service and the in-memory roles behave the same."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rampart.access.domain import BUILTIN_ROLES, Permission, Role, SelfGrantError, UnknownRoleError
from rampart.access.memory import InMemoryRoles
from rampart.access.ports import RoleDirectory
from rampart.kernel.errors import ValidationError
from tests.support.ports import PortBackend


@pytest.fixture
def roles(port_backend: PortBackend) -> RoleDirectory:
    if port_backend.in_memory:
        return InMemoryRoles(port_backend.clock)
    return port_backend.app.access


def _assign(port_backend: PortBackend, roles: RoleDirectory, user: str, role: str, **kw) -> None:  # type: ignore[no-untyped-def]
    with port_backend.uow() as uow:
        roles.assign_role(uow, user, role, **kw)
        uow.commit()


def test_a_role_gives_its_permissions_to_its_holder_only(
    port_backend: PortBackend, roles: RoleDirectory
) -> None:
    _assign(port_backend, roles, "u-1", Role.TRADER)
    now = port_backend.clock.now()
    with port_backend.read() as session:
        assert roles.roles_of(session, "u-1", now) == {Role.TRADER}
        got = roles.permissions_of(session, "u-1", now)
        assert got == {str(p) for p in BUILTIN_ROLES[Role.TRADER]}
        assert Permission.ORDER_PLACE in got
        assert roles.roles_of(session, "u-2", now) == frozenset()
        assert roles.permissions_of(session, "u-2", now) == frozenset()


def test_a_time_limited_grant_lapses_at_its_end(
    port_backend: PortBackend, roles: RoleDirectory
) -> None:
    now = port_backend.clock.now()
    _assign(port_backend, roles, "u-1", Role.TRADER, expires_at=now + timedelta(hours=1))
    with port_backend.read() as session:
        assert roles.roles_of(session, "u-1", now + timedelta(minutes=59)) == {Role.TRADER}
        assert roles.roles_of(session, "u-1", now + timedelta(hours=1)) == frozenset()


def test_assigning_a_held_role_again_is_idempotent(
    port_backend: PortBackend, roles: RoleDirectory
) -> None:
    with port_backend.uow() as uow:
        first = roles.assign_role(uow, "u-1", Role.TRADER)
        uow.commit()
    with port_backend.uow() as uow:
        again = roles.assign_role(uow, "u-1", Role.TRADER)
        uow.commit()
    assert again.id == first.id


def test_a_grant_that_is_not_committed_gives_nothing(
    port_backend: PortBackend, roles: RoleDirectory
) -> None:
    with port_backend.uow() as uow:
        roles.assign_role(uow, "u-1", Role.TRADER)
    with port_backend.read() as session:
        assert roles.roles_of(session, "u-1", port_backend.clock.now()) == frozenset()


def test_refused_grants(port_backend: PortBackend, roles: RoleDirectory) -> None:
    now = port_backend.clock.now()
    with port_backend.uow() as uow:
        with pytest.raises(UnknownRoleError):
            roles.assign_role(uow, "u-1", "no-such-role")
        with pytest.raises(SelfGrantError):
            roles.assign_role(uow, "u-1", Role.TRADER, granted_by="user:u-1")
        with pytest.raises(ValidationError):
            roles.assign_role(uow, "u-1", Role.TRADER, expires_at=now)
        with pytest.raises(ValidationError):
            roles.assign_role(uow, "u-1", Role.TRADER, reason="x" * 10_000)
