"""Access tokens: short-lived JWTs signed with Ed25519, and the keys that sign them.

Keys. Each signing key is derived from the configured root key and its `kid` with HKDF-SHA256, so
the private half is never stored anywhere; the database keeps only the public half, which is what
JWKS publishes and what verification uses. Rotation adds a new `kid` and retires the old one; a
retired key stays published (and trusted) until the last token it signed has expired, so nobody
is logged out. Replacing the root key itself is a rotation too: at start-up the active key's
derived public half no longer matches the stored one, so a fresh key is made.

Verification pins `EdDSA` (never the token's own `alg`), takes the key only from our own key
set by `kid`, and checks `iss`, `aud`, `exp`, `nbf` and `iat` against the injected clock. A
verified token is remembered in a bounded cache keyed by the SHA-256 of the token until it
expires, which takes the signature check (~250 µs) off the hot path; revocation is a separate,
per-request check (`rampart.identity.sessions`), so a cached token is still refused at once
after logout.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from rampart.config import IdentitySettings
from rampart.identity.db import SigningKeyRow
from rampart.identity.domain import InvalidTokenError
from rampart.kernel.clock import Clock, utc
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.cache import TTLCache
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)

ALGORITHM = "EdDSA"
#: The JWT `typ` of an access token (RFC 9068 2.1), and the forms a verifier accepts (4).
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a token type, not a secret
ACCESS_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, "application/at+jwt"})
#: Clock skew tolerated between the servers that issue and verify (for `nbf` and `iat` only).
SKEW_SECONDS = 5
#: An unknown `kid` reloads the key set from the database at most this often, so a flood of
#: made-up kids cannot turn into a flood of queries.
RELOAD_INTERVAL_SECONDS = 1.0
MAX_TOKEN_CHARS = 4096


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The claims of an access token whose signature, issuer, audience and times were checked."""

    user_id: str
    session_id: str
    issued_at: int
    expires_at: int
    token_id: str


class SigningKeys:
    """The JWT key set: one active signing key, and every public key still trusted."""

    def __init__(
        self, db: Database, clock: Clock, root_key: Secret[bytes], settings: IdentitySettings
    ) -> None:
        self._db = db
        self._clock = clock
        self._root = root_key
        self._settings = settings
        self._lock = threading.RLock()
        self._active: tuple[str, Ed25519PrivateKey] | None = None
        self._active_since = 0.0
        self._public: dict[str, Ed25519PublicKey] = {}
        self._published: list[dict[str, str]] = []
        self._loaded_at = float("-inf")

    def _derive(self, kid: str) -> Ed25519PrivateKey:
        seed = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"rampart-jwt-signing-key",
            info=kid.encode("ascii"),
        ).derive(self._root.reveal())
        return Ed25519PrivateKey.from_private_bytes(seed)

    @property
    def _trust_seconds(self) -> float:
        # A retired key verifies what it signed until that expires (plus the tolerated skew).
        return self._settings.access_token_minutes * 60 + SKEW_SECONDS

    def _usable(self, row: SigningKeyRow | None) -> bool:
        if row is None:
            return False
        rotate_after = timedelta(days=self._settings.jwt_key_rotation_days)
        return (
            self._clock.now() - utc(row.created_at) < rotate_after
            and _b64url(_public_raw(self._derive(row.kid).public_key())) == row.public_key
        )

    @staticmethod
    def _newest_active(rows: list[SigningKeyRow]) -> SigningKeyRow | None:
        active = [r for r in rows if r.retired_at is None]
        return max(active, key=lambda r: utc(r.created_at)) if active else None

    def load(self) -> None:
        """Read the key set; make a new active key when there is none, when it is older than
        the rotation period, or when it was derived from another root key.

        Only that last case writes, and it runs at start-up and from `KeyRotator`, never inside a
        request's transaction (on SQLite a second writer there would wait on itself)."""
        with self._lock:
            with self._db.read() as session:
                rows = list(session.scalars(select(SigningKeyRow)))
            current = self._newest_active(rows)
            if not self._usable(current):
                with self._db.write_session() as session:
                    rows = list(session.scalars(select(SigningKeyRow).with_for_update()))
                    current = self._newest_active(rows)
                    if not self._usable(current):
                        now = self._clock.now()
                        for row in rows:
                            if row.retired_at is None:
                                row.retired_at = now
                        kid = new_id()
                        current = SigningKeyRow(
                            kid=kid,
                            public_key=_b64url(_public_raw(self._derive(kid).public_key())),
                            created_at=now,
                            retired_at=None,
                        )
                        session.add(current)
                        rows.append(current)
                        session.commit()
                        log.info("jwt signing key rotated", kid=kid)
            assert current is not None
            self._active = (current.kid, self._derive(current.kid))
            self._active_since = utc(current.created_at).timestamp()
            self._publish(rows)

    def _publish(self, rows: list[SigningKeyRow]) -> None:
        now = self._clock.now()
        public: dict[str, Ed25519PublicKey] = {}
        published: list[dict[str, str]] = []
        for row in sorted(rows, key=lambda r: utc(r.created_at)):
            if row.retired_at is not None and (
                (now - utc(row.retired_at)).total_seconds() > self._trust_seconds
            ):
                continue
            public[row.kid] = Ed25519PublicKey.from_public_bytes(_b64url_decode(row.public_key))
            published.append(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "kid": row.kid,
                    "x": row.public_key,
                    "alg": ALGORITHM,
                    "use": "sig",
                }
            )
        self._public = public
        self._published = published
        self._loaded_at = self._clock.monotonic()

    def _reload_public(self) -> None:
        """Re-read the published keys only (a read: never waits for the write lock)."""
        with self._db.read() as session:
            rows = list(session.scalars(select(SigningKeyRow)))
        self._publish(rows)

    def rotate(self) -> str:
        """Retire the active key now and start signing with a new one."""
        with self._lock, self._db.write_session() as session:
            for row in session.scalars(
                select(SigningKeyRow).where(SigningKeyRow.retired_at.is_(None))
            ):
                row.retired_at = self._clock.now()
            session.commit()
        self.load()
        assert self._active is not None
        return self._active[0]

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The active key. A key past its rotation age keeps signing until `KeyRotator` (or the
        next start) replaces it: its tokens stay valid either way, and this may run inside a
        request's transaction, where rotating could deadlock."""
        with self._lock:
            if self._active is None:
                self.load()
            assert self._active is not None
            return self._active

    def rotation_due(self) -> bool:
        age = self._clock.now().timestamp() - self._active_since
        return self._active is None or age >= self._settings.jwt_key_rotation_days * 86_400

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._public.get(kid)
        if key is not None:
            return key
        # Perhaps another process rotated; look again, but not more than once a second.
        with self._lock:
            if self._clock.monotonic() - self._loaded_at >= RELOAD_INTERVAL_SECONDS:
                self._reload_public()
            return self._public.get(kid)

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            if self._active is None:
                self.load()
            elif self._clock.monotonic() - self._loaded_at >= 60:
                self._reload_public()
            return {"keys": list(self._published)}


class KeyRotator:
    """A background thread that rotates the signing key when it is due (checked every minute)."""

    def __init__(self, keys: SigningKeys, interval_seconds: float = 60.0) -> None:
        self._keys = keys
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._keys.load()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rampart-jwt-keys", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._keys.rotation_due():
                    self._keys.load()
            except Exception as exc:  # noqa: BLE001 - keep trying; the old key still works
                log.error("jwt signing key rotation failed", error=type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)


class AccessTokens:
    """Issues and verifies access tokens."""

    def __init__(
        self,
        keys: SigningKeys,
        clock: Clock,
        settings: IdentitySettings,
        *,
        cache_entries: int,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._settings = settings
        self._cache: TTLCache[bytes, VerifiedToken] = TTLCache(
            cache_entries, clock=lambda: clock.time_ns() / 1e9
        )

    @property
    def lifetime_seconds(self) -> int:
        return self._settings.access_token_minutes * 60

    def issue(self, user_id: str, session_id: str) -> tuple[str, int]:
        """A signed access token for the session, and its expiry (epoch seconds)."""
        kid, key = self._keys.signing_key()
        now = self._clock.time_ns() // 1_000_000_000
        expires = now + self.lifetime_seconds
        claims = {
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "sub": user_id,
            "sid": session_id,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": new_id(),
        }
        token = jwt.encode(
            claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": ACCESS_TOKEN_TYPE}
        )
        return token, expires

    def verify(self, token: str) -> VerifiedToken:
        """The token's claims, or `InvalidTokenError` (one error for every way it can be bad)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError
        digest = hashlib.sha256(token.encode("ascii", "replace")).digest()
        now = self._clock.time_ns() / 1e9
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        verified = self._verify_signature(token, now)
        self._cache.set(digest, verified, ttl=verified.expires_at - now)
        return verified

    def _verify_signature(self, token: str, now: float) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError from None
        kid = header.get("kid")
        # The algorithm is ours to choose: `none`, HS256-with-the-public-key and every other
        # substitution fail here, before any key is touched.
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or len(kid) > 64:
            raise InvalidTokenError
        # Only an access token is a bearer credential (RFC 9068 4): a JWT of another type signed
        # with the same key (an ID token, a future signed artefact) must not be accepted as one.
        if header.get("typ") not in ACCESS_TOKEN_TYPES:
            raise InvalidTokenError
        key = self._keys.public_key(kid)
        if key is None:
            raise InvalidTokenError
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                options={
                    "require": ["iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti"],
                    # Times are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "strict_aud": True,
                },
            )
        except jwt.PyJWTError:
            raise InvalidTokenError from None
        try:
            iat, nbf, exp = int(claims["iat"]), int(claims["nbf"]), int(claims["exp"])
        except (TypeError, ValueError):
            raise InvalidTokenError from None
        if exp <= now or nbf > now + SKEW_SECONDS or iat > now + SKEW_SECONDS:
            raise InvalidTokenError
        if exp - iat > self.lifetime_seconds + SKEW_SECONDS:
            raise InvalidTokenError
        sub, sid, jti = claims["sub"], claims["sid"], claims["jti"]
        if not all(isinstance(v, str) for v in (sub, sid, jti)):
            raise InvalidTokenError
        return VerifiedToken(
            user_id=sub, session_id=sid, issued_at=iat, expires_at=exp, token_id=jti
        )

    def forget(self, predicate: Callable[[VerifiedToken], bool]) -> None:
        """Drop cached verifications (revocation: the session or user no longer counts)."""
        self._cache.delete_where(lambda _key, value: predicate(value))
