"""Signing requests the way the server verifies them (RFC 9421 with RFC 9530 Content-Digest).

Covered: `@method`, `@target-uri`, and `content-digest` (plus `content-type`) when there is a body;
parameters `created`, `keyid`, `nonce` (fresh, random) and `alg`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

LABEL = "sig1"
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class Signer(Protocol):
    algorithm: str

    def sign(self, base: bytes) -> bytes: ...


class HmacSigner:
    """hmac-sha256 with the key's shared secret (`rmp_live_...`), used as its ASCII bytes."""

    algorithm = "hmac-sha256"

    def __init__(self, secret: str) -> None:
        if not secret.startswith("rmp_"):
            raise ValueError("an API key secret starts with rmp_")
        self._key = secret.encode("ascii")

    def __repr__(self) -> str:
        return "HmacSigner(secret=[REDACTED])"

    def sign(self, base: bytes) -> bytes:
        return hmac.new(self._key, base, hashlib.sha256).digest()


class Ed25519Signer:
    """ed25519 with the private half of the public key uploaded to the server."""

    algorithm = "ed25519"

    def __init__(self, private_key: Ed25519PrivateKey | bytes) -> None:
        if isinstance(private_key, bytes):
            loaded = load_pem_private_key(private_key, password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 private key")
            private_key = loaded
        self._key = private_key

    def __repr__(self) -> str:
        return "Ed25519Signer(private_key=[REDACTED])"

    def sign(self, base: bytes) -> bytes:
        return self._key.sign(base)


def _quote(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise ValueError("signature parameters must be printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def target_uri(url: str) -> str:
    """The URL as RFC 9421 `@target-uri` has it: lower-case host, default port left out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    authority = (
        host if port is None or str(port) == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    )
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{authority}{parts.path or '/'}{query}"


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key_id: str,
    signer: Signer,
    now: Callable[[], float] = time.time,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers to add to a request: Content-Digest (with a body), Signature-Input, Signature."""
    added: dict[str, str] = {}
    lower = {k.lower(): v for k, v in headers.items()}
    components = ["@method", "@target-uri"]
    values = {"@method": method.upper(), "@target-uri": target_uri(url)}
    if body:
        digest = content_digest(body)
        added["Content-Digest"] = digest
        components.append("content-digest")
        values["content-digest"] = digest
        if "content-type" in lower:
            components.append("content-type")
            values["content-type"] = lower["content-type"].strip()
    params = (
        f";created={int(now())};keyid={_quote(key_id)};"
        f"nonce={_quote(nonce or secrets.token_urlsafe(24))};alg={_quote(signer.algorithm)}"
    )
    inner = "(" + " ".join(f'"{c}"' for c in components) + ")" + params
    lines = [f'"{c}": {values[c]}' for c in components]
    lines.append(f'"@signature-params": {inner}')
    signature = signer.sign("\n".join(lines).encode("ascii"))
    added["Signature-Input"] = f"{LABEL}={inner}"
    added["Signature"] = f"{LABEL}=:{base64.b64encode(signature).decode('ascii')}:"
    return added
