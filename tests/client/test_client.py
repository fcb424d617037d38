"""`rampart.client` signs what the server verifies, checked by an independent RFC 9421
implementation (http-message-signatures), without a server: a mock transport captures requests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
from http_message_signatures.exceptions import InvalidSignature

from rampart.client import RampartClient
from rampart.client.client import RampartError
from rampart.client.signing import HmacSigner

SECRET = "rmp_test_" + "A" * 40 + "ABCDEF"
KEY_ID = "01900000-0000-7000-8000-00000000abcd"
BASE = "https://api.example.com"


class Capture:
    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer or httpx.Response(200, json={"ok": True})


def _client(capture: Capture, **key: Any) -> RampartClient:
    return RampartClient(
        BASE, key_id=KEY_ID, http_client=httpx.Client(transport=httpx.MockTransport(capture)), **key
    )


def _as_requests(request: httpx.Request) -> requests.PreparedRequest:
    return requests.Request(
        request.method, str(request.url), headers=dict(request.headers), data=request.content
    ).prepare()


def _verify(request: httpx.Request, algorithm: Any, key: Any) -> None:
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithm,
        key_resolver=MappingKeyResolver(private_keys={}, public_keys={KEY_ID: key}),
    )
    components = ["@method", "@target-uri"] + (["content-digest"] if request.content else [])
    results = verifier.verify(
        _as_requests(request),
        require_components=components,
        body=request.content or None,
        max_age=None,
    )
    assert len(results) == 1
    assert results[0].parameters["keyid"] == KEY_ID
    assert results[0].parameters["nonce"]


def test_hmac_requests_verify_independently() -> None:
    capture = Capture()
    with _client(capture, secret=SECRET) as bot:
        bot.get("/v1/me", params={"page": 2})
        bot.post("/v1/orders", json={"symbol": "ACME", "quantity": "1"})
    get, post = capture.requests
    _verify(get, algorithms.HMAC_SHA256, SECRET.encode())
    _verify(post, algorithms.HMAC_SHA256, SECRET.encode())
    assert post.headers["content-digest"].startswith("sha-256=:")
    # Every request carries its own nonce: a replay of one is not another.
    assert get.headers["signature-input"] != post.headers["signature-input"]


def test_ed25519_requests_verify_independently() -> None:
    private = Ed25519PrivateKey.generate()
    capture = Capture()
    with _client(capture, private_key=private) as bot:
        bot.post("/v1/orders", json={"symbol": "ACME", "quantity": "1"})
    (post,) = capture.requests
    _verify(post, algorithms.ED25519, private.public_key())


def test_an_altered_body_no_longer_verifies() -> None:
    capture = Capture()
    with _client(capture, secret=SECRET) as bot:
        bot.post("/v1/orders", json={"symbol": "ACME", "quantity": "1"})
    (post,) = capture.requests
    tampered = httpx.Request(
        post.method,
        post.url,
        headers=post.headers,
        content=json.dumps({"symbol": "ACME", "quantity": "1000"}).encode(),
    )
    with pytest.raises(InvalidSignature):
        _verify(tampered, algorithms.HMAC_SHA256, SECRET.encode())


def test_problems_become_errors_naming_the_reason() -> None:
    answer = httpx.Response(
        401,
        json={"type": "urn:rampart:problem:apikey-revoked", "title": "Revoked", "detail": "gone"},
        headers={"Content-Type": "application/problem+json"},
    )
    with _client(Capture(answer), secret=SECRET) as bot:
        assert bot.get("/v1/me").status_code == 401
        with pytest.raises(RampartError) as refused:
            bot.get("/v1/me", raise_for_problem=True)
    assert (refused.value.status, refused.value.code) == (401, "apikey-revoked")


def test_the_secret_stays_out_of_reprs_and_bad_secrets_are_refused() -> None:
    assert SECRET not in repr(HmacSigner(SECRET))
    with pytest.raises(ValueError):
        HmacSigner("not-a-rampart-secret")
    with pytest.raises(ValueError):
        RampartClient(BASE, key_id=KEY_ID)
