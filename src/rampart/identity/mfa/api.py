"""HTTP API of second factors: the status, authenticator apps, codes by email or SMS, and
step-up; with what every MFA route shares (`require_step_up`, the dependency sensitive routes of
every domain use; `guard_factor_change`; `factor_attempt`; the request bodies). Security keys are
in `webauthn_api`, the login's second step in `login_api`, backup codes and the ways back
(recovery hold, support reset) in `recovery_api`.

Verification routes follow one rule: the attempt is committed *before* a failure is raised, so
wrong codes are counted (and audited) even though the request fails. Each runs inside
`factor_attempt`, which holds the MFA rate limiters: a unit is taken before the check and given
back when it passes, so the limiters count wrong guesses, never a person's successful sign-ins,
step-ups or enrolments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from rampart.access.api import authenticated
from rampart.access.domain import PermissionDeniedError, Principal, StaffMfaRequiredError
from rampart.config import MfaSettings
from rampart.identity.authn import set_session_cookie
from rampart.identity.db import SessionRow
from rampart.identity.deps import IdentityDep, MfaDep, mfa_slot
from rampart.identity.mfa.domain import (
    FactorKind,
    SensitiveAction,
    step_up_purpose,
)
from rampart.identity.mfa.service import FactorCheck, FactorResponse, MfaService
from rampart.identity.mfa.webauthn_json import AssertionCredential
from rampart.identity.mfa.webauthn_rp import MAX_CREDENTIAL_JSON
from rampart.kernel.clock import Clock, utc
from rampart.kernel.context import current_context
from rampart.kernel.errors import ValidationError
from rampart.kernel.ids import is_id
from rampart.platform.db import Database
from rampart.platform.http.access import declare_access
from rampart.platform.http.deps import (
    ClockDep,
    DatabaseDep,
    NewUnitOfWorkDep,
    SettingsDep,
    database_slot,
)
from rampart.platform.http.inputs import Id, Text, register_choice
from rampart.platform.http.problems import problem_responses
from rampart.platform.uow import UnitOfWork
from rampart.ratelimit.api import RateLimitsDep
from rampart.ratelimit.service import RateLimits

router = APIRouter(tags=["mfa"])

# `/v1/mfa/{channel:channel}` is only the code channels' path: `DELETE /v1/mfa/step-up` is 405.
register_choice("channel", "sms", "email")


# --- dependencies other domains and the other MFA routes use ----------------------------------
def require_step_up(
    permission: str | None, action: SensitiveAction
) -> Callable[[HTTPConnection], Any]:
    """A route dependency for a sensitive action: the caller holds `permission` (when given) and
    passed a second factor within `mfa.step_up_minutes`; otherwise 401 `step-up-required`.

    Withdrawals and API-key creation are also refused during a reset's cooling period.
    Usage: `principal: Principal = Depends(require_step_up(Permission.APIKEY_MANAGE,
    SensitiveAction.API_KEY_CREATE))`.
    """
    from rampart.access.api import requires

    check_permission = requires(permission) if permission else authenticated()

    async def dependency(request: HTTPConnection) -> Principal:
        principal: Principal = await check_permission(request)
        mfa = mfa_slot.of(request.app)
        db = database_slot.of(request.app)
        from starlette.concurrency import run_in_threadpool

        def check() -> None:
            with db.read() as session:
                mfa.require_step_up(session, principal, action)

        await run_in_threadpool(check)
        return principal

    dependency.__name__ = f"step_up_{action.value.replace('.', '_')}"
    return declare_access(dependency, f"{permission or 'authenticated'}+step-up")


def person(principal: Principal) -> str:
    # Factors belong to people; an API key can neither see nor change them.
    if principal.user_id is None or principal.method == "apikey":
        raise PermissionDeniedError("Sign in as yourself to manage second factors.")
    return principal.user_id


@contextmanager
def factor_attempt(
    limits: RateLimits | None, user_id: str, *, enrolment: bool = False
) -> Iterator[None]:
    """Run one second-factor check under the MFA rate limiters (fail closed: 429, or 503 with
    their backend down). Only a check that fails (raises) keeps its unit.

    Sign-in and step-up checks count against `user.mfa` and `ip.mfa`; enrolment checks (a first
    TOTP or channel code, a new key's attestation) against `user.mfa-enrol`, so that someone
    guessing at a person's sign-in cannot stop that person, signed in elsewhere, adding a key.
    """
    if limits is None:
        yield
        return
    hits = [("user.mfa-enrol" if enrolment else "user.mfa", user_id)]
    ip = current_context().client_ip
    if ip and not enrolment:
        hits.append(("ip.mfa", ip))
    with limits.attempt(hits):
        yield


def commit_check(uow: UnitOfWork, check: FactorCheck) -> None:
    uow.commit()
    check.raise_for_failure()


def first_backup_codes(mfa: MfaService, uow: UnitOfWork, user_id: str) -> list[str]:
    """With the first factor comes the way back: ten backup codes, shown this once."""
    if mfa.backup_codes_remaining(uow.session, user_id):
        return []
    return [c.reveal() for c in mfa.regenerate_backup_codes(uow, user_id)]


def guard_factor_change(
    mfa: MfaService, session: Session, principal: Principal, *, always_step_up: bool = False
) -> str:
    """Changing factors needs full re-authentication (ASVS 7.5.1): a fresh step-up with a
    factor the user has; for the very first factor, which nothing but the password protects, a
    sign-in within the step-up window. A staff member enrols their first one only from their
    enrolment link, never from a password-only sign-in (whoever has the password alone would
    otherwise add their own key and act as staff)."""
    user_id = person(principal)
    if always_step_up or mfa.has_mfa(session, user_id):
        mfa.require_step_up(session, principal, SensitiveAction.FACTORS_CHANGE)
    elif principal.withheld:
        raise StaffMfaRequiredError(
            "A staff account sets up its security key from the enrolment link an operator gives "
            "(`rampart users enrolment-link`)."
        )
    else:
        mfa.require_recent_sign_in(_signed_in_at(session, principal))
    return user_id


def _signed_in_at(session: Session, principal: Principal) -> datetime | None:
    """When the principal's session was opened, with the password: its sign-in."""
    if principal.method == "apikey" or not is_id(principal.credential_id or ""):
        return None
    row = session.get(SessionRow, principal.credential_id)
    if row is None or row.user_id != principal.user_id:
        return None
    return utc(row.created_at)


# --- bodies --------------------------------------------------------------------------------
class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeBody(Body):
    code: Text = Field(min_length=1, max_length=32)


class PhoneBody(Body):
    phone: Text = Field(min_length=4, max_length=40)


class FactorBody(Body):
    """One second-factor answer: a code (totp, backup_code, email, sms) or a WebAuthn assertion."""

    kind: Literal["totp", "webauthn", "email", "sms", "backup_code"]
    code: Text | None = Field(default=None, max_length=32)
    challenge_id: Id | None = None
    credential: AssertionCredential | None = None

    def response(self) -> FactorResponse:
        credential = self.credential.as_json() if self.credential is not None else None
        if credential is not None and len(orjson.dumps(credential)) > MAX_CREDENTIAL_JSON:
            raise ValidationError("The authenticator response is too large.")
        return FactorResponse(
            kind=FactorKind(self.kind),
            code=self.code,
            challenge_id=self.challenge_id,
            credential=credential,
        )


class ChallengeBody(Body):
    kind: Literal["webauthn", "email", "sms"]


# --- status and management -----------------------------------------------------------------
def _status(
    mfa: MfaService,
    db: Database,
    clock: Clock,
    settings: MfaSettings,
    user_id: str,
    principal: Principal,
) -> dict[str, Any]:
    with db.read() as session:
        summary = mfa.summary(session, user_id)
        keys = mfa.authenticators(session, user_id)
    now = clock.now().timestamp()
    window = settings.step_up_minutes * 60
    fresh_until = principal.mfa_at + window if principal.mfa_at else None
    return {
        "enrolled": summary.enrolled,
        "factors": summary.kinds(),
        "totp": summary.totp,
        "email": summary.email,
        "sms": summary.sms,
        "backup_codes_remaining": summary.backup_codes_remaining,
        "authenticators": [
            {
                "id": k.id,
                "name": k.name,
                "type": "passkey" if k.device_type == "multi_device" else "security-key",
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            }
            for k in keys
        ],
        "step_up": {
            "fresh": bool(fresh_until and fresh_until > now),
            "valid_until": fresh_until,
            "minutes": settings.step_up_minutes,
        },
    }


@router.get("/v1/mfa", summary="Your second factors and whether a step-up is fresh")
def mfa_status(
    mfa: MfaDep,
    db: DatabaseDep,
    clock: ClockDep,
    settings: SettingsDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    user_id = person(principal)
    return _status(mfa, db, clock, settings.mfa, user_id, principal)


@router.post(
    "/v1/mfa/totp",
    summary="Start setting up an authenticator app",
    responses=problem_responses(409),
)
def totp_begin(
    new_uow: NewUnitOfWorkDep, mfa: MfaDep, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    with new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        enrolment = mfa.begin_totp(uow, user_id, mfa.account_label(uow.session, user_id))
        uow.commit()
    return {"otpauth_uri": enrolment.uri, "secret": enrolment.secret, "qr_svg": enrolment.qr_svg}


@router.post(
    "/v1/mfa/totp/confirm",
    summary="Finish authenticator-app set-up with a first code",
    responses=problem_responses(404, 409, 429),
)
def totp_confirm(
    body: CodeBody,
    limits: RateLimitsDep,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    user_id = person(principal)
    with factor_attempt(limits, user_id, enrolment=True), new_uow() as uow:
        check = mfa.confirm_totp(uow, user_id, body.code)
        codes = first_backup_codes(mfa, uow, user_id) if check.ok else []
        commit_check(uow, check)
    return {"enrolled": True, "backup_codes": codes}


@router.delete("/v1/mfa/totp", summary="Remove the authenticator app", status_code=204)
def totp_remove(
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(require_step_up(None, SensitiveAction.FACTORS_CHANGE)),
) -> None:
    with new_uow() as uow:
        mfa.remove_totp(uow, person(principal))
        uow.commit()


@router.post("/v1/mfa/sms", summary="Start receiving codes by text message")
def sms_begin(
    body: PhoneBody,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    with new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        hint = mfa.enrol_sms(uow, user_id, body.phone)
        uow.commit()
    return {"sent_to": hint}


@router.post(
    "/v1/mfa/email",
    summary="Start receiving codes by email (403 where email is no second factor)",
    responses=problem_responses(403, 409, 429),
)
def email_begin(
    new_uow: NewUnitOfWorkDep, mfa: MfaDep, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    with new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        hint = mfa.enrol_email(uow, user_id)
        uow.commit()
    return {"sent_to": hint}


@router.post(
    "/v1/mfa/{channel:channel}/confirm",
    summary="Confirm email or SMS codes with the code sent",
    responses=problem_responses(409, 429),
)
def channel_confirm(
    channel: Literal["sms", "email"],
    body: CodeBody,
    limits: RateLimitsDep,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    user_id = person(principal)
    with factor_attempt(limits, user_id, enrolment=True), new_uow() as uow:
        check = mfa.confirm_channel(uow, user_id, FactorKind(channel), body.code)
        codes = first_backup_codes(mfa, uow, user_id) if check.ok else []
        commit_check(uow, check)
    return {"enrolled": True, "backup_codes": codes}


@router.delete("/v1/mfa/{channel:channel}", summary="Stop email or SMS codes", status_code=204)
def channel_remove(
    channel: Literal["sms", "email"],
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(require_step_up(None, SensitiveAction.FACTORS_CHANGE)),
) -> None:
    with new_uow() as uow:
        mfa.remove_channel(uow, person(principal), FactorKind(channel))
        uow.commit()


# --- step-up ---------------------------------------------------------------------------------
def factor_challenge(
    mfa: MfaService, uow: UnitOfWork, user_id: str, kind: str, purpose: str
) -> dict[str, Any]:
    """Begin a challenge for `purpose`: WebAuthn options, or a code sent by email or SMS."""
    if kind == "webauthn":
        ceremony = mfa.begin_webauthn_authentication(uow, user_id, purpose)
        return {"kind": kind, "challenge_id": ceremony.challenge_id, "options": ceremony.options}
    hint = mfa.send_code(uow, user_id, FactorKind(kind), purpose)
    return {"kind": kind, "sent_to": hint}


@router.post(
    "/v1/mfa/step-up/challenge",
    summary="Ask for a step-up challenge (WebAuthn options, or a code by email or SMS)",
    responses=problem_responses(404, 429),
)
def step_up_challenge(
    body: ChallengeBody,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    user_id = person(principal)
    with new_uow() as uow:
        result = factor_challenge(
            mfa, uow, user_id, body.kind, step_up_purpose(principal.credential_id)
        )
        uow.commit()
    return result


@router.post(
    "/v1/mfa/step-up",
    summary="Prove a second factor now, for sensitive actions",
    responses=problem_responses(404, 429),
)
def step_up(
    body: FactorBody,
    identity: IdentityDep,
    limits: RateLimitsDep,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    settings: SettingsDep,
    response: Response,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """A browser session's cookie is replaced on success (the old one stops working)."""
    user_id = person(principal)
    if principal.credential_id is None:
        raise PermissionDeniedError("This sign-in cannot step up.")
    sessions = identity.sessions
    with factor_attempt(limits, user_id), new_uow() as uow:
        check = mfa.verify(uow, user_id, step_up_purpose(principal.credential_id), body.response())
        mfa_at = secret = None
        if check.ok:
            mfa_at = sessions.record_second_factor(
                uow, user_id, principal.credential_id, webauthn=check.kind is FactorKind.WEBAUTHN
            )
            if principal.method == "session":
                secret = sessions.rotate_secret(uow, user_id, principal.credential_id)
        commit_check(uow, check)
    assert mfa_at is not None
    if secret is not None:
        set_session_cookie(response, settings.identity, secret)
    minutes = settings.mfa.step_up_minutes
    return {
        "mfa_at": mfa_at.timestamp(),
        "valid_until": (mfa_at + timedelta(minutes=minutes)).isoformat(),
        "backup_codes_remaining": check.backup_codes_remaining,
    }
