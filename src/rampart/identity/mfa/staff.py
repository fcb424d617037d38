"""Staff accounts over HTTP: enrolment from an operator's link, and the staff actions on accounts
and keys that the CLI also offers (unlock, a new enrolment link, signing-key rotation).

Enrolment: `rampart users create --role ADMIN` (or any staff role) makes an account without a
password and prints a single-use link (`/staff/enrol?token=...`, valid
`identity.staff_enrolment_hours`, stored as a hash). Its page sets the password and registers a
security key in one step: the token, not a session, authorises the WebAuthn registration, so the
account is never usable with a password alone. The owner then signs in with password and key, and
only that sign-in (or a WebAuthn step-up) makes staff permissions count
(`rampart.access.domain.person_principal`).

The staff actions here each need a WebAuthn step-up within `mfa.staff_step_up_minutes`.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from rampart.access.domain import Permission, Principal
from rampart.identity.deps import IdentityDep, MfaDep
from rampart.identity.mfa.api import commit_check, first_backup_codes, require_step_up
from rampart.identity.mfa.domain import SensitiveAction
from rampart.identity.mfa.webauthn_json import RegistrationCredential
from rampart.identity.mfa.webauthn_rp import MAX_CREDENTIAL_JSON
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.platform.http.access import public
from rampart.platform.http.deps import DatabaseDep, NewUnitOfWorkDep, SettingsDep
from rampart.platform.http.inputs import Id, Multiline, Text
from rampart.ratelimit.api import rate_limit

router = APIRouter(tags=["staff"])

Unlocker = Annotated[
    Principal, Depends(require_step_up(Permission.ADMIN_USERS, SensitiveAction.ACCOUNT_UNLOCK))
]
Enroller = Annotated[
    Principal, Depends(require_step_up(Permission.ADMIN_USERS, SensitiveAction.ROLES_CHANGE))
]
KeyRotator = Annotated[
    Principal, Depends(require_step_up(Permission.ADMIN_CONFIG, SensitiveAction.KEY_ROTATION))
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolmentTokenBody(_Body):
    token: Text = Field(min_length=16, max_length=128)


class EnrolmentBody(EnrolmentTokenBody):
    password: Text = Field(min_length=1, max_length=4096)
    challenge_id: Id
    credential: RegistrationCredential
    name: Text = Field(default="Security key", min_length=1, max_length=64)


class ReasonBody(_Body):
    reason: Multiline = Field(min_length=5, max_length=500)


# --- enrolment (public: the link's token is the credential) -----------------------------------
@router.post(
    "/v1/auth/staff-enrolment/challenge",
    dependencies=[Depends(public), Depends(rate_limit("ip.mfa"))],
    summary="Start registering a staff account's security key from its enrolment link",
)
def enrolment_challenge(
    body: EnrolmentTokenBody, new_uow: NewUnitOfWorkDep, identity: IdentityDep, mfa: MfaDep
) -> dict[str, Any]:
    with new_uow() as uow:
        user_id, email = identity.accounts.staff_enrolment_target(uow.session, body.token)
        ceremony = mfa.begin_webauthn_registration(uow, user_id, email)
        uow.commit()
    return {"challenge_id": ceremony.challenge_id, "options": ceremony.options}


@router.post(
    "/v1/auth/staff-enrolment",
    status_code=201,
    dependencies=[Depends(public), Depends(rate_limit("ip.mfa"))],
    summary="Finish a staff account's enrolment: set the password and register the key",
)
def enrol(
    body: EnrolmentBody,
    identity: IdentityDep,
    db: DatabaseDep,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
) -> dict[str, Any]:
    credential = body.credential.as_json()
    if len(orjson.dumps(credential)) > MAX_CREDENTIAL_JSON:
        raise ValidationError("The authenticator response is too large.")
    with db.read() as session:
        user_id, email = identity.accounts.staff_enrolment_target(session, body.token)
    password_hash = identity.hashing.hasher.hash(identity.policy.check(body.password, email))
    with new_uow() as uow:
        check = mfa.finish_webauthn_registration(
            uow, user_id, body.challenge_id, credential, body.name
        )
        codes: list[str] = []
        if check.ok:
            # The link is used up only by a key that registered: a failed ceremony may retry.
            identity.accounts.complete_staff_enrolment(uow, body.token, password_hash)
            codes = first_backup_codes(mfa, uow, user_id)
        commit_check(uow, check)
    authenticator = check.details.get("authenticator")
    return {"enrolled": True, "authenticator": authenticator, "backup_codes": codes}


# --- staff actions -------------------------------------------------------------------------
@router.post(
    "/v1/admin/users/{user_id:id}/staff-enrolment",
    status_code=201,
    summary="Admin: a new enrolment link for a staff account (a promoted user, a lost key)",
)
def new_enrolment_link(
    user_id: Id,
    new_uow: NewUnitOfWorkDep,
    identity: IdentityDep,
    settings: SettingsDep,
    principal: Enroller,
) -> dict[str, Any]:
    with new_uow() as uow:
        link = identity.accounts.staff_enrolment_link(uow, user_id, issued_by=principal.actor)
        uow.commit()
    hours = settings.identity.staff_enrolment_hours
    return {"enrolment_url": link, "expires_in_hours": hours}


@router.post(
    "/v1/admin/users/{user_id:id}/unlock",
    status_code=204,
    summary="Admin: unlock an account an operator locked",
)
def unlock(
    user_id: Id,
    body: ReasonBody,
    new_uow: NewUnitOfWorkDep,
    identity: IdentityDep,
    principal: Unlocker,
) -> None:
    with new_uow() as uow:
        identity.accounts.set_locked(uow, user_id, False, reason=body.reason)
        uow.commit()


@router.post(
    "/v1/admin/signing-keys/rotate",
    summary="Admin: sign access tokens with a new key (the old one stays published)",
)
def rotate_signing_key(
    identity: IdentityDep, new_uow: NewUnitOfWorkDep, principal: KeyRotator
) -> dict[str, str]:
    kid = identity.keys.rotate()
    with new_uow() as uow:
        uow.audit(AuditEvent(action="identity.signing_key.rotated", details={"kid": kid}))
        uow.commit()
    return {"kid": kid}
