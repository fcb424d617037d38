"""The signed-request authenticator registered in `container.authenticators`.

Order of checks, each a 401 naming its reason: parse; coverage; freshness of `created`; body
against Content-Digest; the key (unknown keys stop here); `alg` against the key; the signature
itself (constant-time); only then the nonce, so that unauthenticated junk can neither fill the
nonce store nor burn a genuine client's nonces; then the key's state (revoked, expired, rotated
out), its IP allow-list and the owner. Every failure also counts against the client IP (and the
key, when known) in the rate limiter's adaptive mode.

The key, its owner's status and permissions come from `KeyVerification`'s verified-key cache when
it holds them (revocation, rotation and owner changes empty it at once, see
`rampart.apikeys.changes`); then, in the embedded default, the request is verified on the event
loop without a database read or a thread hop. The nonce and `created` checks run on every request.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.requests import HTTPConnection, Request

from rampart.access.domain import Principal
from rampart.apikeys.domain import (
    ApiKeyAuthError,
    ApiKeyUnknownError,
    NonceReplayedError,
    SignatureAlgorithmError,
    SignatureMismatchError,
)
from rampart.apikeys.nonces import MemoryNonceStore, NonceStore
from rampart.apikeys.signatures import (
    ParsedSignature,
    SignedRequest,
    check_content_digest,
    check_coverage,
    check_freshness,
    parse_signature,
    signature_base,
    verify,
)
from rampart.apikeys.verification import KeyVerification, VerifiedKey
from rampart.config import ApiKeySettings
from rampart.kernel.clock import Clock
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _authority(scheme: str, host: str) -> str:
    host = host.strip().lower()
    if ":" in host and not host.endswith("]"):
        name, _, port = host.rpartition(":")
        if _DEFAULT_PORTS.get(scheme) == port.lstrip("0"):
            return name
    return host


def signed_request(
    connection: HTTPConnection, body: bytes, public_url: str | None
) -> SignedRequest:
    """The request as the client addressed it: through `public_url` behind a proxy."""
    scope = connection.scope
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers") or ():
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    if public_url:
        parts = urlsplit(public_url)
        scheme = parts.scheme.lower()
        if scope["type"] == "websocket":
            scheme = "wss" if scheme == "https" else "ws"
        authority = _authority(scheme, parts.netloc)
    else:
        scheme = str(scope.get("scheme", "http")).lower()
        host = (headers.get("host") or [""])[0]
        authority = _authority(scheme, host)
    raw_path = scope.get("raw_path") or scope.get("path", "/").encode()
    return SignedRequest(
        method=str(scope.get("method", "GET")),
        scheme=scheme,
        authority=authority,
        path=raw_path.decode("latin-1"),
        query=(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        body=body,
    )


class _NeedsDatabase(Exception):
    """The key is not cached: verification must go on where blocking is allowed."""

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id


class SignatureAuthenticator:
    """Authenticates requests signed with an API key (RFC 9421)."""

    def __init__(
        self,
        keys: KeyVerification,
        db: Database,
        uow_factory: Any,
        nonces: NonceStore,
        clock: Clock,
        settings: ApiKeySettings,
        *,
        public_url: str | None,
        ratelimits: Any | None = None,
        inline: bool = True,
    ) -> None:
        self._keys = keys
        self._db = db
        self._uow = uow_factory
        self._nonces = nonces
        self._clock = clock
        self._settings = settings
        self._public_url = public_url
        self._ratelimits = ratelimits
        self._nonce_ttl = float(
            settings.signature_max_age_seconds + settings.signature_future_skew_seconds + 1
        )
        #: Reads of a key in flight (`_load_once`), by event loop and key id.
        self._loading: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[VerifiedKey]] = {}
        # Verify on the event loop when nothing on the cached path blocks: an in-process nonce
        # store, a change marker that is a `stat`, and in-process rate limits (failures only).
        self._inline = (
            inline and isinstance(nonces, MemoryNonceStore) and not keys.changes_may_block
        )

    async def authenticate(self, request: HTTPConnection) -> Principal | None:
        headers = request.headers
        if "signature-input" not in headers and "signature" not in headers:
            return None
        body = await request.body() if isinstance(request, Request) else b""
        message = signed_request(request, body, self._public_url)
        ctx = getattr(request.state, "request_context", None)
        client_ip = getattr(ctx, "client_ip", None) or (
            request.client.host if request.client else None
        )
        if self._inline:
            # The common case: the key is cached and the nonce store is in memory, so the whole
            # check is CPU work (tens of microseconds), cheaper than a hop to a worker thread.
            loaded: VerifiedKey | ApiKeyAuthError | None = None
            for first_try in (True, False):
                try:
                    principal, key_id = self._checked(
                        message, client_ip, database=False, loaded=loaded
                    )
                except _NeedsDatabase as missing:
                    if first_try and self._keys.caches_keys:
                        loaded = await self._load_once(missing.key_id)
                        if loaded is not None:
                            continue
                    break
                if self._keys.needs_use_recorded(key_id, client_ip):
                    await anyio.to_thread.run_sync(self._record_use, key_id, client_ip)
                return principal
        # Database, vault and Redis are blocking: one hop to a worker thread for all of them.
        return await anyio.to_thread.run_sync(self.verify, message, client_ip)

    async def revoked(self, principal: Principal) -> bool | None:
        """For a stream opened with a key: whether the key or its owner has since been revoked,
        locked or closed (the verified-key cache answers while nothing changed)."""
        if principal.method != "apikey" or principal.credential_id is None:
            return None
        key_id = principal.credential_id
        if not self._keys.changes_may_block:
            cached = self._keys.cached_key(key_id)
            if cached is not None:
                return not self._keys.usable(cached)
        return await anyio.to_thread.run_sync(self._key_revoked, key_id)

    def _key_revoked(self, key_id: str) -> bool:
        try:
            verified = self._keys.cached_key(key_id) or self._load_key(key_id)
        except ApiKeyAuthError:
            return True
        return not self._keys.usable(verified)

    async def _load_once(self, key_id: str) -> VerifiedKey | ApiKeyAuthError | None:
        """Read key `key_id`, once for all the requests waiting for it: the key as read, the
        refusal the read ended in (an unknown key), or None when it failed otherwise (the slow
        path then reports it).

        When a busy key's cache entry lapses, every request in flight with it misses at once: a
        bot on 32 connections would cost 32 reads of the same rows (and 32 worker threads) each
        time, and so would an attacker's burst with one unknown key id."""
        loading = (asyncio.get_running_loop(), key_id)
        pending = self._loading.get(loading)
        if pending is None:
            pending = asyncio.ensure_future(anyio.to_thread.run_sync(self._load_key, key_id))
            self._loading[loading] = pending
            pending.add_done_callback(lambda _: self._loading.pop(loading, None))
        try:
            # Shielded: a request that goes away does not cancel the read the others wait for.
            return await asyncio.shield(pending)
        except ApiKeyAuthError as refused:
            return copy.copy(refused)  # each request raises its own
        except Exception:  # noqa: BLE001 - the slow path reads again and reports the failure
            return None

    def _load_key(self, key_id: str) -> VerifiedKey:
        with self._db.read() as session:
            return self._keys.load_key(session, key_id)

    def verify(self, message: SignedRequest, client_ip: str | None) -> Principal:
        """Verify a signed request end to end; a principal, or an `ApiKeyAuthError`. Blocking."""
        principal, key_id = self._checked(message, client_ip, database=True)
        if self._keys.needs_use_recorded(key_id, client_ip):
            self._record_use(key_id, client_ip)
        return principal

    def verify_in_memory(
        self, message: SignedRequest, client_ip: str | None
    ) -> tuple[Principal, str]:
        """Like `verify` from the cached key alone; raises `_NeedsDatabase` when it is not
        cached (before anything is consumed, so the request can go on to `verify`)."""
        return self._checked(message, client_ip, database=False)

    def _checked(
        self,
        message: SignedRequest,
        client_ip: str | None,
        *,
        database: bool,
        loaded: VerifiedKey | ApiKeyAuthError | None = None,
    ) -> tuple[Principal, str]:
        key_id: str | None = None
        try:
            parsed = parse_signature(message.headers)
            if parsed is None:
                raise ApiKeyAuthError("No signature.")
            key_id = parsed.keyid
            principal = self._verify(parsed, message, client_ip, database=database, loaded=loaded)
        except ApiKeyAuthError as exc:
            self._count_failure(
                client_ip, key_id if not isinstance(exc, ApiKeyUnknownError) else None
            )
            log.info("signed request refused", reason=exc.code, key_id=key_id, client_ip=client_ip)
            raise
        return principal, parsed.keyid

    def _verify(
        self,
        parsed: ParsedSignature,
        message: SignedRequest,
        client_ip: str | None,
        *,
        database: bool,
        loaded: VerifiedKey | ApiKeyAuthError | None = None,
    ) -> Principal:
        check_coverage(parsed, message)
        check_freshness(
            parsed,
            self._clock.time_ns() / 1e9,
            max_age=self._settings.signature_max_age_seconds,
            future_skew=self._settings.signature_future_skew_seconds,
        )
        check_content_digest(message)
        if isinstance(loaded, ApiKeyAuthError):
            raise loaded
        # A key read for this request (`_load_once`) counts while no change came after its read.
        if loaded is not None and self._keys.still_current(loaded):
            verified: VerifiedKey | None = loaded
        else:
            verified = self._keys.cached_key(parsed.keyid)
        if verified is None:
            if not database:
                raise _NeedsDatabase(parsed.keyid)
            with self._db.read() as session:
                verified = self._keys.load_key(session, parsed.keyid)
        key = verified.key
        if "alg" in parsed.params and parsed.params["alg"] != key.algorithm:
            raise SignatureAlgorithmError
        base = signature_base(parsed, message)
        if not verify(key.algorithm, key.material.reveal(), base, parsed.signature):
            raise SignatureMismatchError
        if not self._nonces.first_use(key.id, parsed.nonce, self._nonce_ttl):
            raise NonceReplayedError
        return self._keys.principal_for(verified, client_ip)

    def _record_use(self, key_id: str, client_ip: str | None) -> None:
        with self._uow() as uow:
            self._keys.record_use(uow, key_id, client_ip)
            uow.commit()

    def _count_failure(self, client_ip: str | None, key_id: str | None) -> None:
        if self._ratelimits is None:
            return
        if client_ip:
            self._ratelimits.record_auth_failure("ip", client_ip)
        if key_id:
            self._ratelimits.record_auth_failure("key", key_id)
