"""HTTP API of the second step of signing in: a pending sign-in (the password passed) asks for a
challenge and finishes with a second factor. `complete_login` is shared with the console pages,
which finish a browser sign-in the same way.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from rampart.identity.authn import previous_session
from rampart.identity.deps import FlowsDep, IdentityDep, MfaDep
from rampart.identity.domain import PendingLoginError, token_hash
from rampart.identity.flows import FlowServices
from rampart.identity.mfa.api import (
    Body,
    FactorBody,
    commit_check,
    factor_attempt,
    factor_challenge,
)
from rampart.identity.mfa.domain import login_purpose
from rampart.identity.mfa.service import FactorResponse, MfaService
from rampart.platform.http.access import public
from rampart.platform.http.deps import NewUnitOfWorkDep
from rampart.platform.http.inputs import Text
from rampart.platform.http.problems import problem_responses
from rampart.platform.uow import UnitOfWork
from rampart.ratelimit.api import RateLimitsDep
from rampart.ratelimit.service import RateLimits

router = APIRouter(tags=["mfa"])


class PendingBody(Body):
    pending_token: Text = Field(min_length=16, max_length=128)


class PendingChallengeBody(PendingBody):
    kind: Literal["webauthn", "email", "sms"]


class PendingFactorBody(FactorBody):
    pending_token: Text = Field(min_length=16, max_length=128)


def pending_purpose(pending_token: str) -> str:
    """Codes and challenges of a pending sign-in are bound to that sign-in (by its token's
    hash, never the token itself)."""
    return login_purpose(token_hash(pending_token)[:40])


@router.post(
    "/v1/auth/login/mfa/challenge",
    dependencies=[Depends(public)],
    summary="Ask for a second-factor challenge for a pending sign-in",
    responses=problem_responses(401, 404, 429),
)
def login_challenge(
    body: PendingChallengeBody, identity: IdentityDep, new_uow: NewUnitOfWorkDep, mfa: MfaDep
) -> dict[str, Any]:
    login = identity.login
    with new_uow() as uow:
        user_id = login.pending_user(uow.session, body.pending_token)
        result = factor_challenge(mfa, uow, user_id, body.kind, pending_purpose(body.pending_token))
        uow.commit()
    return result


@router.post(
    "/v1/auth/login/mfa",
    dependencies=[Depends(public)],
    summary="Finish a pending sign-in with a second factor; returns the tokens",
    responses=problem_responses(401, 404, 429),
)
def login_second_factor(
    body: PendingFactorBody,
    request: Request,
    mfa: MfaDep,
    limits: RateLimitsDep,
    services: FlowsDep,
) -> dict[str, Any]:
    issued = complete_login(
        services,
        mfa,
        limits,
        request,
        body.pending_token,
        body.response(),
        kind="api",
    )
    return {
        "token_type": "Bearer",
        "access_token": issued.access_token,
        "expires_at": issued.access_expires_at,
        "refresh_token": issued.refresh_token,
        "refresh_expires_at": issued.refresh_expires_at.isoformat()
        if issued.refresh_expires_at
        else None,
        "session_id": issued.session_id,
    }


def complete_login(
    services: FlowServices,
    mfa: MfaService,
    limits: RateLimits | None,
    request: Request,
    pending_token: str,
    response: FactorResponse,
    *,
    kind: str,
) -> Any:
    """Check a factor for a pending sign-in and, when it passes, issue its session or tokens.

    A wrong factor is committed (counted on the pending sign-in and by the rate limiter) before
    it is refused; five failures void the pending sign-in.
    """
    login = services.identity.login
    with services.db.read() as session:
        user_id = login.pending_user(session, pending_token)
    with factor_attempt(limits, user_id), services.uow() as uow:
        pending_kind = _pending_kind(uow, pending_token)
        if pending_kind != kind:
            # A browser sign-in finishes only on the pages, an API one only here.
            raise PendingLoginError
        check = mfa.verify(uow, user_id, pending_purpose(pending_token), response)
        if not check.ok:
            login.record_factor_failure(uow, pending_token)
            commit_check(uow, check)
        issued = login.complete_pending_login(
            uow,
            pending_token,
            factor=check.kind.value,
            previous_session=previous_session(request) if kind == "browser" else None,
        )
        uow.commit()
    return issued


def _pending_kind(uow: UnitOfWork, pending_token: str) -> str:
    from sqlalchemy import select

    from rampart.identity.db import PendingLoginRow

    kind = uow.session.scalar(
        select(PendingLoginRow.kind).where(PendingLoginRow.token_hash == token_hash(pending_token))
    )
    if kind is None:
        raise PendingLoginError
    return str(kind)
