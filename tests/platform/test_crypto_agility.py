"""Every stored or transmitted cryptographic artefact names the algorithm or format that made it
(ASVS 11.2.2), so a primitive can be replaced next to the old one, both read during the move,
and the old one retired: the plan is in docs/security/keys.md (Migration plan).
"""

from __future__ import annotations

import base64

import jwt
import pytest
from fastapi.testclient import TestClient
from tests.identity.support import bearer, login, verified_user

from rampart.audit.notes import ED25519_ALGORITHM, key_id, verifier_key
from rampart.bootstrap import Container
from rampart.identity.mfa.backup_codes import code_digest_matches, seal_code_digest
from rampart.identity.passwords import PasswordHasher
from rampart.vault.domain import (
    FORMAT_VERSION,
    MAGIC,
    SQL_PURPOSE_AT,
    SQL_VERSION_AT,
    Header,
    Purpose,
    SealContext,
    UnreadableError,
    new_key,
    open_with,
    parse_header,
    seal_with,
)

CONTEXT = SealContext(table="t", column="c", row_id="r")


def test_a_vault_ciphertext_names_its_format_purpose_and_key_version() -> None:
    key = new_key()
    header = Header(Purpose.MFA_SECRET, key_version=7)
    blob = seal_with(key, header, b"seed", CONTEXT)
    assert blob[:2] == MAGIC
    assert blob[2] == FORMAT_VERSION == 1
    # Purpose and key version at fixed offsets (1-based in SQL `substr`): what re-encryption
    # selects by, without decrypting.
    assert blob[SQL_PURPOSE_AT - 1 : SQL_PURPOSE_AT + 1] == Purpose.MFA_SECRET.code.to_bytes(2)
    assert int.from_bytes(blob[SQL_VERSION_AT - 1 : SQL_VERSION_AT + 3]) == 7
    assert open_with(key, parse_header(blob), blob, CONTEXT) == b"seed"


def test_a_ciphertext_of_another_format_is_refused_not_guessed() -> None:
    key = new_key()
    blob = bytearray(seal_with(key, Header(Purpose.MFA_SECRET, key_version=1), b"x", CONTEXT))
    blob[2] = FORMAT_VERSION + 1
    with pytest.raises(UnreadableError):
        parse_header(bytes(blob))


def test_password_hashes_name_their_algorithm_and_cost_and_upgrade() -> None:
    cheap = PasswordHasher(memory_kib=8192, time_cost=1, parallelism=1)
    stored = cheap.hash("a long and unguessable passphrase")
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    # A new cost (or algorithm: see the bcrypt import test) marks the old hash for rehashing at
    # the next sign-in, while it still verifies.
    dearer = PasswordHasher(memory_kib=19_456, time_cost=2, parallelism=1)
    assert dearer.verify(stored, "a long and unguessable passphrase")
    assert dearer.needs_rehash(stored)
    assert not cheap.needs_rehash(stored)


def test_backup_code_digests_name_their_algorithm() -> None:
    stored = seal_code_digest("keyed-digest-of-a-code")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert code_digest_matches(stored, "keyed-digest-of-a-code")


def test_access_tokens_name_their_algorithm_key_and_type(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "agile@example.com")
    token = login(client, "agile@example.com")["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    kid = header["kid"]
    jwks = client.get("/.well-known/jwks.json").json()
    published = {k["kid"]: k for k in jwks["keys"]}
    assert published[kid]["alg"] == "EdDSA"
    assert published[kid]["crv"] == "Ed25519"
    assert client.get("/v1/me", headers=bearer(token)).status_code == 200


def test_checkpoint_keys_name_their_signature_algorithm() -> None:
    public = bytes(range(32))
    name = "trade.example.com/audit"
    text = verifier_key(name, public)
    _, hex_id, encoded = text.split("+", 2)
    raw = base64.b64decode(encoded)
    assert raw[0] == ED25519_ALGORITHM == 0x01
    assert raw[1:] == public
    assert bytes.fromhex(hex_id) == key_id(name, public)
