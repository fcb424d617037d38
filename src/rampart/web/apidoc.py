"""The API reference's front page: `info.description` of the OpenAPI, shown on top of `/docs`.

It tells a client author the three ways to authenticate and, in full, how to sign a request with
an API key (RFC 9421), with a worked example. The example's headers are a real signature:
`tests/web/test_api_docs.py` verifies them with the server's own verifier and recomputes them with
`rampart.client`, so the page cannot drift from what the server accepts.
"""

from __future__ import annotations

#: The worked example: an order sent to `EXAMPLE_URL` with an example hmac-sha256 key.
EXAMPLE_URL = "https://rampart.example/v1/orders"
EXAMPLE_KEY_ID = "0193f1a2-7c4e-7b3a-9d2e-5f6a7b8c9d0e"
EXAMPLE_SECRET = "rmp_test_example-secret-never-use-this"  # noqa: S105 (published example)
EXAMPLE_CREATED = 1767225600
EXAMPLE_NONCE = "Qm9vdHN0cmFwLW5vbmNlLTAx"
EXAMPLE_BODY = (
    b'{"symbol":"ACME","side":"buy","type":"limit","quantity":"10","limit_price":"101.50"}'
)
EXAMPLE_HEADERS = {
    "Content-Type": "application/json",
    "Content-Digest": "sha-256=:KcVitpmrOdsVYBeL1rNyIC+XHsXqJKRpoGD0Qg4GtFs=:",
    "Signature-Input": (
        'sig1=("@method" "@target-uri" "content-digest" "content-type");created=1767225600;'
        'keyid="0193f1a2-7c4e-7b3a-9d2e-5f6a7b8c9d0e";nonce="Qm9vdHN0cmFwLW5vbmNlLTAx";'
        'alg="hmac-sha256"'
    ),
    "Signature": "sig1=:wGupihUlIOu0OQqkkze5p0a8eUUfuNATF7Az+kkzwKQ=:",
}

_HEADER_LINES = "\n".join(f"{name}: {value}" for name, value in EXAMPLE_HEADERS.items())

API_DESCRIPTION = f"""\
The HTTP API of Rampart. Every error is an RFC 9457 `application/problem+json` document whose
`type` (a stable URN, listed per operation) is what a client branches on.

## Authentication

An operation that needs a principal accepts any one of three credentials (see the lock on each
operation and *Authorize*):

- **Bearer token** (`bearer`): `Authorization: Bearer <access token>` from
  `POST /v1/auth/login` (it lasts 15 minutes; refresh it with `POST /v1/auth/refresh`).
- **Browser session** (`session` + `csrf`): the `__Host-rampart_session` cookie that the sign-in
  page sets.
  Unsafe methods (POST, PUT, PATCH, DELETE) must also send the session's CSRF token in the
  `X-CSRF-Token` header; the cookie alone is refused.
- **API key, signed request** (`signature` + `signatureInput`): for bots. No secret travels with
  the request: each request carries an RFC 9421 HTTP message signature made with the key.

## Signing a request with an API key (RFC 9421)

A key is created on the API keys page or with `POST /api/v1/apikeys`. Its algorithm is either
`hmac-sha256` (the server generates a shared secret `rmp_...`, shown once) or `ed25519` (you
keep the private key; the server holds only the public key). A request carries exactly one
signature, labelled e.g. `sig1`:

- **Covered components**, in this order: `@method`, `@target-uri` (scheme, host, port when not
  the default, path and query, exactly as sent) and, when the request has a body,
  `content-digest` (RFC 9530, `sha-256` or `sha-512` of the body) and `content-type`. A signature
  that leaves out `@method`, `@target-uri` or, with a body, `content-digest` is refused.
- **Parameters** (all required except `alg`):
  - `keyid`: the key's id (the `key_id` returned when it was created);
  - `created`: Unix time in seconds; by default the server accepts it for 30 seconds, and at most
    5 seconds ahead of its clock (keep your clock in sync);
  - `nonce`: 16 to 128 characters, random per request; each nonce is accepted once while its
    `created` is fresh, so a replayed request is refused;
  - `alg`: `hmac-sha256` or `ed25519`; when present it must be the key's algorithm (the key,
    not the message, chooses it).
- **Signature base** (RFC 9421 section 2.5): one line per component, `"name": value`, then
  `"@signature-params": ` followed by the value of `Signature-Input` after `sig1=`, joined with
  `\\n` and no trailing newline. HMAC-SHA256 uses the secret's ASCII bytes as the key;
  Ed25519 signs the base with the private key. `Signature` is `sig1=:<base64 of the result>:`.

Failures answer 401 with a problem naming the reason (stale `created`, replayed nonce, digest
mismatch, unknown or revoked key, ...). A key may also be limited to scopes, an IP allow-list and
an expiry.

### Example

`POST {EXAMPLE_URL}` with the body
`{EXAMPLE_BODY.decode()}`, key id `{EXAMPLE_KEY_ID}` and the (example)
hmac-sha256 secret `{EXAMPLE_SECRET}`, at `created={EXAMPLE_CREATED}`:

```
POST /v1/orders HTTP/1.1
Host: rampart.example
{_HEADER_LINES}

{EXAMPLE_BODY.decode()}
```

The signature base that was signed:

```
"@method": POST
"@target-uri": {EXAMPLE_URL}
"content-digest": {EXAMPLE_HEADERS["Content-Digest"]}
"content-type": application/json
"@signature-params": {EXAMPLE_HEADERS["Signature-Input"].removeprefix("sig1=")}
```

With the Python client (`rampart.client`), which does all of the above:

```python
from rampart.client import RampartClient

with RampartClient("https://rampart.example", key_id=KEY_ID, secret=SECRET) as client:
    order = client.post("/v1/orders", json={{"symbol": "ACME", "side": "buy",
                        "type": "limit", "quantity": "10", "limit_price": "101.50"}})
```

For an Ed25519 key pass `private_key=` (PEM bytes or an `Ed25519PrivateKey`) instead of
`secret=`.
"""
