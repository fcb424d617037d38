"""Accounts end to end through HTTP: sign-up, email links from the dev mailbox, sign-in, tokens,
sessions, devices, password reset and change, email change and closing."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from tests.identity.support import (
    PASSWORD,
    audit_entries,
    bearer,
    inbox,
    latest,
    link_token,
    login,
    register,
    verified_user,
)


def test_sign_up_verify_and_sign_in(client: TestClient, container: Container) -> None:
    register(client, "alice@example.com")
    # Before the address is confirmed the account can look but not trade.
    tokens = login(client, "alice@example.com")
    me = client.get("/v1/me", headers=bearer(tokens["access_token"])).json()
    assert me["email_verified"] is False
    assert "order:place" not in me["permissions"]
    assert "account:view" in me["permissions"]

    token = link_token(container, "alice@example.com", "verify-email")
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    me = client.get("/v1/me", headers=bearer(tokens["access_token"])).json()
    assert me["email_verified"] is True
    assert me["roles"] == ["TRADER"]
    assert "order:place" in me["permissions"]
    # The link works once.
    again = client.post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 422
    assert again.json()["type"] == "urn:rampart:problem:invalid-link"
    assert audit_entries(container, "identity.user.registered")
    assert audit_entries(container, "identity.email.verified")


def test_verification_link_expires_after_24_hours(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    register(client, "late@example.com")
    token = link_token(container, "late@example.com", "verify-email")
    clock.advance(timedelta(hours=24, seconds=1))
    response = client.post("/v1/auth/verify-email", json={"token": token})
    assert response.status_code == 422


def test_sign_up_with_a_taken_address_answers_the_same_and_tells_the_owner(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "owner@example.com")
    first = client.post(
        "/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    taken = client.post(
        "/v1/auth/register", json={"email": "Owner@Example.com", "password": PASSWORD}
    )
    assert first.status_code == taken.status_code == 202
    assert first.json() == taken.json()
    assert latest(container, "owner@example.com", "already-registered")


def test_weak_passwords_are_refused_with_every_reason(client: TestClient) -> None:
    for password, reason in [
        ("short", "at least 8"),
        ("password123", "most common"),
        ("alice.smith-was-here-2024", "email address"),
    ]:
        response = client.post(
            "/v1/auth/register", json={"email": "alice.smith@example.com", "password": password}
        )
        assert response.status_code == 422
        body = response.json()
        assert body["type"] == "urn:rampart:problem:weak-password"
        assert reason in body["detail"]
        assert password not in response.text


def test_refresh_rotates_and_reuse_revokes_the_family(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "bob@example.com")
    first = login(client, "bob@example.com")
    second = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["session_id"] == first["session_id"]
    assert client.get("/v1/me", headers=bearer(rotated["access_token"])).status_code == 200

    # The thief replays the old refresh token: the whole family dies, the owner's tokens too.
    replay = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["type"] == "urn:rampart:problem:refresh-token-reused"
    assert client.get("/v1/me", headers=bearer(rotated["access_token"])).status_code == 401
    dead = client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert dead.status_code == 401
    assert audit_entries(container, "auth.refresh.reused")


def test_refresh_token_expires_after_24_hours(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, "exp@example.com")
    tokens = login(client, "exp@example.com")
    clock.advance(timedelta(hours=24, seconds=1))
    response = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401


def test_logout_kills_the_access_token_at_once(client: TestClient, container: Container) -> None:
    verified_user(client, container, "carol@example.com")
    tokens = login(client, "carol@example.com")
    headers = bearer(tokens["access_token"])
    assert client.get("/v1/me", headers=headers).status_code == 200  # now cached as verified
    assert client.post("/v1/auth/logout", headers=headers).status_code == 204
    after = client.get("/v1/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["type"] == "urn:rampart:problem:token-revoked"
    refresh = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


def test_logout_everywhere(client: TestClient, container: Container) -> None:
    verified_user(client, container, "dave@example.com")
    one, two = login(client, "dave@example.com"), login(client, "dave@example.com")
    response = client.post(
        "/v1/auth/logout", json={"everywhere": True}, headers=bearer(one["access_token"])
    )
    assert response.status_code == 204
    for tokens in (one, two):
        assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_sessions_are_listed_and_revoked_and_others_are_404(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "erin@example.com")
    verified_user(client, container, "frank@example.com")
    mine, other = login(client, "erin@example.com"), login(client, "erin@example.com")
    franks = login(client, "frank@example.com")
    listed = client.get("/v1/me/sessions", headers=bearer(mine["access_token"])).json()
    assert {s["id"] for s in listed} == {mine["session_id"], other["session_id"]}
    assert [s["current"] for s in listed if s["id"] == mine["session_id"]] == [True]

    # Frank's session is not Erin's to end, and she cannot even learn that it exists.
    response = client.delete(
        f"/v1/me/sessions/{franks['session_id']}", headers=bearer(mine["access_token"])
    )
    assert response.status_code == 404
    assert client.get("/v1/me", headers=bearer(franks["access_token"])).status_code == 200

    response = client.delete(
        f"/v1/me/sessions/{other['session_id']}", headers=bearer(mine["access_token"])
    )
    assert response.status_code == 204
    assert client.get("/v1/me", headers=bearer(other["access_token"])).status_code == 401
    assert client.get("/v1/me", headers=bearer(mine["access_token"])).status_code == 200


def test_new_device_is_announced_by_email_and_can_be_revoked(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "gina@example.com")
    first = login(client, "gina@example.com", device_id="phone-0001")
    assert not [m for m in inbox(container, "gina@example.com") if m.kind == "new-device"]
    login(client, "gina@example.com", device_id="phone-0001")
    assert not [m for m in inbox(container, "gina@example.com") if m.kind == "new-device"]
    laptop = login(client, "gina@example.com", device_id="laptop-0002")
    notice = latest(container, "gina@example.com", "new-device")
    assert "testclient" in notice.text

    devices = client.get("/v1/me/devices", headers=bearer(first["access_token"])).json()
    assert len(devices) == 2
    laptop_device = next(
        s["device_id"]
        for s in client.get("/v1/me/sessions", headers=bearer(first["access_token"])).json()
        if s["id"] == laptop["session_id"]
    )
    response = client.delete(
        f"/v1/me/devices/{laptop_device}", headers=bearer(first["access_token"])
    )
    assert response.status_code == 204
    assert client.get("/v1/me", headers=bearer(laptop["access_token"])).status_code == 401
    assert client.get("/v1/me", headers=bearer(first["access_token"])).status_code == 200


def test_password_reset_link_is_single_use_and_ends_every_session(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "hank@example.com")
    tokens = login(client, "hank@example.com")
    assert (
        client.post("/v1/auth/password/forgot", json={"email": "hank@example.com"}).status_code
        == 202
    )
    token = link_token(container, "hank@example.com", "password-reset")
    new_password = "a brand new passphrase 77"
    response = client.post(
        "/v1/auth/password/reset", json={"token": token, "password": new_password}
    )
    assert response.status_code == 200
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert (
        client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )
    assert latest(container, "hank@example.com", "password-changed")
    login(client, "hank@example.com", new_password)
    # Replaying the link does nothing.
    replay = client.post(
        "/v1/auth/password/reset", json={"token": token, "password": "yet another passphrase 9"}
    )
    assert replay.status_code == 422
    assert replay.json()["type"] == "urn:rampart:problem:invalid-link"
    login(client, "hank@example.com", new_password)


def test_password_reset_link_expires_after_an_hour(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, "ivy@example.com")
    client.post("/v1/auth/password/forgot", json={"email": "ivy@example.com"})
    token = link_token(container, "ivy@example.com", "password-reset")
    clock.advance(timedelta(minutes=61))
    response = client.post(
        "/v1/auth/password/reset", json={"token": token, "password": "fresh passphrase 12345"}
    )
    assert response.status_code == 422


def test_forgot_password_answers_the_same_for_unknown_addresses(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "jack@example.com")
    known = client.post("/v1/auth/password/forgot", json={"email": "jack@example.com"})
    unknown = client.post("/v1/auth/password/forgot", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert inbox(container, "nobody@example.com") == []


def test_change_password_keeps_this_session_and_ends_the_others(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "kate@example.com")
    here, there = login(client, "kate@example.com"), login(client, "kate@example.com")
    wrong = client.post(
        "/v1/me/password",
        json={"current_password": "not it at all", "new_password": "another passphrase 31"},
        headers=bearer(here["access_token"]),
    )
    assert wrong.status_code == 401
    response = client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "another passphrase 31"},
        headers=bearer(here["access_token"]),
    )
    assert response.status_code == 204
    assert client.get("/v1/me", headers=bearer(here["access_token"])).status_code == 200
    assert client.get("/v1/me", headers=bearer(there["access_token"])).status_code == 401
    login(client, "kate@example.com", "another passphrase 31")


def test_change_email_needs_the_new_address_confirmed(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "leo@example.com")
    tokens = login(client, "leo@example.com")
    response = client.post(
        "/v1/me/email",
        json={"password": PASSWORD, "new_email": "leo@new.example.com"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 202
    assert latest(container, "leo@example.com", "email-change-requested")
    token = link_token(container, "leo@new.example.com", "verify-email")
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    me = client.get("/v1/me", headers=bearer(tokens["access_token"])).json()
    assert me["email"] == "leo@new.example.com"
    assert latest(container, "leo@example.com", "email-changed")
    login(client, "leo@new.example.com")


def test_close_account(client: TestClient, container: Container) -> None:
    verified_user(client, container, "mia@example.com")
    tokens = login(client, "mia@example.com")
    response = client.post(
        "/v1/me/close", json={"password": PASSWORD}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 204
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401
    failed = client.post("/v1/auth/login", json={"email": "mia@example.com", "password": PASSWORD})
    assert failed.status_code == 401
    # The address is free again.
    register(client, "mia@example.com")
    assert latest(container, "mia@example.com", "verify-email")


def test_two_racing_refreshes_never_both_succeed(client: TestClient, container: Container) -> None:
    import threading

    from rampart.identity.domain import InvalidRefreshTokenError

    verified_user(client, container, "race@example.com")
    tokens = login(client, "race@example.com")
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def attempt() -> None:
        barrier.wait()
        try:
            with container.uow() as uow:
                outcome = container.identity.login.refresh(uow, tokens["refresh_token"])
                uow.commit()
            outcomes.append(outcome)
        except InvalidRefreshTokenError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    issued = [o for o in outcomes if getattr(o, "issued", None) is not None]
    assert len(issued) <= 1
    assert len(outcomes) == 2


def test_successful_sign_in_is_audited_by_pseudonymous_id(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "audited@example.com")
    tokens = login(client, "audited@example.com")
    user_id = client.get("/v1/me", headers=bearer(tokens["access_token"])).json()["id"]
    (entry,) = audit_entries(container, "auth.login.succeeded")
    assert entry["subject"] == f"user:{user_id}"
    assert "audited@example.com" not in str(entry)
