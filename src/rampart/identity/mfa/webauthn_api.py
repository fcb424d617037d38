"""HTTP API of security keys and passkeys (WebAuthn): registering, renaming and removing them.

Using a key to sign in or step up goes through the factor routes of `rampart.identity.mfa.api`
and `rampart.identity.mfa.login_api`, like every other second factor.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends
from pydantic import Field

from rampart.access.api import authenticated
from rampart.access.domain import Principal
from rampart.identity.deps import MfaDep
from rampart.identity.mfa.api import (
    Body,
    commit_check,
    factor_attempt,
    first_backup_codes,
    guard_factor_change,
    person,
    require_step_up,
)
from rampart.identity.mfa.domain import SensitiveAction
from rampart.identity.mfa.webauthn_json import RegistrationCredential
from rampart.identity.mfa.webauthn_rp import MAX_CREDENTIAL_JSON
from rampart.kernel.errors import ValidationError
from rampart.platform.http.deps import NewUnitOfWorkDep
from rampart.platform.http.inputs import Id, Text
from rampart.platform.http.problems import problem_responses
from rampart.ratelimit.api import RateLimitsDep

router = APIRouter(tags=["mfa"])


class NameBody(Body):
    name: Text = Field(min_length=1, max_length=64)


class RegistrationBody(Body):
    credential: RegistrationCredential
    name: Text = Field(default="Security key", min_length=1, max_length=64)


@router.post("/v1/mfa/webauthn/registrations", summary="Start registering a key or passkey")
def webauthn_register_begin(
    new_uow: NewUnitOfWorkDep, mfa: MfaDep, principal: Principal = Depends(authenticated())
) -> dict[str, Any]:
    with new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        ceremony = mfa.begin_webauthn_registration(
            uow, user_id, mfa.account_label(uow.session, user_id)
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
    limits: RateLimitsDep,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> dict[str, Any]:
    credential = body.credential.as_json()
    if len(orjson.dumps(credential)) > MAX_CREDENTIAL_JSON:
        raise ValidationError("The authenticator response is too large.")
    user_id = person(principal)
    with factor_attempt(limits, user_id, enrolment=True), new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        check = mfa.finish_webauthn_registration(uow, user_id, challenge_id, credential, body.name)
        codes = first_backup_codes(mfa, uow, user_id) if check.ok else []
        commit_check(uow, check)
    return {"id": check.details.get("authenticator"), "backup_codes": codes}


@router.patch(
    "/v1/mfa/webauthn/{authenticator_id:id}", summary="Rename a key or passkey", status_code=204
)
def webauthn_rename(
    authenticator_id: Id,
    body: NameBody,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(authenticated()),
) -> None:
    with new_uow() as uow:
        user_id = guard_factor_change(mfa, uow.session, principal)
        mfa.rename_authenticator(uow, user_id, authenticator_id, body.name)
        uow.commit()


@router.delete(
    "/v1/mfa/webauthn/{authenticator_id:id}", summary="Remove a key or passkey", status_code=204
)
def webauthn_remove(
    authenticator_id: Id,
    new_uow: NewUnitOfWorkDep,
    mfa: MfaDep,
    principal: Principal = Depends(require_step_up(None, SensitiveAction.FACTORS_CHANGE)),
) -> None:
    with new_uow() as uow:
        mfa.remove_authenticator(uow, person(principal), authenticator_id)
        uow.commit()
