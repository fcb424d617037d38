"""Authenticating with an API key: the key a signature names, its owner's standing, and the
verified-key cache that lets a signed request pass without a database read.

The signature itself is checked by `rampart.apikeys.auth.SignatureAuthenticator`, which asks this
part for the key (`cached_key`, else `load_key`) and then for the principal (`principal_for`).
Lifecycle state is derived from the key's dates at each use, so revocation, expiry and the end of
a rotation's grace period hold at once, even for a cached key.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from rampart.access.domain import Principal, scoped_permissions
from rampart.access.rls import scope_to_system
from rampart.access.service import AccessService
from rampart.apikeys.changes import KeyChanges, LocalKeyChanges
from rampart.apikeys.db import ApiKeyRow, sealed_secret_context
from rampart.apikeys.domain import (
    STATE_ERRORS,
    Algorithm,
    ApiKeyIpNotAllowedError,
    ApiKeyOwnerInactiveError,
    ApiKeyUnknownError,
    ApiKeyUnusableError,
    KeyDates,
    KeyState,
    ip_allowed,
    key_state,
)
from rampart.apikeys.views import key_dates, row_state
from rampart.config import ApiKeySettings
from rampart.kernel.clock import Clock
from rampart.kernel.secret import Secret
from rampart.platform.cache import TTLCache
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.vault.domain import Purpose, UnreadableError
from rampart.vault.service import VaultService

log = get_logger(__name__)


class OwnerStatus(Protocol):
    def __call__(self, session: Session, user_id: str) -> bool:
        """Whether the user may act at all (not locked, not closed)."""
        ...


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """What the authenticator needs of a key, with its material ready for verification."""

    id: str
    user_id: str
    algorithm: str
    scopes: frozenset[str]
    allowed_cidrs: list[str]
    state: KeyState
    material: Secret[bytes]
    #: The lifecycle dates behind `state`, so that a cached key's state is re-derived per use.
    dates: KeyDates | None = None


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A key and what its owner may do, as read at one moment: enough to authenticate a signed
    request without the database while the cache trusts it (see `KeyVerification.cached_key`)."""

    key: VerificationKey
    owner_active: bool
    #: The principal a request signed with this key acts as (when the key and owner pass).
    principal: Principal
    #: The change token the entry was read under; an entry under an older one is not trusted.
    token: object


class KeyVerification:
    """The keys that signed requests name, read fresh or from the verified-key cache."""

    def __init__(
        self,
        clock: Clock,
        settings: ApiKeySettings,
        vault: VaultService,
        access: AccessService,
        *,
        owner_active: OwnerStatus | None = None,
        changes: KeyChanges | None = None,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._vault = vault
        self._access = access
        self._owner_active = owner_active
        # Unsealed material by (key id, sealed bytes): a re-sealed or rotated key misses the cache,
        # and lifecycle state is read from the row on every request, so revocation is immediate.
        self._material: TTLCache[tuple[str, bytes], Secret[bytes]] = TTLCache(
            100_000, clock.monotonic, default_ttl=300
        )
        self._last_write: TTLCache[str, tuple[float, str | None]] = TTLCache(
            100_000, clock.monotonic, default_ttl=3600
        )
        self._write_lock = threading.Lock()
        # Verified keys by id, so a signed request needs no database read. Trusted only under the
        # change token they were read under: a revoke, rotate, lock or close in this process
        # bumps `_generation` right after its commit, and one in another process moves
        # `_changes` (see `rampart.apikeys.changes`); the TTL bounds anything else (role grants
        # made or lapsing, other hosts without a shared marker).
        self._changes: KeyChanges = changes or LocalKeyChanges()
        self._generation = 0
        self._verified: TTLCache[str, VerifiedKey] = TTLCache(
            100_000, clock.monotonic, default_ttl=settings.auth_cache_seconds or 1.0
        )

    def verification_key(self, session: Session, key_id: str) -> VerificationKey:
        """The key a signature names, with its state now (lifecycle read fresh every time)."""
        scope_to_system(session)
        row = session.get(ApiKeyRow, key_id)
        if row is None:
            raise ApiKeyUnknownError
        state = row_state(row, self._clock.now())
        if row.algorithm == Algorithm.HMAC_SHA256:
            if row.sealed_secret is None:
                raise ApiKeyUnknownError
            cache_key = (row.id, row.sealed_secret)
            material = self._material.get(cache_key)
            if material is None:
                try:
                    material = self._vault.open(
                        session,
                        Purpose.API_KEY_SECRET,
                        row.sealed_secret,
                        sealed_secret_context(row.id),
                        user_id=row.user_id,
                    )
                except UnreadableError as exc:
                    # A shredded owner or an altered row: a refused credential, not a fault.
                    log.warning("apikey.secret.unreadable", key_id=row.id, error=type(exc).__name__)
                    raise ApiKeyUnusableError from None
                self._material.set(cache_key, material)
        else:
            material = Secret(base64.b64decode(row.public_key or ""))
        return VerificationKey(
            id=row.id,
            user_id=row.user_id,
            algorithm=row.algorithm,
            scopes=frozenset(row.scopes),
            allowed_cidrs=list(row.allowed_cidrs),
            state=state,
            material=material,
            dates=key_dates(row),
        )

    def _token(self) -> object:
        return (self._generation, self._changes.current())

    @property
    def changes_may_block(self) -> bool:
        """Whether looking at the cross-process change marker is network I/O."""
        return self._changes.blocking

    @property
    def caches_keys(self) -> bool:
        """Whether verified keys are kept at all (`apikeys.auth_cache_seconds` > 0); without,
        every signed request reads its key afresh."""
        return self._settings.auth_cache_seconds > 0

    def still_current(self, verified: VerifiedKey) -> bool:
        """Whether nothing that could change `verified` happened since it was read."""
        return verified.token == self._token()

    def cached_key(self, key_id: str) -> VerifiedKey | None:
        """The key as verified recently, while nothing has changed since; None: read it."""
        if not self.caches_keys:
            return None
        entry = self._verified.get(key_id)
        if entry is None:
            return None
        if not self.still_current(entry):
            self._verified.delete(key_id)
            return None
        return entry

    def load_key(self, session: Session, key_id: str) -> VerifiedKey:
        """Read the key, its owner's status and permissions, and remember them for a while."""
        # The token is taken before the reads: a change committed while they run leaves the
        # entry under an older token, so it is never trusted.
        token = self._token()
        key = self.verification_key(session, key_id)
        owner_active = self._owner_active is None or self._owner_active(session, key.user_id)
        now = self._clock.now()
        roles = self._access.roles_of(session, key.user_id, now)
        owner_permissions = self._access.permissions_of(session, key.user_id, now)
        entry = VerifiedKey(
            key=key,
            owner_active=owner_active,
            principal=Principal(
                actor=f"apikey:{key.id}",
                user_id=key.user_id,
                roles=roles,
                permissions=scoped_permissions(owner_permissions, key.scopes),
                method="apikey",
                credential_id=key.id,
                scopes=key.scopes,
            ),
            token=token,
        )
        if self.caches_keys:
            self._verified.set(key_id, entry)
        return entry

    def keys_changed(self) -> None:
        """Forget every verified key here, and tell the other processes to do the same.

        Called right after a commit that revokes or rotates a key, or locks, unlocks or closes
        an account (`owner_changed`). Changes are rare, so one counter for all keys is enough.
        """
        with self._write_lock:
            self._generation += 1
        self._verified.clear()
        self._changes.bump()

    def owner_changed(self, uow: UnitOfWork, user_id: str) -> None:
        """The account `user_id` changed status in `uow`: its keys are re-read after the commit."""
        uow.after_commit(self.keys_changed)

    def usable(self, verified: VerifiedKey) -> bool:
        """Whether the key may still act now: not revoked, expired or rotated out, and its owner
        active (a stream opened with it asks this while it runs)."""
        key = verified.key
        state = key_state(key.dates, self._clock.now()) if key.dates is not None else key.state
        return state not in STATE_ERRORS and verified.owner_active

    def principal_for(self, verified: VerifiedKey, client_ip: str | None) -> Principal:
        """After the signature verified: refuse a dead key, a wrong IP or an inactive owner.

        The key's state is derived from its dates now, so expiry and the end of a rotation's
        grace period hold to the moment even for a cached key.
        """
        key = verified.key
        state = key_state(key.dates, self._clock.now()) if key.dates is not None else key.state
        error = STATE_ERRORS.get(state)
        if error is not None:
            raise error
        if not ip_allowed(client_ip, key.allowed_cidrs):
            raise ApiKeyIpNotAllowedError
        if not verified.owner_active:
            raise ApiKeyOwnerInactiveError
        return verified.principal

    def needs_use_recorded(self, key_id: str, client_ip: str | None) -> bool:
        """Last use is written at most every `last_use_write_seconds` per key, or when the IP
        changes, but then at most once a second (a bot behind rotating addresses must not make
        every request a write). Uses in between are not written: last use is a sample."""
        now = self._clock.monotonic()
        with self._write_lock:
            last = self._last_write.get(key_id)
            if (
                last is not None
                and now - last[0] < self._settings.last_use_write_seconds
                and (last[1] == client_ip or now - last[0] < 1.0)
            ):
                return False
            self._last_write.set(key_id, (now, client_ip))
            return True

    def record_use(self, uow: UnitOfWork, key_id: str, client_ip: str | None) -> None:
        scope_to_system(uow.session)
        row = uow.session.get(ApiKeyRow, key_id)
        if row is not None:
            row.last_used_at = self._clock.now()
            row.last_used_ip = (client_ip or "")[:45] or None
