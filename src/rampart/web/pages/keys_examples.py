"""Signing examples shown beside a new API key: `rampart.client`, plain Python and Node.js.

The examples are template files (`templates/keys_examples/`), filled in with the server's address
and the key's id and algorithm. Each signs as `rampart.apikeys.signatures` verifies (RFC 9421):
`@method` and `@target-uri`, plus `content-digest` (RFC 9530, sha-256) and `content-type` when
there is a body; the parameters `created`, `keyid`, a fresh `nonce` and `alg`; the label `sig1`.
The secret itself is never written into an example: it is read from `RAMPART_API_SECRET`
(hmac-sha256) or a PEM file (ed25519), so a copied example can be kept without the secret in it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    title: str
    language: str
    #: The template (under `templates/`) that writes it out.
    template: str


EXAMPLES = (
    Example("example-client", "Python with rampart.client", "python", "client.py.txt"),
    Example("example-python", "Python, standard library only", "python", "python.py.txt"),
    Example("example-node", "JavaScript (Node.js)", "javascript", "node.js.txt"),
)


def signing_examples() -> list[Example]:
    """The examples a new key's page shows, each complete and runnable as it stands."""
    return [Example(e.id, e.title, e.language, f"keys_examples/{e.template}") for e in EXAMPLES]


__all__ = ["Example", "signing_examples"]
