"""Administrators end sign-ins: one user's sessions, or everyone's (a suspected breach).

Each is audited with the administrator's reason. Every session ends, its refresh tokens die and
access tokens issued until now are refused; open streams close within seconds (see
`rampart.trading.api`, which re-checks its credential).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal
from rampart.identity.deps import FlowsDep, IdentityDep
from rampart.identity.flows import in_transaction
from rampart.platform.http.inputs import Id, Multiline

router = APIRouter(tags=["identity"])

admin_users = requires(Permission.ADMIN_USERS)
UserId = Id


class EndSessionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Multiline = Field(min_length=3, max_length=500)


class SessionsEnded(BaseModel):
    sessions: int


@router.post(
    "/v1/admin/users/{user_id:id}/sessions/end",
    response_model=SessionsEnded,
    summary="End every session and token of one user",
)
async def end_user_sessions(
    user_id: UserId,
    body: EndSessionsIn,
    identity: IdentityDep,
    services: FlowsDep,
    _admin: Principal = Depends(admin_users),
) -> SessionsEnded:
    """Unknown user: 404. The user's open streams close within seconds."""
    sessions = identity.sessions
    ended = await in_transaction(
        services, lambda uow: sessions.end_user_sessions(uow, user_id, reason=body.reason)
    )
    return SessionsEnded(sessions=ended)


@router.post(
    "/v1/admin/sessions/end",
    response_model=SessionsEnded,
    summary="End every session and token of every user (the caller's too)",
)
async def end_all_sessions(
    body: EndSessionsIn,
    identity: IdentityDep,
    services: FlowsDep,
    _admin: Principal = Depends(admin_users),
) -> SessionsEnded:
    sessions = identity.sessions
    ended = await in_transaction(
        services, lambda uow: sessions.revoke_everyone(uow, reason=body.reason)
    )
    return SessionsEnded(sessions=ended)
