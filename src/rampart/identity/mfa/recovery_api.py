"""HTTP API of the ways back to an account: new backup codes, lifting the hold an email-only
password reset starts, and the support-assisted factor reset (four eyes: one staff member asks,
another approves, each with a fresh security key of their own).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field

from rampart.access.api import authenticated
from rampart.access.domain import Principal
from rampart.identity.deps import MfaDep
from rampart.identity.mfa.api import (
    Body,
    CodeBody,
    commit_check,
    factor_attempt,
    guard_factor_change,
    person,
)
from rampart.identity.mfa.domain import SensitiveAction
from rampart.platform.http.deps import NewUnitOfWorkDep
from rampart.platform.http.inputs import Id, Multiline, Text
from rampart.platform.http.problems import problem_responses
from rampart.ratelimit.api import RateLimitsDep

router = APIRouter(tags=["mfa"])


class ResetBody(Body):
    verification_method: Text = Field(min_length=3, max_length=40)
    verification_reference: Text = Field(min_length=3, max_length=200)
    reason: Multiline = Field(min_length=5, max_length=1000)


@router.post("/v1/mfa/backup-codes", summary="Create ten new backup codes (old ones stop working)")
def backup_codes(
    new_uow: NewUnitOfWorkDep, mfa: MfaDep, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    with new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        codes = [c.reveal() for c in mfa.regenerate_backup_codes(uow, user_id)]
        uow.commit()
    return {"backup_codes": codes, "remaining": len(codes)}


@router.post(
    "/v1/mfa/recovery-hold/lift",
    summary="End the hold after a password reset by email early, with a backup code",
    responses=problem_responses(404, 429),
)
def recovery_hold_lift(
    body: CodeBody,
    limits: RateLimitsDep,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """Only the hold an email-only password reset started (404 `mfa-no-recovery-hold`
    otherwise, including during a support reset's cooling period); a wrong code is 401."""
    user_id = person(principal)
    with factor_attempt(limits, user_id), new_uow() as uow:
        check = mfa.lift_recovery_hold(uow, user_id, body.code)
        commit_check(uow, check)
    return {"lifted": True, "backup_codes_remaining": check.backup_codes_remaining}


# --- support ---------------------------------------------------------------------------------
@router.post(
    "/v1/admin/users/{user_id:id}/mfa/reset",
    status_code=202,
    summary="Support: ask to remove a user's factors after re-verifying their identity",
)
def support_reset(
    user_id: Id,
    body: ResetBody,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """First of four eyes: nothing is removed until a different staff member approves the
    request (`POST /v1/admin/mfa/reset-requests/{request_id}/approve`)."""
    with new_uow() as uow:
        # The operator proves a fresh security key of their own: a stolen support session alone
        # must not be enough to strip someone's account bare.
        mfa.require_step_up(uow.session, principal, SensitiveAction.MFA_RESET)
        pending = mfa.request_support_reset(
            uow,
            principal,
            user_id,
            verification_method=body.verification_method,
            verification_reference=body.verification_reference,
            reason=body.reason,
        )
        uow.commit()
    return pending.as_dict()


@router.post(
    "/v1/admin/mfa/reset-requests/{request_id:id}/approve",
    summary="Support: approve another staff member's factor-reset request (four eyes)",
)
def approve_support_reset(
    request_id: Id,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """Second of four eyes: a different staff member, with a fresh security key of their own,
    approves; every factor of the user goes and the 24-hour cooling period starts."""
    with new_uow() as uow:
        mfa.require_step_up(uow.session, principal, SensitiveAction.MFA_RESET)
        record = mfa.approve_support_reset(uow, principal, request_id)
        uow.commit()
    return {"reset_id": record.id, "cooling_until": record.cooling_until.isoformat()}
