"""Administrators end sign-ins (one user's sessions, or everyone's: a suspected breach) and
start a user's password reset.

Each is audited with the administrator's reason. Ending sessions: every session ends, its refresh
tokens die and access tokens issued until now are refused; open streams close within seconds (see
`rampart.trading.api`, which re-checks its credential). A password reset sends the link to the
user's own address; the administrator sees neither the link nor any password, and needs a
security-key step-up like every sensitive staff action.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from rampart.access.api import requires
from rampart.access.domain import Permission, Principal
from rampart.identity.flows import in_transaction
from rampart.identity.mfa.api import require_step_up
from rampart.identity.mfa.domain import SensitiveAction
from rampart.platform.http.deps import get_container
from rampart.platform.http.inputs import Id, Multiline
from rampart.platform.http.problems import problem_responses

router = APIRouter(tags=["identity"])

admin_users = requires(Permission.ADMIN_USERS)
PasswordResetter = Annotated[
    Principal,
    Depends(require_step_up(Permission.ADMIN_USERS, SensitiveAction.PASSWORD_RESET_FOR_USER)),
]
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
    request: Request,
    _admin: Principal = Depends(admin_users),
) -> SessionsEnded:
    """Unknown user: 404. The user's open streams close within seconds."""
    container = get_container(request)
    sessions = container.identity.sessions
    ended = await in_transaction(
        container, lambda uow: sessions.end_user_sessions(uow, user_id, reason=body.reason)
    )
    return SessionsEnded(sessions=ended)


@router.post(
    "/v1/admin/sessions/end",
    response_model=SessionsEnded,
    summary="End every session and token of every user (the caller's too)",
)
async def end_all_sessions(
    body: EndSessionsIn, request: Request, _admin: Principal = Depends(admin_users)
) -> SessionsEnded:
    container = get_container(request)
    sessions = container.identity.sessions
    ended = await in_transaction(
        container, lambda uow: sessions.revoke_everyone(uow, reason=body.reason)
    )
    return SessionsEnded(sessions=ended)


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Multiline = Field(min_length=5, max_length=500)


class ResetSent(BaseModel):
    status: str
    detail: str


@router.post(
    "/v1/admin/users/{user_id:id}/password-reset",
    status_code=202,
    response_model=ResetSent,
    responses=problem_responses(404, 409),
    summary="Admin: email a user a link to reset their password",
)
async def send_password_reset(
    user_id: UserId, body: ResetIn, request: Request, principal: PasswordResetter
) -> ResetSent:
    """The link goes to the user's own address and is never shown here; the user chooses the
    new password. Unknown or closed user: 404; a locked account: 409 (unlock it first)."""
    container = get_container(request)
    accounts = container.identity.accounts
    await in_transaction(
        container,
        lambda uow: accounts.send_password_reset_for_operator(
            uow, user_id, reason=body.reason, actor=principal.actor
        ),
    )
    return ResetSent(
        status="reset_sent", detail="A password reset link is on its way to the user's address."
    )
