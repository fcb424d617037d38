"""API keys as pure values: the secret's format, scopes, IP allow-lists and key lifecycle.

A shared secret looks like `rmp_live_<40 base62 characters><6 base62 characters>`: the prefix makes
a leaked key recognisable to secret scanners (and to our log redaction), and the last six characters
are a CRC32 of everything before them, so a mistyped or truncated key is refused without a database
lookup. The 40 random characters carry 238 bits. The server keeps the secret sealed by the vault
(it needs it to check HMAC signatures) plus its SHA-256, which finds the key when a scanner reports
a leaked secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rampart.kernel.errors import ConflictError, ForbiddenError, UnauthorizedError, ValidationError

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_CHARS = 40
CHECKSUM_CHARS = 6
ENVIRONMENTS = ("live", "test")
_SECRET = re.compile(rf"^rmp_(live|test)_([0-9A-Za-z]{{{RANDOM_CHARS + CHECKSUM_CHARS}}})$")


class Algorithm(StrEnum):
    HMAC_SHA256 = "hmac-sha256"
    ED25519 = "ed25519"


class Scope(StrEnum):
    #: Place, cancel and modify orders (and read the account, which trading needs).
    TRADE = "trade"
    #: Read market data.
    DATA = "data"
    #: Read one's own account.
    READ = "read"


ALL_SCOPES = frozenset(s.value for s in Scope)


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(BASE62[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_CHARS)


def new_secret(environment: str) -> str:
    """A fresh shared secret for `environment` (`live` or `test`)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}")
    body = f"rmp_{environment}_" + "".join(secrets.choice(BASE62) for _ in range(RANDOM_CHARS))
    return body + _checksum(body)


def secret_is_well_formed(secret: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about whether it exists)."""
    if not _SECRET.match(secret):
        return False
    body, check = secret[:-CHECKSUM_CHARS], secret[-CHECKSUM_CHARS:]
    return secrets.compare_digest(_checksum(body), check)


def secret_hash(secret: str) -> str:
    """SHA-256 of the secret: enough for 238 random bits (no password stretching needed)."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_hint(secret: str) -> str:
    """What listings show to tell keys apart: the prefix and four characters, never more."""
    prefix_len = len("rmp_live_")
    return secret[: prefix_len + 4] + "…"


# --- validation of a key's settings ----------------------------------------------------------
class InvalidApiKeyError(ValidationError):
    code = "apikey-invalid"
    title = "The API key settings are not valid"


class TooManyApiKeysError(ConflictError):
    code = "apikey-limit"
    title = "You have as many API keys as allowed"


class ApiKeyNotRotatableError(ConflictError):
    code = "apikey-not-rotatable"
    title = "Only an active key can be rotated"


class KeyCannotManageKeysError(ForbiddenError):
    # A bot holding one key must not mint itself more, nor lift its own restrictions.
    code = "apikey-cannot-manage-keys"
    title = "API keys are managed from a signed-in session, not with an API key"


def normalise_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(s.strip().lower() for s in scopes)
    unknown = sorted(chosen - ALL_SCOPES)
    if unknown:
        raise InvalidApiKeyError("Unknown scopes.", unknown=unknown[:10])
    if not chosen:
        raise InvalidApiKeyError("Choose at least one scope: trade, data or read.")
    return chosen


def normalise_cidrs(cidrs: Iterable[str], *, limit: int) -> list[str]:
    """Canonical CIDR strings (`10.0.0.0/8`, `2001:db8::/32`); hosts become /32 or /128."""
    networks: list[str] = []
    for text in cidrs:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise InvalidApiKeyError("Not an IP address or CIDR range.", value=text[:64]) from None
        if net.prefixlen == 0:
            raise InvalidApiKeyError("An allow-list of everything is no allow-list.")
        if str(net) not in networks:
            networks.append(str(net))
    if len(networks) > limit:
        raise InvalidApiKeyError(f"At most {limit} ranges per key.")
    return networks


def ip_allowed(ip: str | None, cidrs: list[str]) -> bool:
    """True when the key has no allow-list, or `ip` is inside one of its ranges."""
    if not cidrs:
        return True
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for text in cidrs:
        net = ipaddress.ip_network(text)
        if address.version == net.version and address in net:
            return True
    return False


def validate_label(label: str | None) -> str | None:
    if label is None:
        return None
    label = label.strip()
    if len(label) > 100 or any(ord(c) < 32 for c in label):
        raise InvalidApiKeyError("A label is at most 100 printable characters.")
    return label or None


# --- lifecycle ------------------------------------------------------------------------------
class KeyState(StrEnum):
    ACTIVE = "active"
    #: Rotated: still accepted until its grace period ends.
    ROTATING = "rotating"
    ROTATED = "rotated"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class KeyDates:
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    grace_until: datetime | None


def key_state(dates: KeyDates, now: datetime) -> KeyState:
    # Revocation is never scheduled: whatever time it carries, it holds from the moment it is
    # stored. Comparing it with `now` would let a revocation stamped by a process whose clock
    # runs ahead (the CLI on another host) wait for this process's clock to catch up.
    if dates.revoked_at is not None:
        return KeyState.REVOKED
    if dates.expires_at is not None and dates.expires_at <= now:
        return KeyState.EXPIRED
    if dates.grace_until is not None:
        return KeyState.ROTATING if now < dates.grace_until else KeyState.ROTATED
    return KeyState.ACTIVE


def is_old(created_at: datetime, now: datetime, max_age_days: int) -> bool:
    return now - created_at >= timedelta(days=max_age_days)


# --- refusals of a signed request -----------------------------------------------------------
class ApiKeyAuthError(UnauthorizedError):
    """Every refusal of a signed request: a 401 whose problem type names the reason."""

    code = "signature-invalid"
    title = "The request signature was not accepted"

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": 'Signature realm="rampart"'}


class SignatureMalformedError(ApiKeyAuthError):
    code = "signature-malformed"
    title = "The Signature and Signature-Input headers cannot be parsed"


class SignatureParamsMissingError(ApiKeyAuthError):
    code = "signature-params-missing"
    title = "The signature must carry created, keyid and nonce"


class SignatureComponentsMissingError(ApiKeyAuthError):
    code = "signature-components-missing"
    title = "The signature does not cover the required components"


class SignatureStaleError(ApiKeyAuthError):
    code = "signature-stale"
    title = "The signature is too old"


class SignatureFromFutureError(ApiKeyAuthError):
    code = "signature-future"
    title = "The signature was created in the future (check the client's clock)"


class SignatureExpiredError(ApiKeyAuthError):
    code = "signature-expired"
    title = "The signature has expired"


class NonceReplayedError(ApiKeyAuthError):
    code = "signature-replayed"
    title = "This signature's nonce has been used already"


class SignatureAlgorithmError(ApiKeyAuthError):
    code = "signature-algorithm"
    title = "The signature algorithm does not match the key"


class SignatureMismatchError(ApiKeyAuthError):
    code = "signature-mismatch"
    title = "The signature does not match the request"


class ContentDigestMismatchError(ApiKeyAuthError):
    code = "content-digest-mismatch"
    title = "The body does not match its Content-Digest"


class ApiKeyUnknownError(ApiKeyAuthError):
    code = "apikey-unknown"
    title = "No such API key"


class ApiKeyRevokedError(ApiKeyAuthError):
    code = "apikey-revoked"
    title = "The API key has been revoked"


class ApiKeyExpiredError(ApiKeyAuthError):
    code = "apikey-expired"
    title = "The API key has expired"


class ApiKeyRotatedError(ApiKeyAuthError):
    code = "apikey-rotated"
    title = "The API key was rotated and its grace period is over"


class ApiKeyOwnerInactiveError(ApiKeyAuthError):
    code = "apikey-owner-inactive"
    title = "The account this key belongs to cannot use the API"


class ApiKeyUnusableError(ApiKeyAuthError):
    """The key's sealed secret no longer opens (its owner was crypto-shredded, or the row was
    altered): nothing can be verified with it, which is a failed authentication like any other."""

    code = "apikey-unusable"
    title = "The API key can no longer be used"


class ApiKeyIpNotAllowedError(ApiKeyAuthError):
    code = "apikey-ip-not-allowed"
    title = "The API key may not be used from this address"


STATE_ERRORS: dict[KeyState, type[ApiKeyAuthError]] = {
    KeyState.REVOKED: ApiKeyRevokedError,
    KeyState.EXPIRED: ApiKeyExpiredError,
    KeyState.ROTATED: ApiKeyRotatedError,
}
