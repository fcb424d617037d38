"""HTTP API of second factors: enrolment and management, the login's second step, step-up, and
the support-assisted reset. Also `require_step_up`, the dependency sensitive routes use.

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
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from rampart.access.api import authenticated
from rampart.access.domain import PermissionDeniedError, Principal, StaffMfaRequiredError
from rampart.identity.authn import previous_session, set_session_cookie
from rampart.identity.db import SessionRow
from rampart.identity.domain import PendingLoginError, token_hash
from rampart.identity.mfa.domain import (
    FactorKind,
    SensitiveAction,
    login_purpose,
    step_up_purpose,
)
from rampart.identity.mfa.service import FactorCheck, FactorResponse, MfaService
from rampart.identity.mfa.webauthn_json import AssertionCredential, RegistrationCredential
from rampart.identity.mfa.webauthn_rp import MAX_CREDENTIAL_JSON
from rampart.kernel.clock import utc
from rampart.kernel.context import current_context
from rampart.kernel.errors import ValidationError
from rampart.kernel.ids import is_id
from rampart.platform.http.access import declare_access, public
from rampart.platform.http.deps import get_container
from rampart.platform.http.inputs import Id, Multiline, Text, register_choice
from rampart.platform.http.problems import problem_responses
from rampart.platform.uow import UnitOfWork

router = APIRouter(tags=["mfa"])

# `/v1/mfa/{channel:channel}` is only the code channels' path: `DELETE /v1/mfa/step-up` is 405.
register_choice("channel", "sms", "email")


# --- dependencies other domains use ------------------------------------------------------------
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
        container = request.app.state.container
        mfa: MfaService = container.mfa
        from starlette.concurrency import run_in_threadpool

        def check() -> None:
            with container.db.read() as session:
                mfa.require_step_up(session, principal, action)

        await run_in_threadpool(check)
        return principal

    dependency.__name__ = f"step_up_{action.value.replace('.', '_')}"
    return declare_access(dependency, f"{permission or 'authenticated'}+step-up")


def _person(principal: Principal) -> str:
    # Factors belong to people; an API key can neither see nor change them.
    if principal.user_id is None or principal.method == "apikey":
        raise PermissionDeniedError("Sign in as yourself to manage second factors.")
    return principal.user_id


@contextmanager
def factor_attempt(container: Any, user_id: str, *, enrolment: bool = False) -> Iterator[None]:
    """Run one second-factor check under the MFA rate limiters (fail closed: 429, or 503 with
    their backend down). Only a check that fails (raises) keeps its unit.

    Sign-in and step-up checks count against `user.mfa` and `ip.mfa`; enrolment checks (a first
    TOTP or channel code, a new key's attestation) against `user.mfa-enrol`, so that someone
    guessing at a person's sign-in cannot stop that person, signed in elsewhere, adding a key.
    """
    limits = getattr(container, "ratelimits", None)
    if limits is None:
        yield
        return
    hits = [("user.mfa-enrol" if enrolment else "user.mfa", user_id)]
    ip = current_context().client_ip
    if ip and not enrolment:
        hits.append(("ip.mfa", ip))
    with limits.attempt(hits):
        yield


def _commit_check(uow: UnitOfWork, check: FactorCheck) -> None:
    uow.commit()
    check.raise_for_failure()


def guard_factor_change(
    mfa: MfaService, session: Session, principal: Principal, *, always_step_up: bool = False
) -> str:
    """Changing factors needs full re-authentication (ASVS 7.5.1): a fresh step-up with a
    factor the user has; for the very first factor, which nothing but the password protects, a
    sign-in within the step-up window. A staff member enrols their first one only from their
    enrolment link, never from a password-only sign-in (whoever has the password alone would
    otherwise add their own key and act as staff)."""
    user_id = _person(principal)
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


def _guard_factor_change(mfa: MfaService, uow: UnitOfWork, principal: Principal) -> str:
    return guard_factor_change(mfa, uow.session, principal)


def _account_label(request: Request, uow: UnitOfWork, user_id: str) -> str:
    mfa: MfaService = get_container(request).mfa
    return mfa.account_label(uow.session, user_id)


# --- bodies --------------------------------------------------------------------------------
class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeBody(Body):
    code: Text = Field(min_length=1, max_length=32)


class PhoneBody(Body):
    phone: Text = Field(min_length=4, max_length=40)


class NameBody(Body):
    name: Text = Field(min_length=1, max_length=64)


class RegistrationBody(Body):
    credential: RegistrationCredential
    name: Text = Field(default="Security key", min_length=1, max_length=64)


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


class PendingBody(Body):
    pending_token: Text = Field(min_length=16, max_length=128)


class PendingChallengeBody(PendingBody):
    kind: Literal["webauthn", "email", "sms"]


class PendingFactorBody(FactorBody):
    pending_token: Text = Field(min_length=16, max_length=128)


class ResetBody(Body):
    verification_method: Text = Field(min_length=3, max_length=40)
    verification_reference: Text = Field(min_length=3, max_length=200)
    reason: Multiline = Field(min_length=5, max_length=1000)


# --- status and management -----------------------------------------------------------------
def _status(
    mfa: MfaService, request: Request, user_id: str, principal: Principal
) -> dict[str, Any]:
    container = get_container(request)
    with container.db.read() as session:
        summary = mfa.summary(session, user_id)
        keys = mfa.authenticators(session, user_id)
    now = container.clock.now().timestamp()
    window = container.settings.mfa.step_up_minutes * 60
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
            "minutes": container.settings.mfa.step_up_minutes,
        },
    }


@router.get("/v1/mfa", summary="Your second factors and whether a step-up is fresh")
def mfa_status(request: Request, principal: Principal = Depends(authenticated())) -> dict[str, Any]:
    user_id = _person(principal)
    return _status(get_container(request).mfa, request, user_id, principal)


@router.post(
    "/v1/mfa/totp",
    summary="Start setting up an authenticator app",
    responses=problem_responses(409),
)
def totp_begin(request: Request, principal: Principal = Depends(authenticated())) -> dict[str, Any]:
    container = get_container(request)
    with container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        enrolment = container.mfa.begin_totp(uow, user_id, _account_label(request, uow, user_id))
        uow.commit()
    return {"otpauth_uri": enrolment.uri, "secret": enrolment.secret, "qr_svg": enrolment.qr_svg}


@router.post(
    "/v1/mfa/totp/confirm",
    summary="Finish authenticator-app set-up with a first code",
    responses=problem_responses(404, 409, 429),
)
def totp_confirm(
    body: CodeBody, request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    container = get_container(request)
    user_id = _person(principal)
    with factor_attempt(container, user_id, enrolment=True), container.uow() as uow:
        check = container.mfa.confirm_totp(uow, user_id, body.code)
        codes = _first_backup_codes(container.mfa, uow, user_id) if check.ok else []
        _commit_check(uow, check)
    return {"enrolled": True, "backup_codes": codes}


def _first_backup_codes(mfa: MfaService, uow: UnitOfWork, user_id: str) -> list[str]:
    """With the first factor comes the way back: ten backup codes, shown this once."""
    if mfa.backup_codes_remaining(uow.session, user_id):
        return []
    return [c.reveal() for c in mfa.regenerate_backup_codes(uow, user_id)]


@router.delete("/v1/mfa/totp", summary="Remove the authenticator app", status_code=204)
def totp_remove(
    request: Request,
    principal: Principal = Depends(require_step_up(None, SensitiveAction.FACTORS_CHANGE)),
) -> None:
    container = get_container(request)
    with container.uow() as uow:
        container.mfa.remove_totp(uow, _person(principal))
        uow.commit()


@router.post("/v1/mfa/backup-codes", summary="Create ten new backup codes (old ones stop working)")
def backup_codes(
    request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    container = get_container(request)
    with container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user_id)]
        uow.commit()
    return {"backup_codes": codes, "remaining": len(codes)}


@router.post("/v1/mfa/webauthn/registrations", summary="Start registering a key or passkey")
def webauthn_register_begin(
    request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    container = get_container(request)
    with container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        ceremony = container.mfa.begin_webauthn_registration(
            uow, user_id, _account_label(request, uow, user_id)
        )
        uow.commit()
    return {"challenge_id": ceremony.challenge_id, "options": ceremony.options}


@router.post(
    "/v1/mfa/webauthn/registrations/{challenge_id:id}",
    summary="Finish registering a key or passkey",
    status_code=201,
    responses=problem_responses(409, 429),
)
def webauthn_register_finish(
    challenge_id: Id,
    body: RegistrationBody,
    request: Request,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    container = get_container(request)
    credential = body.credential.as_json()
    if len(orjson.dumps(credential)) > MAX_CREDENTIAL_JSON:
        raise ValidationError("The authenticator response is too large.")
    user_id = _person(principal)
    with factor_attempt(container, user_id, enrolment=True), container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        check = container.mfa.finish_webauthn_registration(
            uow, user_id, challenge_id, credential, body.name
        )
        codes = _first_backup_codes(container.mfa, uow, user_id) if check.ok else []
        _commit_check(uow, check)
    return {"id": check.details.get("authenticator"), "backup_codes": codes}


@router.patch(
    "/v1/mfa/webauthn/{authenticator_id:id}", summary="Rename a key or passkey", status_code=204
)
def webauthn_rename(
    authenticator_id: Id,
    body: NameBody,
    request: Request,
    principal: Principal = Depends(authenticated()),
) -> None:
    container = get_container(request)
    with container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        container.mfa.rename_authenticator(uow, user_id, authenticator_id, body.name)
        uow.commit()


@router.delete(
    "/v1/mfa/webauthn/{authenticator_id:id}", summary="Remove a key or passkey", status_code=204
)
def webauthn_remove(
    authenticator_id: Id,
    request: Request,
    principal: Principal = Depends(require_step_up(None, SensitiveAction.FACTORS_CHANGE)),
) -> None:
    container = get_container(request)
    with container.uow() as uow:
        container.mfa.remove_authenticator(uow, _person(principal), authenticator_id)
        uow.commit()


@router.post("/v1/mfa/sms", summary="Start receiving codes by text message")
def sms_begin(
    body: PhoneBody, request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    container = get_container(request)
    with container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        hint = container.mfa.enrol_sms(uow, user_id, body.phone)
        uow.commit()
    return {"sent_to": hint}


@router.post(
    "/v1/mfa/email",
    summary="Start receiving codes by email (403 where email is no second factor)",
    responses=problem_responses(403, 409, 429),
)
def email_begin(
    request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    container = get_container(request)
    with container.uow() as uow:
        user_id = _guard_factor_change(container.mfa, uow, principal)
        hint = container.mfa.enrol_email(uow, user_id)
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
    request: Request,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    container = get_container(request)
    user_id = _person(principal)
    with factor_attempt(container, user_id, enrolment=True), container.uow() as uow:
        check = container.mfa.confirm_channel(uow, user_id, FactorKind(channel), body.code)
        codes = _first_backup_codes(container.mfa, uow, user_id) if check.ok else []
        _commit_check(uow, check)
    return {"enrolled": True, "backup_codes": codes}


@router.delete("/v1/mfa/{channel:channel}", summary="Stop email or SMS codes", status_code=204)
def channel_remove(
    channel: Literal["sms", "email"],
    request: Request,
    principal: Principal = Depends(require_step_up(None, SensitiveAction.FACTORS_CHANGE)),
) -> None:
    container = get_container(request)
    with container.uow() as uow:
        container.mfa.remove_channel(uow, _person(principal), FactorKind(channel))
        uow.commit()


# --- step-up ---------------------------------------------------------------------------------
def _challenge(
    mfa: MfaService, uow: UnitOfWork, user_id: str, kind: str, purpose: str
) -> dict[str, Any]:
    if kind == "webauthn":
        ceremony = mfa.begin_webauthn_authentication(uow, user_id, purpose)
        return {"kind": kind, "challenge_id": ceremony.challenge_id, "options": ceremony.options}
    hint = mfa.send_code(uow, user_id, FactorKind(kind), purpose)
    return {"kind": kind, "sent_to": hint}


@router.post(
    "/v1/mfa/recovery-hold/lift",
    summary="End the hold after a password reset by email early, with a backup code",
    responses=problem_responses(404, 429),
)
def recovery_hold_lift(
    body: CodeBody, request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    """Only the hold an email-only password reset started (404 `mfa-no-recovery-hold`
    otherwise, including during a support reset's cooling period); a wrong code is 401."""
    container = get_container(request)
    user_id = _person(principal)
    with factor_attempt(container, user_id), container.uow() as uow:
        check = container.mfa.lift_recovery_hold(uow, user_id, body.code)
        _commit_check(uow, check)
    return {"lifted": True, "backup_codes_remaining": check.backup_codes_remaining}


@router.post(
    "/v1/mfa/step-up/challenge",
    summary="Ask for a step-up challenge (WebAuthn options, or a code by email or SMS)",
    responses=problem_responses(404, 429),
)
def step_up_challenge(
    body: ChallengeBody, request: Request, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    container = get_container(request)
    user_id = _person(principal)
    with container.uow() as uow:
        result = _challenge(
            container.mfa, uow, user_id, body.kind, step_up_purpose(principal.credential_id)
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
    request: Request,
    response: Response,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """A browser session's cookie is replaced on success (the old one stops working)."""
    container = get_container(request)
    user_id = _person(principal)
    if principal.credential_id is None:
        raise PermissionDeniedError("This sign-in cannot step up.")
    sessions = container.identity.sessions
    with factor_attempt(container, user_id), container.uow() as uow:
        check = container.mfa.verify(
            uow, user_id, step_up_purpose(principal.credential_id), body.response()
        )
        mfa_at = secret = None
        if check.ok:
            mfa_at = sessions.record_second_factor(
                uow, user_id, principal.credential_id, webauthn=check.kind is FactorKind.WEBAUTHN
            )
            if principal.method == "session":
                secret = sessions.rotate_secret(uow, user_id, principal.credential_id)
        _commit_check(uow, check)
    assert mfa_at is not None
    if secret is not None:
        set_session_cookie(response, container.settings.identity, secret)
    minutes = container.settings.mfa.step_up_minutes
    return {
        "mfa_at": mfa_at.timestamp(),
        "valid_until": (mfa_at + timedelta(minutes=minutes)).isoformat(),
        "backup_codes_remaining": check.backup_codes_remaining,
    }


# --- the second step of signing in -----------------------------------------------------------
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
def login_challenge(body: PendingChallengeBody, request: Request) -> dict[str, Any]:
    container = get_container(request)
    login = container.identity.login
    with container.uow() as uow:
        user_id = login.pending_user(uow.session, body.pending_token)
        result = _challenge(
            container.mfa, uow, user_id, body.kind, pending_purpose(body.pending_token)
        )
        uow.commit()
    return result


@router.post(
    "/v1/auth/login/mfa",
    dependencies=[Depends(public)],
    summary="Finish a pending sign-in with a second factor; returns the tokens",
    responses=problem_responses(401, 404, 429),
)
def login_second_factor(body: PendingFactorBody, request: Request) -> dict[str, Any]:
    container = get_container(request)
    issued = complete_login(container, request, body.pending_token, body.response(), kind="api")
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
    container: Any, request: Request, pending_token: str, response: FactorResponse, *, kind: str
) -> Any:
    """Check a factor for a pending sign-in and, when it passes, issue its session or tokens.

    A wrong factor is committed (counted on the pending sign-in and by the rate limiter) before
    it is refused; five failures void the pending sign-in.
    """
    login = container.identity.login
    with container.db.read() as session:
        user_id = login.pending_user(session, pending_token)
    with factor_attempt(container, user_id), container.uow() as uow:
        pending_kind = _pending_kind(uow, pending_token)
        if pending_kind != kind:
            # A browser sign-in finishes only on the pages, an API one only here.
            raise PendingLoginError
        check = container.mfa.verify(uow, user_id, pending_purpose(pending_token), response)
        if not check.ok:
            login.record_factor_failure(uow, pending_token)
            _commit_check(uow, check)
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


# --- support ---------------------------------------------------------------------------------
@router.post(
    "/v1/admin/users/{user_id:id}/mfa/reset",
    status_code=202,
    summary="Support: ask to remove a user's factors after re-verifying their identity",
)
def support_reset(
    user_id: Id,
    body: ResetBody,
    request: Request,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """First of four eyes: nothing is removed until a different staff member approves the
    request (`POST /v1/admin/mfa/reset-requests/{request_id}/approve`)."""
    container = get_container(request)
    with container.uow() as uow:
        # The operator proves a fresh security key of their own: a stolen support session alone
        # must not be enough to strip someone's account bare.
        container.mfa.require_step_up(uow.session, principal, SensitiveAction.MFA_RESET)
        pending = container.mfa.request_support_reset(
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
    request: Request,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    """Second of four eyes: a different staff member, with a fresh security key of their own,
    approves; every factor of the user goes and the 24-hour cooling period starts."""
    container = get_container(request)
    with container.uow() as uow:
        container.mfa.require_step_up(uow.session, principal, SensitiveAction.MFA_RESET)
        record = container.mfa.approve_support_reset(uow, principal, request_id)
        uow.commit()
    return {"reset_id": record.id, "cooling_until": record.cooling_until.isoformat()}
