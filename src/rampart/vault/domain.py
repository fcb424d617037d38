"""The vault's pure logic: purposes, the ciphertext format, associated data, errors.

Ciphertext format, version 1 (all integers big-endian)::

    offset  size  field
    0       2     magic b"RV"
    2       1     format version (1)
    3       2     purpose code (`Purpose.code`)
    5       4     data-key version of the purpose
    9       1     flags: bit 0 = sealed under a per-user key
    10      16    per-user key id (only when flag bit 0 is set)
    ..      12    random 96-bit nonce
    ..      n+16  AES-256-GCM ciphertext and tag

The associated data is the whole header (everything before the nonce) followed by the
length-prefixed table, column and row id the ciphertext was sealed for. Changing any header byte,
or opening the value for another row or column, fails authentication; every failure surfaces as
the same `UnreadableError`, which says nothing about which check failed.

The purpose code (bytes 4-5, 1-based in SQL) and the key version (bytes 6-9) sit at fixed offsets
so that the re-encryption job and `keys status` can select and count ciphertexts by version in
SQL, with `substr`, on both databases.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rampart.kernel.errors import ConflictError, RampartError, UnauthorizedError, ValidationError

MAGIC = b"RV"
FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
USER_KEY_ID_BYTES = 16
FLAG_USER_KEY = 0x01
_FIXED = struct.Struct(">2sBHIB")  # magic, format, purpose code, key version, flags
HEADER_BYTES = _FIXED.size  # 10, without the optional user key id
#: 1-based offsets for SQL `substr(column, start, length)`.
SQL_PURPOSE_AT, SQL_VERSION_AT = 4, 6
AD_LABEL = b"rampart.vault.v1\x00"


class Purpose(StrEnum):
    """What a secret is for. Each purpose has its own data keys, versions and rotation.

    The `code` goes into every ciphertext header: never renumber or reuse one.
    """

    BROKER_CREDENTIAL = "broker-credential"
    API_KEY_SECRET = "api-key-secret"  # noqa: S105 - a purpose name, not a secret
    MFA_SECRET = "mfa-secret"  # noqa: S105 - a purpose name, not a secret
    BANK_DETAILS = "bank-details"
    ACCOUNT_NUMBER = "account-number"
    TAX_ID = "tax-id"
    IDENTITY_DOCUMENT = "identity-document"
    #: Names, addresses, dates of birth, phone numbers: personal data that is not one of the above.
    PERSONAL_DATA = "personal-data"
    #: Shared secrets for outbound webhooks and signed callbacks.
    WEBHOOK_SECRET = "webhook-secret"  # noqa: S105 - a purpose name, not a secret
    #: One-time recovery material that must be shown again later (not hashed recovery codes).
    RECOVERY_SECRET = "recovery-secret"  # noqa: S105 - a purpose name, not a secret
    NOTIFICATION_BODY = "notification-body"  # links and codes waiting in the outbox

    @property
    def code(self) -> int:
        return _PURPOSE_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> Purpose:
        try:
            return _PURPOSE_BY_CODE[code]
        except KeyError:
            raise UnreadableError() from None


_PURPOSE_CODES: dict[Purpose, int] = {
    Purpose.BROKER_CREDENTIAL: 1,
    Purpose.API_KEY_SECRET: 2,
    Purpose.MFA_SECRET: 3,
    Purpose.BANK_DETAILS: 4,
    Purpose.ACCOUNT_NUMBER: 5,
    Purpose.TAX_ID: 6,
    Purpose.IDENTITY_DOCUMENT: 7,
    Purpose.PERSONAL_DATA: 8,
    Purpose.WEBHOOK_SECRET: 9,
    Purpose.RECOVERY_SECRET: 10,
    Purpose.NOTIFICATION_BODY: 11,
}
_PURPOSE_BY_CODE = {code: purpose for purpose, code in _PURPOSE_CODES.items()}
assert len(_PURPOSE_BY_CODE) == len(Purpose), "every purpose needs a unique code"

#: Internal key family for blind indexes (never used to seal data).
BLIND_INDEX_FAMILY = "blind-index"


# --- errors ------------------------------------------------------------------------------------
class VaultError(RampartError):
    code = "vault"
    title = "The vault could not complete the operation"


class UnreadableError(VaultError, UnauthorizedError):
    """A ciphertext could not be opened. Deliberately says nothing about why.

    Also an `UnauthorizedError` (401): what cannot be opened is almost always a credential or
    the data behind one (an API key secret, a TOTP seed, a shredded person's address), and an
    unusable credential is a failed authentication, never a server error. The places that open
    a credential map it to their own refusal (and log it by type); this is the net under them.
    """

    code = "vault-unreadable"
    title = "The protected value cannot be read"


class ShreddedError(UnreadableError):
    """The value was sealed under a per-user key that has been destroyed: it is gone for good."""

    code = "vault-shredded"
    title = "The protected value has been erased"


class PlaintextTooLargeError(ValidationError):
    code = "vault-plaintext-too-large"
    title = "The value is too large to protect"


class KeyStateError(ConflictError):
    """A key operation is not allowed in the key's current state (e.g. destroying a used key)."""

    code = "vault-key-state"
    title = "The key is not in a state that allows this"


class BackupError(VaultError):
    """A backup file is truncated, altered, reordered or not a Rampart backup (one opaque error)."""

    code = "vault-backup-invalid"
    title = "The backup cannot be verified"


# --- where a ciphertext lives ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SealContext:
    """Where a sealed value is stored. It becomes associated data: the value opens only here."""

    table: str
    column: str
    row_id: str

    def __post_init__(self) -> None:
        for name in ("table", "column", "row_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"SealContext.{name} must be a non-empty string")


@dataclass(frozen=True, slots=True)
class Header:
    purpose: Purpose
    key_version: int
    user_key_id: bytes | None = None

    def encode(self) -> bytes:
        flags = FLAG_USER_KEY if self.user_key_id is not None else 0
        fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, self.purpose.code, self.key_version, flags)
        return fixed + (self.user_key_id or b"")

    @property
    def size(self) -> int:
        return HEADER_BYTES + (USER_KEY_ID_BYTES if self.user_key_id is not None else 0)


def parse_header(blob: bytes) -> Header:
    """The header of a vault ciphertext; `UnreadableError` if `blob` is not one."""
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < HEADER_BYTES:
        raise UnreadableError()
    magic, fmt, code, version, flags = _FIXED.unpack_from(blob, 0)
    if magic != MAGIC or fmt != FORMAT_VERSION or flags & ~FLAG_USER_KEY:
        raise UnreadableError()
    user_key_id = None
    minimum = HEADER_BYTES + NONCE_BYTES + TAG_BYTES
    if flags & FLAG_USER_KEY:
        minimum += USER_KEY_ID_BYTES
        user_key_id = bytes(blob[HEADER_BYTES : HEADER_BYTES + USER_KEY_ID_BYTES])
    if len(blob) < minimum:
        raise UnreadableError()
    return Header(Purpose.from_code(code), version, user_key_id)


def version_bytes(version: int) -> bytes:
    """The key version as it appears in the header, for SQL `substr` comparisons."""
    return struct.pack(">I", version)


def purpose_bytes(purpose: Purpose) -> bytes:
    return struct.pack(">H", purpose.code)


def _lp(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


def associated_data(header: bytes, context: SealContext) -> bytes:
    # Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc") differ.
    return AD_LABEL + header + _lp(context.table) + _lp(context.column) + _lp(context.row_id)


def seal_with(key: bytes, header: Header, plaintext: bytes, context: SealContext) -> bytes:
    head = header.encode()
    nonce = os.urandom(NONCE_BYTES)
    return head + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data(head, context))


def open_with(key: bytes, header: Header, blob: bytes, context: SealContext) -> bytes:
    blob = bytes(blob)
    head = blob[: header.size]
    nonce = blob[header.size : header.size + NONCE_BYTES]
    body = blob[header.size + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, associated_data(head, context))
    except (InvalidTag, ValueError):
        raise UnreadableError() from None


# --- key wrapping ------------------------------------------------------------------------------
def data_key_context(family: str, version: int) -> bytes:
    """Associated data for wrapping a data key: a wrapped key swapped between rows won't unwrap."""
    return b"rampart.vault.data-key.v1\x00" + _lp(family) + struct.pack(">I", version)


def user_key_context(purpose: Purpose, version: int, user_id: str, key_id: bytes) -> bytes:
    return (
        b"rampart.vault.user-key.v1\x00"
        + _lp(purpose.value)
        + struct.pack(">I", version)
        + _lp(user_id)
        + key_id
    )


def aead_wrap(kek: bytes, key: bytes, context: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, key, context)


def aead_unwrap(kek: bytes, blob: bytes, context: bytes) -> bytes:
    try:
        key = AESGCM(kek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)
    except (InvalidTag, ValueError):
        raise UnreadableError() from None
    if len(key) != KEY_BYTES:
        raise UnreadableError()
    return key


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def key_fingerprint(key: bytes) -> str:
    """A public identifier for a key-encryption key: reveals nothing about the key itself."""
    return hmac.new(key, b"rampart.vault.kek-id.v1", hashlib.sha256).hexdigest()[:16]


# --- blind indexes -----------------------------------------------------------------------------
def blind_index_key(root: bytes, index: str) -> bytes:
    """A separate HMAC key per index, so equal values in two indexes do not match each other."""
    return hmac.new(root, b"rampart.vault.blind-index.v1\x00" + index.encode(), "sha256").digest()


def blind_index(key: bytes, value: bytes) -> str:
    return hmac.new(key, value, hashlib.sha256).hexdigest()


def as_bytes(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError("the vault seals bytes or str")
