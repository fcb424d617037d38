"""Second factors as pure logic: TOTP matching, one-time and backup codes, purposes, policy.

Nothing here touches storage or the web. Seeds and code hashes come in as bytes; the service
decides where they live (sealed by the vault, hashed with a vault-held key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp

from rampart.kernel.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
    ValidationError,
)


class FactorKind(StrEnum):
    TOTP = "totp"
    WEBAUTHN = "webauthn"
    EMAIL = "email"
    SMS = "sms"
    BACKUP_CODE = "backup_code"


class SensitiveAction(StrEnum):
    """Actions that need a second factor passed within the last few minutes (step-up)."""

    API_KEY_CREATE = "apikey.create"
    BANK_ACCOUNT_ADD = "bank_account.add"
    WITHDRAWAL = "withdrawal"
    PASSWORD_CHANGE = "password.change"  # noqa: S105 - an action name, not a password
    EMAIL_CHANGE = "email.change"
    FACTORS_CHANGE = "mfa.factors.change"
    # Staff actions: a WebAuthn step-up within `mfa.staff_step_up_minutes`, nothing weaker.
    MARKET_HALT = "market.halt"
    MARKET_RESUME = "market.resume"
    RISK_LIMITS_CHANGE = "risk.limits.change"
    ROLES_CHANGE = "access.roles.change"
    ACCOUNT_UNLOCK = "account.unlock"
    PASSWORD_RESET_FOR_USER = "account.password_reset"  # noqa: S105 - an action name
    MFA_RESET = "mfa.reset"
    KEY_ROTATION = "keys.rotate"


#: The sensitive staff actions (see `rampart.access.domain.check_staff_step_up`).
STAFF_ACTIONS = frozenset(
    {
        SensitiveAction.MARKET_HALT,
        SensitiveAction.MARKET_RESUME,
        SensitiveAction.RISK_LIMITS_CHANGE,
        SensitiveAction.ROLES_CHANGE,
        SensitiveAction.ACCOUNT_UNLOCK,
        SensitiveAction.PASSWORD_RESET_FOR_USER,
        SensitiveAction.MFA_RESET,
        SensitiveAction.KEY_ROTATION,
    }
)

#: Actions that need a second factor to exist at all (when `mfa.required_for_trading`).
MFA_MANDATORY = frozenset(
    {SensitiveAction.API_KEY_CREATE, SensitiveAction.WITHDRAWAL, SensitiveAction.BANK_ACCOUNT_ADD}
)
#: Actions a support-assisted reset blocks for `COOLING_PERIOD`: an attacker who talked support
#: into removing the factors must not be able to move money or mint credentials at once.
COOLING_BLOCKED = frozenset({SensitiveAction.WITHDRAWAL, SensitiveAction.API_KEY_CREATE})
COOLING_PERIOD = timedelta(hours=24)

# --- TOTP (RFC 6238) ------------------------------------------------------------------------
TOTP_DIGITS = 6
TOTP_PERIOD = 30
#: A code's defined lifetime (ASVS 6.5.5): it is accepted during its own 30-second step and
#: during at most this many steps after it (a code typed across a step boundary, a phone clock
#: a little behind ours), so for at most 60 s, and once. Never before its step begins: a code
#: from the future (a phone clock running ahead, or a code seen over a shoulder and kept)
#: proves nothing now. `mfa.totp_late_steps` 0 gives the strict 30-second reading.
TOTP_LATE_STEPS = 1
#: 160 bits, the HMAC-SHA1 block-friendly size RFC 4226 recommends.
TOTP_SEED_BYTES = 20

_CODE_SHAPE = re.compile(r"^[0-9]{6,8}$")


def new_totp_seed() -> bytes:
    return secrets.token_bytes(TOTP_SEED_BYTES)


def seed_base32(seed: bytes) -> str:
    """The seed as authenticator apps expect it: unpadded base32."""
    return base64.b32encode(seed).decode("ascii").rstrip("=")


def totp_step(epoch_seconds: float, period: int = TOTP_PERIOD) -> int:
    return int(epoch_seconds // period)


def totp_code(seed: bytes, step: int, *, digits: int = TOTP_DIGITS, digest: str = "sha1") -> str:
    """The RFC 6238 code of `seed` at time-step `step` (HOTP of the step counter)."""
    hotp = pyotp.HOTP(seed_base32(seed), digits=digits, digest=getattr(hashlib, digest))
    return hotp.at(step)


def provisioning_uri(seed: bytes, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI that authenticator apps scan."""
    return pyotp.TOTP(seed_base32(seed), digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def clean_numeric_code(code: str, digits: int = TOTP_DIGITS) -> str | None:
    """The code with spaces removed if it is `digits` ASCII digits, else None."""
    cleaned = "".join(code.split())[:16]
    if len(cleaned) != digits or not _CODE_SHAPE.match(cleaned):
        return None
    return cleaned


def match_totp(
    seed: bytes,
    code: str,
    now_epoch: float,
    *,
    last_used_step: int | None,
    late_steps: int = TOTP_LATE_STEPS,
) -> int | None:
    """The time-step `code` belongs to: the current step or one of the `late_steps` before it,
    and after `last_used_step`.

    Returns None when no acceptable step matches. Steps at or before the last accepted one are
    never candidates, so a code cannot be used twice, nor an older one after a newer one.
    """
    cleaned = clean_numeric_code(code)
    if cleaned is None:
        return None
    current = totp_step(now_epoch)
    matched: int | None = None
    # Every candidate is computed and compared in constant time, so timing does not tell which
    # step (if any) matched.
    for step in range(current - late_steps, current + 1):
        if last_used_step is not None and step <= last_used_step:
            continue
        if hmac.compare_digest(totp_code(seed, step).encode(), cleaned.encode()) and (
            matched is None
        ):
            matched = step
    return matched


#: The blind index under which stored WebAuthn public keys are MACed (fixed: renaming it would
#: make every stored MAC fail).
WEBAUTHN_KEY_MAC_INDEX = "mfa-webauthn-key"


def webauthn_key_mac_input(user_id: str, credential_id: str, public_key: bytes) -> str:
    """What the MAC of a stored WebAuthn credential covers: whose it is, which one, its key."""
    return f"{user_id}\x00{credential_id}\x00{public_key.hex()}"


# --- one-time codes (email, SMS) and backup codes ---------------------------------------------
OTP_DIGITS = 6
OTP_TTL = timedelta(minutes=10)
OTP_MAX_ATTEMPTS = 5
#: A new code for the same purpose may be sent at most this often, and at most
#: `OTP_MAX_PER_HOUR` an hour: SMS costs money and floods are a nuisance.
OTP_RESEND_INTERVAL = timedelta(seconds=30)
OTP_MAX_PER_HOUR = 10

BACKUP_CODE_COUNT = 10
#: Crockford-style alphabet without look-alikes (no i, l, o, u): 10 characters = 50 bits.
_BACKUP_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_BACKUP_LENGTH = 10


def new_numeric_code(digits: int = OTP_DIGITS) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def new_backup_codes(count: int = BACKUP_CODE_COUNT) -> list[str]:
    """Fresh, distinct backup codes, formatted `xxxxx-xxxxx` for reading aloud or typing."""
    codes: set[str] = set()
    while len(codes) < count:
        raw = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_LENGTH))
        codes.add(f"{raw[:5]}-{raw[5:]}")
    return sorted(codes)


_LOOKALIKES = str.maketrans("oil", "011")


def normalise_backup_code(code: str) -> str | None:
    """The canonical form of a typed backup code, or None if it cannot be one."""
    text = unicodedata.normalize("NFKC", code[:64]).lower()
    text = "".join(ch for ch in text if ch not in " -\t")
    # Read-aloud mistakes: o for 0, i/l for 1.
    text = text.translate(_LOOKALIKES)
    if len(text) != _BACKUP_LENGTH or any(ch not in _BACKUP_ALPHABET for ch in text):
        return None
    return text


def code_digest(key: bytes, *, user_id: str, kind: str, code: str) -> bytes:
    """A keyed hash of a low-entropy code, bound to its owner and kind.

    Six digits or fifty bits are easy to brute-force from a plain hash, so a database dump alone
    must not be enough: the key lives in the vault, not in the database.
    """
    message = f"rampart.mfa.{kind}\x00{user_id}\x00{code}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def digest_matches(expected: bytes, actual: bytes) -> bool:
    return hmac.compare_digest(expected, actual)


# --- purposes -------------------------------------------------------------------------------
_PURPOSE = re.compile(r"^[a-z][a-z0-9_.-]{0,40}(:[A-Za-z0-9_.-]{1,80})?$")


def login_purpose(pending_login_id: str) -> str:
    """The purpose a code sent during a login is bound to: only that login attempt."""
    return f"login:{pending_login_id}"


def step_up_purpose(credential_id: str | None) -> str:
    """Step-up codes are bound to the session or token family that asked for them."""
    return f"step-up:{credential_id or 'none'}"


def enrol_purpose(kind: FactorKind) -> str:
    return f"enrol:{kind.value}"


def valid_purpose(purpose: str) -> bool:
    return bool(_PURPOSE.match(purpose))


# --- names ----------------------------------------------------------------------------------
MAX_AUTHENTICATORS = 10
MAX_NAME = 64


def clean_authenticator_name(name: str) -> str:
    """A display name for an authenticator: NFKC, trimmed, 1-64 printable characters."""
    text = unicodedata.normalize("NFKC", name).strip()
    if not text or len(text) > MAX_NAME:
        raise ValidationError(f"A name is 1 to {MAX_NAME} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ValidationError("A name may not contain control characters.")
    return text


_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")


def clean_phone_number(phone: str) -> str:
    """An E.164 number (`+` and 7-15 digits); spaces, dashes and brackets are dropped."""
    text = "".join(ch for ch in phone[:40] if ch not in " -().")
    if not _PHONE.match(text):
        raise ValidationError("Give the phone number in international form, e.g. +447700900123.")
    return text


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}{'•' * max(0, len(phone) - 5)}{phone[-2:]}"


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * max(1, min(len(local) - 1, 6))}@{domain}"


# --- cooling period -------------------------------------------------------------------------
def cooling_until(reset_at: datetime) -> datetime:
    return reset_at + COOLING_PERIOD


def in_cooling(reset_at: datetime | None, now: datetime) -> bool:
    return reset_at is not None and now < cooling_until(reset_at)


@dataclass(frozen=True, slots=True)
class FactorSummary:
    """What a user (or support) sees of someone's factors: never a secret."""

    totp: bool
    webauthn: int
    email: bool
    sms: str | None
    backup_codes_remaining: int

    @property
    def enrolled(self) -> bool:
        """A strong-enough factor exists. Backup codes alone only recover, they do not count."""
        return self.totp or self.webauthn > 0 or self.email or self.sms is not None

    def kinds(self) -> list[str]:
        kinds = []
        if self.webauthn:
            kinds.append(FactorKind.WEBAUTHN.value)
        if self.totp:
            kinds.append(FactorKind.TOTP.value)
        if self.sms is not None:
            kinds.append(FactorKind.SMS.value)
        if self.email:
            kinds.append(FactorKind.EMAIL.value)
        if self.backup_codes_remaining:
            kinds.append(FactorKind.BACKUP_CODE.value)
        return kinds


# --- errors ---------------------------------------------------------------------------------
class InvalidFactorError(UnauthorizedError):
    # One error for a wrong, replayed, expired or unknown code: the attacker learns nothing
    # about which it was.
    code = "mfa-invalid"
    title = "That code or key was not accepted"


class ChallengeExhaustedError(UnauthorizedError):
    code = "mfa-challenge-exhausted"
    title = "Too many wrong attempts; ask for a new code"


class FactorNotEnrolledError(NotFoundError):
    code = "mfa-factor-not-found"
    title = "No such second factor"


class FactorAlreadyEnrolledError(ConflictError):
    code = "mfa-factor-exists"
    title = "That second factor is already set up"


class TooManyAuthenticatorsError(ConflictError):
    code = "mfa-too-many-authenticators"
    title = "Remove an authenticator before adding another"


class CodeSendThrottledError(RateLimitedError):
    code = "mfa-code-throttled"
    title = "A code was sent moments ago; wait before asking for another"


class CoolingPeriodError(ForbiddenError):
    code = "mfa-cooling-period"
    title = "Blocked for 24 hours after a second-factor reset"


class SignInAgainError(UnauthorizedError):
    # A user without a second factor has only the password to re-authenticate with: adding the
    # first factor needs a sign-in within the step-up window (ASVS 7.5.1), so a stolen, older
    # session cannot bind the attacker's authenticator to the account.
    code = "reauthentication-required"
    title = "Sign in again to set up a second factor"


class EmailFactorDisabledError(ForbiddenError):
    code = "mfa-email-factor-disabled"
    title = "Email codes are not a second factor on this service"


class ResetVerificationError(ValidationError):
    code = "mfa-reset-unverified"
    title = "Record how the user's identity was re-verified"
