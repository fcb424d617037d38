"""Verifying HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530): pure functions.

What a Rampart API request must carry, and why:
- exactly one signature, covering `@method` and `@target-uri` (what is done, to what) and, when
  there is a body, `content-digest` (the body itself, through its digest);
- the parameters `created` (freshness: at most `max_age` seconds old, a few seconds ahead at most),
  `keyid` (which key) and `nonce` (replay: each nonce is accepted once while `created` is fresh);
- `alg`, when present, must match the key's algorithm: the key, not the message, picks it.

Structured Fields (RFC 8941) are parsed with `http_sf`, whose serialiser also rebuilds the
`@signature-params` line exactly as the signer serialised it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rampart.apikeys.domain import (
    Algorithm,
    ContentDigestMismatchError,
    SignatureComponentsMissingError,
    SignatureExpiredError,
    SignatureFromFutureError,
    SignatureMalformedError,
    SignatureParamsMissingError,
    SignatureStaleError,
)

MAX_HEADER_BYTES = 4096
MAX_COMPONENTS = 24
_NONCE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,128}$")
_KEYID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_FIELD_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
DERIVED = ("@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query")
KNOWN_PARAMS = {"created", "expires", "keyid", "nonce", "alg", "tag"}
DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the verifier needs of a request, as it arrived."""

    method: str
    scheme: str
    #: host[:port], lower-case, default port left out.
    authority: str
    #: The path as sent (still percent-encoded).
    path: str
    #: The query string without `?` (empty when none).
    query: str
    #: Lower-case field name -> its field lines in order.
    headers: Mapping[str, list[str]]
    body: bytes

    @property
    def target_uri(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.authority}{self.path or '/'}{query}"

    def field(self, name: str) -> str | None:
        lines = self.headers.get(name)
        if lines is None:
            return None
        # RFC 9421 section 2.1: trim each line, join repeated lines with ", ".
        return ", ".join(line.strip() for line in lines)


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    label: str
    components: tuple[str, ...]
    params: Mapping[str, Any]
    signature: bytes
    #: The `@signature-params` value, re-serialised.
    params_line: str

    @property
    def keyid(self) -> str:
        return str(self.params["keyid"])

    @property
    def nonce(self) -> str:
        return str(self.params["nonce"])

    @property
    def created(self) -> int:
        return int(self.params["created"])


def _one_header(headers: Mapping[str, list[str]], name: str) -> str | None:
    lines = headers.get(name)
    if not lines:
        return None
    value = ", ".join(lines)
    if len(value) > MAX_HEADER_BYTES:
        raise SignatureMalformedError(f"`{name}` is longer than {MAX_HEADER_BYTES} bytes.")
    return value


# The canonical serialisation of one signature, as clients (ours and the libraries) send it:
# `label=("c1" "c2");created=1;keyid="k"` and `label=:base64:`. Such headers are parsed here
# directly (a few microseconds); anything else (other spacing, escapes, several members) goes
# through the general Structured Fields parser, with the same result.
_SF_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_SF_INTEGER = r"(?:0|-?[1-9][0-9]{0,14})"
_CANONICAL_INPUT = re.compile(
    rf"({_SF_KEY})=\(((?:{_SF_STRING}(?: {_SF_STRING})*)?)\)"
    rf"((?:;{_SF_KEY}=(?:{_SF_STRING}|{_SF_INTEGER}))*)"
)
_CANONICAL_MEMBER = re.compile(_SF_STRING)
_CANONICAL_SIGNATURE = re.compile(rf"({_SF_KEY})=:([A-Za-z0-9+/]*={{0,2}}):")
_CANONICAL_PARAM = re.compile(rf";({_SF_KEY})=({_SF_STRING}|{_SF_INTEGER})")


def _parse_canonical(sig_input: str, sig: str) -> tuple[Any, Any, str] | None:
    """(inputs, values, params line) as `http_sf` would give them; None: not canonical."""
    matched = _CANONICAL_INPUT.fullmatch(sig_input)
    signed = _CANONICAL_SIGNATURE.fullmatch(sig)
    if matched is None or signed is None:
        return None
    label, inner, params_text = matched.groups()
    params_line = sig_input[len(label) + 1 :]
    members: list[tuple[str, dict[str, Any]]] = [
        (name[1:-1], {}) for name in _CANONICAL_MEMBER.findall(inner)
    ]
    params: dict[str, Any] = {}
    for key, raw in _CANONICAL_PARAM.findall(params_text):
        if key in params:
            return None  # a repeated parameter: let the general parser decide
        params[key] = raw[1:-1] if raw.startswith('"') else int(raw)
    encoded = signed.group(2)
    if len(encoded) % 4:
        return None
    try:
        value = base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
    return {label: (members, params)}, {signed.group(1): (value, {})}, params_line


def _parse_canonical_digest(field: str) -> dict[str, tuple[bytes, dict[str, Any]]] | None:
    """A one-member `sha-256=:base64:` Content-Digest as `http_sf` parses it; None otherwise."""
    matched = _CANONICAL_SIGNATURE.fullmatch(field)
    if matched is None or len(matched.group(2)) % 4:
        return None
    try:
        return {matched.group(1): (base64.b64decode(matched.group(2), validate=True), {})}
    except ValueError:
        return None


def parse_signature(headers: Mapping[str, list[str]]) -> ParsedSignature | None:
    """The request's single signature; None when it carries no signature headers at all."""
    sig_input = _one_header(headers, "signature-input")
    sig = _one_header(headers, "signature")
    if sig_input is None and sig is None:
        return None
    if sig_input is None or sig is None:
        raise SignatureMalformedError("Send both Signature-Input and Signature.")
    canonical = _parse_canonical(sig_input, sig)
    if canonical is not None:
        inputs, values, params_line = canonical
    else:
        params_line = None
        try:
            inputs = http_sf.parse(sig_input.encode("latin-1"), tltype="dictionary")
            values = http_sf.parse(sig.encode("latin-1"), tltype="dictionary")
        except Exception:  # noqa: BLE001 - any parse failure is the same refusal
            raise SignatureMalformedError(
                "Signature headers are not valid Structured Fields."
            ) from None
    if not isinstance(inputs, dict) or not isinstance(values, dict):
        raise SignatureMalformedError("Signature headers must be dictionaries.")
    if len(inputs) != 1 or set(inputs) != set(values):
        raise SignatureMalformedError("Send exactly one signature, with the same label in both.")
    label = next(iter(inputs))
    members, params = inputs[label]
    value, _ = values[label]
    if not isinstance(members, list) or not isinstance(value, bytes):
        raise SignatureMalformedError("Signature-Input must be an inner list; Signature bytes.")
    if len(members) > MAX_COMPONENTS:
        raise SignatureMalformedError(f"At most {MAX_COMPONENTS} covered components.")
    components: list[str] = []
    for name, component_params in members:
        if not isinstance(name, str) or component_params:
            raise SignatureMalformedError(
                "Covered components are plain strings without parameters."
            )
        if not (name in DERIVED or _FIELD_NAME.match(name)):
            raise SignatureMalformedError(f"Unsupported component `{name[:40]}`.")
        if name in components:
            raise SignatureMalformedError("A component is covered twice.")
        components.append(name)
    unknown = set(params) - KNOWN_PARAMS
    if unknown:
        raise SignatureMalformedError("Unknown signature parameters.", params=sorted(unknown)[:5])
    missing = [p for p in ("created", "keyid", "nonce") if p not in params]
    if missing:
        raise SignatureParamsMissingError(f"Missing: {', '.join(missing)}.", missing=missing)
    if type(params["created"]) is not int or (
        "expires" in params and type(params["expires"]) is not int
    ):
        raise SignatureMalformedError("`created` and `expires` are integers.")
    for name in ("keyid", "nonce", "alg", "tag"):
        if name in params and not isinstance(params[name], str):
            raise SignatureMalformedError(f"`{name}` is a string.")
    if not _KEYID.match(params["keyid"]):
        raise SignatureMalformedError("`keyid` is not a key id.")
    if not _NONCE.match(params["nonce"]):
        raise SignatureMalformedError("`nonce` must be 16-128 URL-safe or base64 characters.")
    if params_line is None:
        params_line = http_sf.ser({"x": (members, params)})[2:]
    return ParsedSignature(
        label=label,
        components=tuple(components),
        params=dict(params),
        signature=value,
        params_line=params_line,
    )


def check_coverage(parsed: ParsedSignature, request: SignedRequest) -> None:
    required = ["@method", "@target-uri"]
    if request.body or request.field("content-digest") is not None:
        required.append("content-digest")
    missing = [c for c in required if c not in parsed.components]
    if missing:
        raise SignatureComponentsMissingError(
            f"The signature must cover {', '.join(missing)}.", missing=missing
        )


def check_freshness(parsed: ParsedSignature, now: float, *, max_age: int, future_skew: int) -> None:
    age = now - parsed.created
    if age > max_age:
        raise SignatureStaleError(f"`created` must be within {max_age} s of our clock.")
    if age < -future_skew:
        raise SignatureFromFutureError("`created` is ahead of our clock.")
    expires = parsed.params.get("expires")
    if expires is not None and expires <= now:
        raise SignatureExpiredError


def check_content_digest(request: SignedRequest) -> None:
    """Every Content-Digest member we know must match the body; at least one must be known."""
    field = request.field("content-digest")
    if field is None:
        if request.body:
            raise SignatureComponentsMissingError("A body needs a Content-Digest.")
        return
    parsed: Any = _parse_canonical_digest(field)
    if parsed is None:
        try:
            parsed = http_sf.parse(field.encode("latin-1"), tltype="dictionary")
        except Exception:  # noqa: BLE001
            raise SignatureMalformedError(
                "Content-Digest is not a valid Structured Field."
            ) from None
    assert isinstance(parsed, dict)
    checked = 0
    for algorithm, (digest, _params) in parsed.items():
        hasher = DIGESTS.get(algorithm)
        if hasher is None:
            continue
        if not isinstance(digest, bytes) or not hmac.compare_digest(
            hasher(request.body).digest(), digest
        ):
            raise ContentDigestMismatchError
        checked += 1
    if not checked:
        raise SignatureMalformedError("Content-Digest needs a sha-256 or sha-512 member.")


def signature_base(parsed: ParsedSignature, request: SignedRequest) -> bytes:
    lines: list[str] = []
    for name in parsed.components:
        value = _component_value(name, request)
        if "\n" in value or "\r" in value:
            raise SignatureMalformedError("A covered value contains a line break.")
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {parsed.params_line}')
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError:
        raise SignatureMalformedError("Covered values must be ASCII.") from None


def _component_value(name: str, request: SignedRequest) -> str:
    if name == "@method":
        return request.method.upper()
    if name == "@target-uri":
        return request.target_uri
    if name == "@authority":
        return request.authority
    if name == "@scheme":
        return request.scheme
    if name == "@path":
        return request.path or "/"
    if name == "@query":
        return f"?{request.query}"
    if name == "@request-target":
        return (request.path or "/") + (f"?{request.query}" if request.query else "")
    value = request.field(name)
    if value is None:
        raise SignatureComponentsMissingError(f"The covered field `{name}` is not in the request.")
    return value


def verify(algorithm: str, key: bytes, base: bytes, signature: bytes) -> bool:
    """Constant-time for HMAC; Ed25519 verification does not branch on secret data."""
    if algorithm == Algorithm.HMAC_SHA256:
        expected = hmac.new(key, base, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)
    if algorithm == Algorithm.ED25519:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, base)
        except (InvalidSignature, ValueError):
            return False
        return True
    return False


def load_ed25519_public_key(text: str) -> bytes:
    """The raw 32 bytes of an Ed25519 public key given as PEM or as base64 of the raw bytes."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not ed25519")
            return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        raw = base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if "-" in text or "_" in text else None,
            validate=True,
        )
        Ed25519PublicKey.from_public_bytes(raw)
        return raw
    except (ValueError, TypeError, UnicodeEncodeError):
        from rampart.apikeys.domain import InvalidApiKeyError

        raise InvalidApiKeyError(
            "`public_key` must be an Ed25519 public key (PEM or base64)."
        ) from None
