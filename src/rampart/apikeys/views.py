"""What of an API key its owner and operators see (never the secret), and its lifecycle state as
derived from the dates on its row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rampart.apikeys.db import ApiKeyRow
from rampart.apikeys.domain import KeyDates, KeyState, is_old, key_state
from rampart.kernel.clock import utc
from rampart.kernel.secret import Secret


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    """What an owner sees of a key: never the secret."""

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
    #: Older than `apikeys.max_age_days`: rotate it.
    old: bool


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKeyView
    #: The HMAC shared secret, shown this once (None for ed25519 keys).
    secret: Secret[str] | None


def key_dates(row: ApiKeyRow) -> KeyDates:
    return KeyDates(
        created_at=utc(row.created_at),
        expires_at=utc(row.expires_at) if row.expires_at else None,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
        grace_until=utc(row.grace_until) if row.grace_until else None,
    )


def row_state(row: ApiKeyRow, now: datetime) -> KeyState:
    return key_state(key_dates(row), now)


def key_view(row: ApiKeyRow, now: datetime, max_age_days: int) -> ApiKeyView:
    created = utc(row.created_at)
    return ApiKeyView(
        id=row.id,
        label=row.label,
        algorithm=row.algorithm,
        scopes=sorted(row.scopes),
        allowed_cidrs=list(row.allowed_cidrs),
        secret_hint=row.secret_hint,
        public_key=row.public_key,
        created_at=created,
        expires_at=utc(row.expires_at) if row.expires_at else None,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
        grace_until=utc(row.grace_until) if row.grace_until else None,
        replaced_by=row.replaced_by,
        last_used_at=utc(row.last_used_at) if row.last_used_at else None,
        last_used_ip=row.last_used_ip,
        state=row_state(row, now).value,
        old=is_old(created, now, max_age_days),
    )
