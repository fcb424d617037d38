"""Signed requests end to end, signed by our client and by two independent libraries."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st
from requests_http_signature import HTTPSignatureAuth

from rampart.apikeys.domain import secret_is_well_formed
from rampart.bootstrap import Container
from rampart.client import RampartClient
from rampart.kernel.clock import FrozenClock
from tests.access.support import as_user, email_of, new_account

BASE = "https://testserver"
WHOAMI = "/api/v1/apikeys/whoami"


def create_key(client: TestClient, user: str, **body: Any) -> dict[str, Any]:
    body.setdefault("scopes", ["trade"])
    response = client.post("/api/v1/apikeys", json=body, headers=as_user(user))
    assert response.status_code == 201, response.text
    return dict(response.json())


def bot(client: TestClient, clock: FrozenClock, key: dict[str, Any], **kw: Any) -> RampartClient:
    return RampartClient(
        BASE, key_id=key["key_id"], http_client=client, now=lambda: clock.time_ns() / 1e9, **kw
    )


def problem(response: Any) -> str:
    return str(response.json()["type"]).removeprefix("urn:rampart:problem:")


def library_headers(
    method: str,
    url: str,
    body: bytes,
    *,
    key_id: str,
    key: Any,
    algorithm: Any,
    created: datetime,
    nonce: str = "library-nonce-0001",
) -> dict[str, str]:
    """Sign with http-message-signatures, independently of our code."""
    request = requests.Request(
        method, url, data=body or None, headers={"Content-Type": "application/json"}
    ).prepare()
    signer = HTTPMessageSigner(
        signature_algorithm=algorithm,
        key_resolver=MappingKeyResolver(private_keys={key_id: key}, public_keys={}),
    )
    signer.sign(
        request,
        key_id=key_id,
        created=created,
        nonce=nonce,
        covered_component_ids=("@method", "@authority", "@target-uri"),
        body=body if body else None,
    )
    return dict(request.headers)


# --- the secret ------------------------------------------------------------------------------
def test_secret_is_recognisable_checksummed_and_shown_once(client: TestClient) -> None:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    created = create_key(client, user, label="bot")
    secret = created["secret"]
    assert secret.startswith("rmp_test_")
    assert secret_is_well_formed(secret)
    assert not secret_is_well_formed(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    listing = client.get("/api/v1/apikeys", headers=as_user(user))
    assert listing.status_code == 200
    assert secret not in listing.text
    assert secret[9:20] not in listing.text
    assert listing.json()["items"][0]["secret_hint"] == secret[:13] + "…"


# --- accepted signatures ---------------------------------------------------------------------
def test_our_client_signs_hmac_requests(client: TestClient, clock: FrozenClock) -> None:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    key = create_key(client, user, scopes=["trade", "data"])
    response = bot(client, clock, key, secret=key["secret"]).get(WHOAMI)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["actor"] == f"apikey:{key['key_id']}"
    assert me["method"] == "apikey"
    assert me["user_id"] == user
    assert "order:place" in me["permissions"]
    assert "account:withdraw" not in me["permissions"]
    assert "apikey:manage" not in me["permissions"]


def test_our_client_signs_ed25519_and_posts_a_body(client: TestClient, clock: FrozenClock) -> None:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    key = create_key(client, user, algorithm="ed25519", public_key=public)
    assert key["secret"] is None
    response = bot(client, clock, key, private_key=private).post(
        "/test/orders", json={"symbol": "ACME", "qty": "1"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["by"] == f"apikey:{key['key_id']}"


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "ed25519"])
def test_http_message_signatures_library_is_accepted(
    client: TestClient, clock: FrozenClock, algorithm: str
) -> None:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    if algorithm == "ed25519":
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = create_key(
            client, user, algorithm="ed25519", public_key=base64.b64encode(public).decode()
        )
        signing_key: Any = private
        algo: Any = algorithms.ED25519
    else:
        key = create_key(client, user)
        signing_key = key["secret"].encode()
        algo = algorithms.HMAC_SHA256
    body = json.dumps({"symbol": "ACME", "qty": "2"}).encode()
    headers = library_headers(
        "POST",
        BASE + "/test/orders",
        body,
        key_id=key["key_id"],
        key=signing_key,
        algorithm=algo,
        created=clock.now(),
    )
    response = client.post("/test/orders", content=body, headers=headers)
    assert response.status_code == 200, response.text


def test_requests_http_signature_is_accepted(client: TestClient, clock: FrozenClock) -> None:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    key = create_key(client, user)

    class ClockedAuth(HTTPSignatureAuth):
        def get_created(self, request: requests.PreparedRequest) -> datetime:
            created = clock.now()
            self.add_date(request, timestamp=int(created.timestamp()))
            return created

    auth = ClockedAuth(
        signature_algorithm=algorithms.HMAC_SHA256,
        key=key["secret"].encode(),
        key_id=key["key_id"],
        use_nonce=True,
        covered_component_ids=("@method", "@target-uri"),
    )
    body = b'{"symbol":"ACME","qty":"3"}'
    prepared = requests.Request(
        "POST", BASE + "/test/orders", data=body, headers={"Content-Type": "application/json"}
    ).prepare()
    auth(prepared)
    response = client.post("/test/orders", content=body, headers=dict(prepared.headers))
    assert response.status_code == 200, response.text


# --- refused signatures ----------------------------------------------------------------------
@pytest.fixture
def hmac_key(client: TestClient) -> dict[str, Any]:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    return create_key(client, user, scopes=["trade", "read"])


def _signed(client: TestClient, clock: FrozenClock, key: dict[str, Any], body: bytes, **kw: Any):  # type: ignore[no-untyped-def]
    return bot(client, clock, key, secret=key["secret"]).signed_headers(
        "POST", BASE + "/test/orders", body, {"Content-Type": "application/json", **kw}
    )


def test_a_replayed_nonce_is_refused(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    body = b'{"qty":"1"}'
    headers = _signed(client, clock, hmac_key, body)
    assert client.post("/test/orders", content=body, headers=headers).status_code == 200
    replay = client.post("/test/orders", content=body, headers=headers)
    assert replay.status_code == 401
    assert problem(replay) == "signature-replayed"
    assert replay.headers["www-authenticate"].startswith("Signature")


def test_stale_and_future_created_are_refused(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    body = b'{"qty":"1"}'
    stale = _signed(client, clock, hmac_key, body)
    clock.advance(31)
    response = client.post("/test/orders", content=body, headers=stale)
    assert (response.status_code, problem(response)) == (401, "signature-stale")
    early = _signed(client, clock, hmac_key, body)
    clock.advance(-10)
    response = client.post("/test/orders", content=body, headers=early)
    assert (response.status_code, problem(response)) == (401, "signature-future")


def test_an_altered_body_with_the_old_digest_is_refused(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    headers = _signed(client, clock, hmac_key, b'{"qty":"1"}')
    response = client.post("/test/orders", content=b'{"qty":"1000"}', headers=headers)
    assert (response.status_code, problem(response)) == (401, "content-digest-mismatch")
    # Recomputing the digest does not help: the signature covers it.
    from rampart.client.signing import content_digest

    headers = _signed(client, clock, hmac_key, b'{"qty":"1"}')
    headers["Content-Digest"] = content_digest(b'{"qty":"1000"}')
    response = client.post("/test/orders", content=b'{"qty":"1000"}', headers=headers)
    assert (response.status_code, problem(response)) == (401, "signature-mismatch")


def test_a_body_must_be_covered_and_params_are_required(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    body = b'{"qty":"1"}'
    headers = library_headers(
        "POST",
        BASE + "/test/orders",
        b"",
        key_id=hmac_key["key_id"],
        key=hmac_key["secret"].encode(),
        algorithm=algorithms.HMAC_SHA256,
        created=clock.now(),
    )
    response = client.post("/test/orders", content=body, headers=headers)
    assert (response.status_code, problem(response)) == (401, "signature-components-missing")
    headers = _signed(client, clock, hmac_key, body)
    headers["Signature-Input"] = headers["Signature-Input"].replace(";nonce=", ";x-nonce=")
    response = client.post("/test/orders", content=body, headers=headers)
    assert response.status_code == 401
    assert problem(response) in ("signature-params-missing", "signature-malformed")


def test_a_forged_signature_and_an_unknown_key_are_refused(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    body = b'{"qty":"1"}'
    headers = _signed(client, clock, hmac_key, body)
    headers["Signature"] = "sig1=:" + base64.b64encode(b"\0" * 32).decode() + ":"
    response = client.post("/test/orders", content=body, headers=headers)
    assert (response.status_code, problem(response)) == (401, "signature-mismatch")
    stranger = dict(hmac_key, key_id="01900000-0000-7000-8000-000000000000")
    headers = _signed(client, clock, stranger, body)
    response = client.post("/test/orders", content=body, headers=headers)
    assert (response.status_code, problem(response)) == (401, "apikey-unknown")


def test_a_revoked_key_stops_at_once(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    signer = bot(client, clock, hmac_key, secret=hmac_key["secret"])
    assert signer.get(WHOAMI).status_code == 200
    owner = hmac_key["key"]
    user = signer.get(WHOAMI).json()["user_id"]
    revoked = client.delete(f"/api/v1/apikeys/{owner['id']}", headers=as_user(user))
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    response = signer.get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-revoked")


def test_a_rotated_key_works_through_its_grace_period_only(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    old = bot(client, clock, hmac_key, secret=hmac_key["secret"])
    user = old.get(WHOAMI).json()["user_id"]
    rotated = client.post(f"/api/v1/apikeys/{hmac_key['key_id']}/rotate", headers=as_user(user))
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()
    assert new_key["secret"] != hmac_key["secret"]
    new = bot(client, clock, new_key, secret=new_key["secret"])
    assert old.get(WHOAMI).status_code == 200
    assert new.get(WHOAMI).status_code == 200
    clock.advance(timedelta(hours=24, seconds=1))
    response = old.get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-rotated")
    assert new.get(WHOAMI).status_code == 200


def test_a_key_is_refused_outside_its_allow_list(
    app: Any, clock: FrozenClock, container: Container
) -> None:
    user = new_account(container)
    with TestClient(app, base_url=BASE, client=("10.1.2.3", 5000)) as inside:
        key = create_key(inside, user, allowed_cidrs=["10.1.0.0/16"])
        assert bot(inside, clock, key, secret=key["secret"]).get(WHOAMI).status_code == 200
    with TestClient(app, base_url=BASE, client=("192.0.2.7", 5000)) as outside:
        response = bot(outside, clock, key, secret=key["secret"]).get(WHOAMI)
        assert (response.status_code, problem(response)) == (401, "apikey-ip-not-allowed")


def test_a_data_key_cannot_place_an_order(client: TestClient, clock: FrozenClock) -> None:
    user = new_account(client.app.state.container)  # type: ignore[attr-defined]
    key = create_key(client, user, scopes=["data"])
    response = bot(client, clock, key, secret=key["secret"]).post("/test/orders", json={"q": 1})
    assert (response.status_code, problem(response)) == (403, "permission-denied")


def test_a_key_cannot_manage_keys(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    response = bot(client, clock, hmac_key, secret=hmac_key["secret"]).post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}
    )
    assert response.status_code == 403


def test_another_users_key_is_not_found(client: TestClient, hmac_key: dict[str, Any]) -> None:
    other = new_account(client.app.state.container)  # type: ignore[attr-defined]
    key_id = hmac_key["key_id"]
    for method, path in [
        ("GET", f"/api/v1/apikeys/{key_id}"),
        ("DELETE", f"/api/v1/apikeys/{key_id}"),
        ("POST", f"/api/v1/apikeys/{key_id}/rotate"),
    ]:
        response = client.request(method, path, headers=as_user(other))
        assert (response.status_code, problem(response)) == (404, "not-found"), path
    assert client.get("/api/v1/apikeys", headers=as_user(other)).json()["items"] == []


def test_last_use_is_recorded(
    client: TestClient, clock: FrozenClock, hmac_key: dict[str, Any]
) -> None:
    signer = bot(client, clock, hmac_key, secret=hmac_key["secret"])
    user = signer.get(WHOAMI).json()["user_id"]
    shown = client.get(f"/api/v1/apikeys/{hmac_key['key_id']}", headers=as_user(user)).json()
    assert shown["last_used_at"] is not None
    assert shown["last_used_ip"] == "testclient"[:45]


def test_old_keys_are_flagged_and_owners_told_once(
    client: TestClient, clock: FrozenClock, container: Container, hmac_key: dict[str, Any]
) -> None:
    from rampart.notifications.mailbox import Mailbox

    user = bot(client, clock, hmac_key, secret=hmac_key["secret"]).get(WHOAMI).json()["user_id"]
    clock.advance(timedelta(days=89))
    with container.uow() as uow:
        assert container.apikeys.flag_old_keys(uow) == 0
        uow.commit()
    clock.advance(timedelta(days=1))
    for expected in (1, 0):
        with container.uow() as uow:
            assert container.apikeys.flag_old_keys(uow) == expected
            uow.commit()
    container.outbox_worker.drain()
    notices = [
        m
        for m in Mailbox(container.settings.data_dir / "outbox").messages(
            to=email_of(container, user)
        )
        if m.kind == "apikey-old"
    ]
    assert len(notices) == 1
    assert hmac_key["key_id"] in notices[0].text
    assert hmac_key["secret"] not in notices[0].text
    shown = client.get(f"/api/v1/apikeys/{hmac_key['key_id']}", headers=as_user(user)).json()
    assert shown["old"] is True
    # Flagged, not stopped: the owner is asked to rotate, the bot keeps running meanwhile.
    assert bot(client, clock, hmac_key, secret=hmac_key["secret"]).get(WHOAMI).status_code == 200


def test_a_leaked_secret_is_revoked_by_its_hash(
    client: TestClient, clock: FrozenClock, container: Container, hmac_key: dict[str, Any]
) -> None:
    with container.uow() as uow:
        assert container.apikeys.revoke_leaked(uow, hmac_key["secret"]) == hmac_key["key_id"]
        uow.commit()
    response = bot(client, clock, hmac_key, secret=hmac_key["secret"]).get(WHOAMI)
    assert problem(response) == "apikey-revoked"


def test_created_time_uses_the_clock_not_the_wall(clock: FrozenClock) -> None:
    # Guard for the tests above: they sign with the frozen clock, which is not the wall clock.
    assert clock.now() != datetime.now(UTC).replace(microsecond=0)


@pytest.mark.redis
def test_redis_nonce_store_accepts_each_nonce_once(redis_url: str) -> None:
    import redis

    from rampart.apikeys.nonces import RedisNonceStore

    client = redis.Redis.from_url(redis_url)
    try:
        store = RedisNonceStore(client, prefix=f"test:{uuid.uuid4().hex}:")
        assert store.first_use("key-1", "nonce-aaaaaaaaaaaaaaaa", 30)
        assert not store.first_use("key-1", "nonce-aaaaaaaaaaaaaaaa", 30)
        assert store.first_use("key-2", "nonce-aaaaaaaaaaaaaaaa", 30)
    finally:
        client.close()


# --- the canonical-form parser agrees with the general Structured Fields parser ---------------
_sf_strings = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=12
)
_sf_keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,8}", fullmatch=True)
_sf_values = st.one_of(_sf_strings, st.integers(-(10**15) + 1, 10**15 - 1))


@given(
    label=_sf_keys,
    components=st.lists(_sf_strings, max_size=5),
    params=st.dictionaries(_sf_keys, _sf_values, max_size=6),
    signature=st.binary(max_size=70),
    spacing=st.sampled_from(["", " "]),
)
@settings(max_examples=400, deadline=None)
def test_canonical_signature_headers_parse_like_structured_fields(
    label: str, components: list[str], params: dict[str, Any], signature: bytes, spacing: str
) -> None:
    import http_sf

    from rampart.apikeys.signatures import _parse_canonical

    sig_input = spacing + http_sf.ser({label: ([(c, {}) for c in components], params)})
    sig = http_sf.ser({label: (signature, {})})
    fast = _parse_canonical(sig_input, sig)
    expected_inputs = http_sf.parse(sig_input.encode(), tltype="dictionary")
    expected_values = http_sf.parse(sig.encode(), tltype="dictionary")
    if fast is None:  # not canonical (spacing, escapes): the general parser is used
        return
    inputs, values, params_line = fast
    assert inputs == {k: (list(m), dict(p)) for k, (m, p) in expected_inputs.items()}
    assert values == {k: (v, dict(p)) for k, (v, p) in expected_values.items()}
    members, parsed_params = expected_inputs[label]
    assert params_line == http_sf.ser({"x": (members, parsed_params)})[2:]


@given(algorithm=_sf_keys, digest=st.binary(max_size=70), spacing=st.sampled_from(["", " "]))
@settings(max_examples=200, deadline=None)
def test_canonical_content_digests_parse_like_structured_fields(
    algorithm: str, digest: bytes, spacing: str
) -> None:
    import http_sf

    from rampart.apikeys.signatures import _parse_canonical_digest

    field = spacing + http_sf.ser({algorithm: (digest, {})})
    fast = _parse_canonical_digest(field)
    if fast is not None:
        expected = http_sf.parse(field.encode(), tltype="dictionary")
        assert fast == {k: (v, dict(p)) for k, (v, p) in expected.items()}
