"""Roles, time-limited grants and custom roles, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rampart.access.domain import (
    InvalidRoleError,
    PermissionDeniedError,
    Principal,
    Role,
    SelfGrantError,
    UnknownRoleError,
)
from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from rampart.kernel.errors import NotFoundError, ValidationError
from rampart.kernel.ids import new_id


def _grant(container: Container, user_id: str, role: str, **kwargs: object) -> None:
    with container.uow() as uow:
        container.access.assign_role(uow, user_id, role, **kwargs)  # type: ignore[arg-type]
        uow.commit()


def _roles(container: Container, user_id: str) -> frozenset[str]:
    with container.db.read() as session:
        return container.access.roles_of(session, user_id, container.clock.now())


def _perms(container: Container, user_id: str) -> frozenset[str]:
    with container.db.read() as session:
        return container.access.permissions_of(session, user_id, container.clock.now())


def test_a_new_user_has_no_roles_and_no_permissions(container: Container) -> None:
    user = new_id()
    assert _roles(container, user) == frozenset()
    assert _perms(container, user) == frozenset()


def test_trader_gets_trading_permissions_and_nothing_of_staff(container: Container) -> None:
    user = new_id()
    _grant(container, user, Role.TRADER)
    perms = _perms(container, user)
    assert {"order:place", "order:cancel", "account:withdraw"} <= perms
    assert not perms & {"admin:users", "compliance:audit", "support:view-users"}


def test_support_cannot_trade_or_withdraw(container: Container) -> None:
    user = new_id()
    _grant(container, user, Role.SUPPORT, granted_by="user:" + new_id(), reason="ticket 42")
    perms = _perms(container, user)
    assert "support:view-users" in perms
    assert not perms & {"order:place", "order:cancel", "order:modify", "account:withdraw"}


def test_time_limited_grant_lapses_by_itself(container: Container, clock: FrozenClock) -> None:
    staff = new_id()
    _grant(
        container,
        staff,
        Role.COMPLIANCE,
        granted_by="user:" + new_id(),
        expires_at=clock.now() + timedelta(hours=2),
        reason="quarterly review",
    )
    assert Role.COMPLIANCE in _roles(container, staff)
    assert "compliance:audit" in _perms(container, staff)
    clock.advance(timedelta(hours=2))
    assert _roles(container, staff) == frozenset()
    assert "compliance:audit" not in _perms(container, staff)


def test_granting_again_is_idempotent_and_extending_adds_a_grant(
    container: Container, clock: FrozenClock
) -> None:
    user = new_id()
    _grant(container, user, Role.SUPPORT, expires_at=clock.now() + timedelta(hours=1))
    _grant(container, user, Role.SUPPORT, expires_at=clock.now() + timedelta(minutes=30))
    _grant(container, user, Role.SUPPORT, expires_at=clock.now() + timedelta(hours=3))
    with container.db.read() as session:
        grants = container.access.grants_of(session, user)
    assert len(grants) == 2
    clock.advance(timedelta(hours=2))
    assert _roles(container, user) == {Role.SUPPORT}


def test_revocation_takes_effect_at_once(container: Container) -> None:
    user = new_id()
    _grant(container, user, Role.ADMIN)
    with container.uow() as uow:
        assert container.access.revoke_role(uow, user, Role.ADMIN, revoked_by="system") == 1
        uow.commit()
    assert _roles(container, user) == frozenset()
    with container.uow() as uow, pytest.raises(NotFoundError):
        container.access.revoke_role(uow, user, Role.ADMIN)


def test_grants_in_the_past_and_unknown_roles_are_refused(
    container: Container, clock: FrozenClock
) -> None:
    user = new_id()
    with container.uow() as uow:
        with pytest.raises(ValidationError):
            container.access.assign_role(
                uow, user, Role.ADMIN, expires_at=clock.now() - timedelta(seconds=1)
            )
        with pytest.raises(UnknownRoleError):
            container.access.assign_role(uow, user, "GOD")


def test_nobody_grants_themselves_a_role(container: Container) -> None:
    admin_id = new_id()
    admin = Principal(
        actor=f"user:{admin_id}", user_id=admin_id, permissions=frozenset({"admin:users"})
    )
    with container.uow() as uow:
        with pytest.raises(SelfGrantError):
            container.access.grant_as(
                uow, admin, admin_id, Role.COMPLIANCE, expires_at=None, reason="me"
            )
        with pytest.raises(SelfGrantError):
            container.access.assign_role(uow, admin_id, Role.ADMIN, granted_by=admin.actor)


def test_granting_needs_admin_users_even_past_the_route(container: Container) -> None:
    support_id = new_id()
    support = Principal(
        actor=f"user:{support_id}",
        user_id=support_id,
        permissions=frozenset({"support:view-users"}),
    )
    with container.uow() as uow, pytest.raises(PermissionDeniedError):
        container.access.grant_as(uow, support, new_id(), Role.ADMIN, expires_at=None, reason="x")


def test_custom_role_from_permissions(container: Container) -> None:
    user = new_id()
    with container.uow() as uow:
        container.access.define_role(
            uow, "risk-desk", {"risk:limits", "market:data"}, description="risk desk"
        )
        uow.commit()
    _grant(container, user, "risk-desk")
    assert _perms(container, user) == {"risk:limits", "market:data"}
    # Redefining changes what holders may do at once.
    with container.uow() as uow:
        container.access.define_role(uow, "risk-desk", {"market:data"})
        uow.commit()
    assert _perms(container, user) == {"market:data"}


@pytest.mark.parametrize(
    ("name", "perms"),
    [("ADMIN", {"market:data"}), ("x", {"market:data"}), ("ok-name", {"root:all"}), ("ok", set())],
)
def test_invalid_custom_roles_are_refused(container: Container, name: str, perms: set[str]) -> None:
    with container.uow() as uow, pytest.raises(InvalidRoleError):
        container.access.define_role(uow, name, perms)
