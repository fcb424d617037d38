"""The WebAuthn relying party: ceremony options and response checks, on the `webauthn` package.

The package verifies signatures, origins, RP-id hashes and attestation; this module fixes our
choices (algorithms, user verification, attestation "none", timeouts) in one place and turns the
package's exceptions into the one opaque `InvalidFactorError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_authenticator_data,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from rampart.identity.mfa.domain import InvalidFactorError

#: Browsers show the prompt for this long; the server-side challenge lives a little longer.
CEREMONY_TIMEOUT_MS = 120_000
#: EdDSA, ES256, RS256: what security keys, platform authenticators and Windows Hello use.
ALGORITHMS = [
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
#: A JSON credential from the browser is a few KiB at most; anything larger is refused unread.
MAX_CREDENTIAL_JSON = 16_384
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


@dataclass(frozen=True, slots=True)
class RelyingParty:
    rp_id: str
    rp_name: str
    origin: str

    @classmethod
    def from_settings(
        cls, *, rp_id: str | None, rp_name: str, origin: str | None, public_url: str
    ) -> RelyingParty:
        """RP id and origin from config, or from the public URL (dev: `http://127.0.0.1:8000`)."""
        origin = (origin or public_url).rstrip("/")
        host = urlsplit(origin).hostname or "localhost"
        return cls(rp_id=rp_id or host, rp_name=rp_name, origin=origin)


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: str
    public_key: bytes
    sign_count: int
    aaguid: str
    device_type: str
    backed_up: bool
    user_verified: bool
    transports: list[str]


@dataclass(frozen=True, slots=True)
class Assertion:
    credential_id: str
    new_sign_count: int
    user_verified: bool
    backed_up: bool


def _descriptor(credential_id: str, transports: list[str]) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(credential_id),
        transports=[AuthenticatorTransport(t) for t in transports if t in _TRANSPORTS] or None,
    )


def registration_options(
    rp: RelyingParty,
    *,
    user_handle: bytes,
    user_name: str,
    challenge: bytes,
    existing: list[tuple[str, list[str]]],
) -> dict[str, Any]:
    """Options for `navigator.credentials.create()`, as JSON-ready values."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.rp_name,
        user_id=user_handle,
        user_name=user_name,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        # A discoverable credential (passkey) where the authenticator can hold one; user
        # verification (PIN, biometric) where it can do it.
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        # The same authenticator registered twice would count as two factors: it is excluded.
        exclude_credentials=[_descriptor(cid, t) for cid, t in existing],
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json_dict(options)


def authentication_options(
    rp: RelyingParty, *, challenge: bytes, allowed: list[tuple[str, list[str]]]
) -> dict[str, Any]:
    """Options for `navigator.credentials.get()`, limited to the user's own credentials."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=[_descriptor(cid, t) for cid, t in allowed],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json_dict(options)


def verify_registration(
    rp: RelyingParty, credential: dict[str, Any], *, challenge: bytes
) -> NewCredential:
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_presence=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidFactorError("The authenticator's response was not accepted.") from exc
    response = credential.get("response")
    raw_transports = response.get("transports") if isinstance(response, dict) else None
    transports = (
        sorted({t for t in raw_transports if isinstance(t, str) and t in _TRANSPORTS})
        if isinstance(raw_transports, list)
        else []
    )
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        device_type=verified.credential_device_type.value,
        backed_up=verified.credential_backed_up,
        user_verified=verified.user_verified,
        transports=transports,
    )


def assertion_credential_id(credential: dict[str, Any]) -> str:
    """The credential id an assertion claims to come from (checked against the user's own)."""
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidFactorError("The authenticator's response was not accepted.") from exc
    return bytes_to_base64url(parsed.raw_id)


def assertion_sign_count(credential: dict[str, Any]) -> int:
    """The signature counter an assertion reports (before its signature is checked)."""
    try:
        parsed = parse_authentication_credential_json(credential)
        return parse_authenticator_data(parsed.response.authenticator_data).sign_count
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidFactorError("The authenticator's response was not accepted.") from exc


def verify_assertion(
    rp: RelyingParty,
    credential: dict[str, Any],
    *,
    challenge: bytes,
    public_key: bytes,
    sign_count: int,
) -> Assertion:
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidFactorError("The authenticator's response was not accepted.") from exc
    return Assertion(
        credential_id=bytes_to_base64url(verified.credential_id),
        new_sign_count=verified.new_sign_count,
        user_verified=verified.user_verified,
        backed_up=verified.credential_backed_up,
    )
