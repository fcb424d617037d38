"""HTTP routes for access: one's own roles, and administrators' grants and custom roles.

(`rampart.access.api` holds the dependencies every router uses; this is access's own router.)
Changing roles (granting, revoking, defining) is a sensitive staff action: a WebAuthn step-up
within `mfa.staff_step_up_minutes`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rampart.access.api import authenticated, requires, requires_staff_step_up
from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.access.service import AccessService, RoleGrant
from rampart.platform.http.deps import ClockDep, DatabaseDep, NewUnitOfWorkDep
from rampart.platform.http.inputs import Id, Multiline
from rampart.platform.http.services import ServiceSlot

router = APIRouter(prefix="/api/v1/access", tags=["access"])

#: Roles and permissions of users.
access_slot: ServiceSlot[AccessService] = ServiceSlot("access service")
AccessDep = Annotated[AccessService, Depends(access_slot)]

me = authenticated()
admin_users = requires(Permission.ADMIN_USERS)
admin_config = requires(Permission.ADMIN_CONFIG)
role_granter = requires_staff_step_up(Permission.ADMIN_USERS)
role_definer = requires_staff_step_up(Permission.ADMIN_CONFIG)


#: A role's name (as `rampart.access.domain` checks it); in a path too.
RoleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{1,63}$")]
#: `scope:resource:action`, lowercase.
PermissionName = Annotated[
    str, StringConstraints(max_length=100, pattern=r"^[a-z][a-z0-9-]*(:[a-z0-9*-]+){1,2}$")
]


class MyAccess(BaseModel):
    actor: str
    roles: list[str]
    permissions: list[str]
    scopes: list[str] | None


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleName
    expires_at: datetime | None = None
    reason: Multiline = Field(min_length=3, max_length=500)


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Multiline = Field(min_length=3, max_length=500)


class GrantOut(BaseModel):
    id: str
    user_id: str
    role: str
    granted_by: str | None
    reason: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, grant: RoleGrant, now: datetime) -> GrantOut:
        return cls(
            id=grant.id,
            user_id=grant.user_id,
            role=grant.role,
            granted_by=grant.granted_by,
            reason=grant.reason,
            created_at=grant.created_at,
            expires_at=grant.expires_at,
            revoked_at=grant.revoked_at,
            active=grant.active_at(now),
        )


class GrantList(BaseModel):
    items: list[GrantOut]


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permissions: list[PermissionName] = Field(min_length=1, max_length=64)
    description: Multiline | None = Field(default=None, max_length=500)


class RoleOut(BaseModel):
    name: str
    permissions: list[str]


class RoleList(BaseModel):
    items: list[RoleOut]


@router.get("/me", summary="Your roles and permissions")
def my_access(principal: Principal = Depends(me)) -> MyAccess:
    return MyAccess(
        actor=principal.actor,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        scopes=sorted(principal.scopes) if principal.scopes is not None else None,
    )


@router.get("/roles", summary="Every role and its permissions")
def list_roles(db: DatabaseDep, access: AccessDep, _: Principal = Depends(admin_users)) -> RoleList:
    with db.read() as session:
        roles = access.list_roles(session)
    return RoleList(
        items=[RoleOut(name=n, permissions=sorted(p)) for n, p in sorted(roles.items())]
    )


@router.put("/roles/{name}", summary="Define or redefine a custom role")
def define_role(
    name: RoleName,
    body: RoleIn,
    new_uow: NewUnitOfWorkDep,
    access: AccessDep,
    principal: Principal = Depends(role_definer),
) -> RoleOut:
    ensure_permission(principal, Permission.ADMIN_CONFIG)
    with new_uow() as uow:
        role = access.define_role(
            uow,
            name,
            set(body.permissions),
            description=body.description,
            defined_by=principal.actor,
        )
        uow.commit()
    return RoleOut(name=role.name, permissions=sorted(role.permissions))


@router.get("/users/{user_id:id}/grants", summary="A user's role grants, past and present")
def user_grants(
    user_id: Id,
    clock: ClockDep,
    db: DatabaseDep,
    access: AccessDep,
    _: Principal = Depends(admin_users),
) -> GrantList:
    now = clock.now()
    with db.read() as session:
        grants = access.grants_of(session, user_id)
    return GrantList(items=[GrantOut.of(g, now) for g in grants])


@router.post(
    "/users/{user_id:id}/grants",
    status_code=201,
    summary="Grant a role, optionally until a time; a reason is required",
)
def grant_role(
    user_id: Id,
    body: GrantIn,
    new_uow: NewUnitOfWorkDep,
    access: AccessDep,
    clock: ClockDep,
    principal: Principal = Depends(role_granter),
) -> GrantOut:
    with new_uow() as uow:
        grant = access.grant_as(
            uow, principal, user_id, body.role, expires_at=body.expires_at, reason=body.reason
        )
        uow.commit()
    return GrantOut.of(grant, clock.now())


@router.post("/users/{user_id:id}/roles/{role}/revoke", summary="End a user's role now")
def revoke_role(
    user_id: Id,
    role: RoleName,
    body: RevokeIn,
    new_uow: NewUnitOfWorkDep,
    access: AccessDep,
    principal: Principal = Depends(role_granter),
) -> dict[str, int]:
    ensure_permission(principal, Permission.ADMIN_USERS)
    with new_uow() as uow:
        ended = access.revoke_role(
            uow, user_id, role, revoked_by=principal.actor, reason=body.reason
        )
        uow.commit()
    return {"ended": ended}
