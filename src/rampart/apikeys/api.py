"""HTTP routes for API keys: create (step-up), list, show, rotate, revoke; and `whoami`.

Each handler opens and closes its own unit of work (reads use a read session) rather than taking
one from a request-scoped dependency: the transaction then ends before the handler returns or
raises, never while the request waits, after the handler, for its access decisions to become
durable (on SQLite an open write transaction would hold up the audit log's write).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from rampart.access.api import authenticated, requires
from rampart.access.domain import Permission, Principal
from rampart.apikeys.service import ApiKeyService
from rampart.apikeys.views import ApiKeyView, CreatedKey
from rampart.platform.http.deps import DatabaseDep, NewUnitOfWorkDep
from rampart.platform.http.inputs import Id, Multiline, Text
from rampart.platform.http.services import ServiceSlot
from rampart.ratelimit.api import rate_limit

router = APIRouter(prefix="/api/v1/apikeys", tags=["api keys"])

#: API keys and signed requests.
apikeys_slot: ServiceSlot[ApiKeyService] = ServiceSlot("api key service")
ApiKeysDep = Annotated[ApiKeyService, Depends(apikeys_slot)]

manage = requires(Permission.APIKEY_MANAGE)
who = authenticated()


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["hmac-sha256", "ed25519"] = "hmac-sha256"
    scopes: list[Literal["trade", "data", "read"]] = Field(min_length=1, max_length=3)
    label: Text | None = Field(default=None, max_length=100)
    allowed_cidrs: list[Annotated[Text, Field(max_length=64)]] = Field(
        default_factory=list, max_length=64
    )
    expires_at: datetime | None = None
    #: ed25519 only: the public key, PEM or base64 of the 32 raw bytes.
    public_key: Multiline | None = Field(default=None, max_length=400)


class RotateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key: Multiline | None = Field(default=None, max_length=400)


class RevokeKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Multiline | None = Field(default=None, max_length=500)


class KeyOut(BaseModel):
    id: str
    label: str | None
    algorithm: str
    scopes: list[str]
    allowed_cidrs: list[str]
    secret_hint: str | None
    public_key: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    grace_until: datetime | None
    replaced_by: str | None
    last_used_at: datetime | None
    last_used_ip: str | None
    state: str
    old: bool

    @classmethod
    def of(cls, view: ApiKeyView) -> KeyOut:
        return cls.model_validate(view, from_attributes=True)


class CreatedKeyOut(BaseModel):
    key: KeyOut
    #: The shared secret of an hmac-sha256 key. Shown once: store it now.
    secret: str | None
    key_id: str

    @classmethod
    def of(cls, created: CreatedKey) -> CreatedKeyOut:
        return cls(
            key=KeyOut.of(created.key),
            secret=created.secret.reveal() if created.secret is not None else None,
            key_id=created.key.id,
        )


class KeyList(BaseModel):
    items: list[KeyOut]


class WhoAmI(BaseModel):
    actor: str
    user_id: str | None
    method: str
    scopes: list[str] | None
    permissions: list[str]


@router.get("/whoami", summary="Who the request authenticates as (a signed-request check)")
def whoami(principal: Principal = Depends(who)) -> WhoAmI:
    return WhoAmI(
        actor=principal.actor,
        user_id=principal.user_id,
        method=principal.method,
        scopes=sorted(principal.scopes) if principal.scopes is not None else None,
        permissions=sorted(principal.permissions),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (needs a second factor within the last few minutes)",
    dependencies=[Depends(rate_limit("user.apikeys", after=manage))],
)
def create_key(
    body: CreateKey,
    new_uow: NewUnitOfWorkDep,
    keys: ApiKeysDep,
    principal: Principal = Depends(manage),
) -> CreatedKeyOut:
    with new_uow() as uow:
        created = keys.create(
            uow,
            principal,
            algorithm=body.algorithm,
            scopes=list(body.scopes),
            label=body.label,
            allowed_cidrs=body.allowed_cidrs,
            expires_at=body.expires_at,
            public_key=body.public_key,
        )
        uow.commit()
    return CreatedKeyOut.of(created)


@router.get("", summary="Your API keys (never their secrets)")
def list_keys(db: DatabaseDep, keys: ApiKeysDep, principal: Principal = Depends(manage)) -> KeyList:
    with db.read() as session:
        views = keys.list(session, principal)
    return KeyList(items=[KeyOut.of(v) for v in views])


@router.get("/{key_id:id}", summary="One of your API keys")
def get_key(
    key_id: Id, db: DatabaseDep, keys: ApiKeysDep, principal: Principal = Depends(manage)
) -> KeyOut:
    with db.read() as session:
        view = keys.get(session, principal, key_id)
    return KeyOut.of(view)


@router.post(
    "/{key_id:id}/rotate",
    summary="Replace a key; the old one keeps working for the grace period",
    dependencies=[Depends(rate_limit("user.apikeys", after=manage))],
)
def rotate_key(
    key_id: Id,
    new_uow: NewUnitOfWorkDep,
    keys: ApiKeysDep,
    body: RotateKey | None = None,
    principal: Principal = Depends(manage),
) -> CreatedKeyOut:
    with new_uow() as uow:
        created = keys.rotate(uow, principal, key_id, public_key=body.public_key if body else None)
        uow.commit()
    return CreatedKeyOut.of(created)


@router.delete("/{key_id:id}", summary="Revoke a key at once")
def revoke_key(
    key_id: Id, new_uow: NewUnitOfWorkDep, keys: ApiKeysDep, principal: Principal = Depends(manage)
) -> KeyOut:
    with new_uow() as uow:
        view = keys.revoke(uow, principal, key_id)
        uow.commit()
    return KeyOut.of(view)
