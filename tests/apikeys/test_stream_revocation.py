"""A bot's stream, opened with a signed handshake, closes once its key is revoked."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.client.signing import HmacSigner, sign_request
from rampart.kernel.clock import FrozenClock
from tests.access.support import new_account
from tests.apikeys.test_signed_requests import create_key
from tests.identity.test_session_control import close_code


def test_a_stream_closes_when_its_api_key_is_revoked(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["data"])
    url = "ws://testserver/v1/stream"
    headers = sign_request(
        "GET",
        url,
        {},
        b"",
        key_id=key["key_id"],
        signer=HmacSigner(key["secret"]),
        now=lambda: clock.time_ns() / 1e9,
    )
    with client.websocket_connect(url, headers=headers) as ws:
        assert ws.receive_json()["type"] == "welcome"
        with container.uow() as uow:
            container.apikeys.revoke_by_operator(uow, key["key_id"], reason="leaked")
            uow.commit()
        assert close_code(ws) == 1008
