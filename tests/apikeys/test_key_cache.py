"""The verified-key cache: a signed request needs no key read, yet a revocation made by another
process (another container on the same database) is seen at once through the shared change
marker, and within `apikeys.auth_cache_seconds` without one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from rampart.apikeys.changes import FileKeyChanges, RedisKeyChanges
from rampart.apikeys.db import TABLE
from rampart.bootstrap import Container, bootstrap
from rampart.client.signing import HmacSigner, sign_request
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from tests.access.support import install, new_account
from tests.apikeys.test_signed_requests import BASE, WHOAMI, bot, create_key, problem


def _other_process(settings: Settings, clock: FrozenClock, data_dir: Path) -> Iterator[Container]:
    other = bootstrap(settings.model_copy(update={"data_dir": data_dir}), clock=clock)
    try:
        yield other
    finally:
        other.close()


@pytest.fixture
def same_host(settings: Settings, clock: FrozenClock) -> Iterator[Container]:
    """A second container on the same database and data directory (the CLI, a second worker)."""
    yield from _other_process(settings, clock, settings.data_dir)


@pytest.fixture
def other_host(settings: Settings, clock: FrozenClock, tmp_path: Path) -> Iterator[Container]:
    """A second container sharing only the database: no change marker in common."""
    yield from _other_process(settings, clock, tmp_path / "elsewhere")


def _key_reads(container: Container) -> list[str]:
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if f"FROM {TABLE}" in statement:
            reads.append(statement)

    # Both engines: on SQLite, reads go through a second one.
    for engine in {container.db.engine, container.db.read_engine}:
        event.listen(engine, "before_cursor_execute", seen)
    return reads


def test_a_cached_key_is_not_read_again_but_its_nonce_is_checked(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200
    reads = _key_reads(container)
    for _ in range(3):
        assert signer.get(WHOAMI).status_code == 200
    assert reads == []
    # Replay protection does not come from the key cache: a replay on the cached path fails.
    headers = sign_request(
        "GET",
        f"{BASE}{WHOAMI}",
        {},
        b"",
        key_id=key["key_id"],
        signer=HmacSigner(key["secret"]),
        now=lambda: clock.time_ns() / 1e9,
    )
    assert client.get(WHOAMI, headers=headers).status_code == 200
    again = client.get(WHOAMI, headers=headers)
    assert (again.status_code, problem(again)) == (401, "signature-replayed")
    assert reads == []


def _burst(
    client: TestClient, clock: FrozenClock, key_id: str, secret: str, n: int
) -> list[tuple[int, str | None]]:
    """`n` signed requests at once (one event loop, as the server sees a busy bot): each one's
    status and problem type."""

    async def burst() -> list[tuple[int, str | None]]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:

            async def one() -> tuple[int, str | None]:
                headers = sign_request(
                    "GET",
                    f"{BASE}{WHOAMI}",
                    {},
                    b"",
                    key_id=key_id,
                    signer=HmacSigner(secret),
                    now=lambda: clock.time_ns() / 1e9,
                )
                response = await http.get(WHOAMI, headers=headers)
                ok = response.status_code == 200
                return response.status_code, None if ok else problem(response)

            return await asyncio.gather(*(one() for _ in range(n)))

    return asyncio.run(burst())


def test_requests_that_miss_the_cache_together_read_the_key_once(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    # One request first, so that the key's last use is recorded (a read of its own) already.
    assert bot(client, clock, key, secret=key["secret"]).get(WHOAMI).status_code == 200
    container.apikeys.keys_changed()  # nothing cached: every request of the burst misses
    reads = _key_reads(container)
    assert _burst(client, clock, key["key_id"], key["secret"], 16) == [(200, None)] * 16
    assert len(reads) == 1
    assert _burst(client, clock, key["key_id"], key["secret"], 4) == [(200, None)] * 4
    assert len(reads) == 1  # cached by the burst's one read


def test_a_burst_with_an_unknown_key_reads_it_once(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    secret = create_key(client, user, scopes=["read"])["secret"]  # well formed, another key's
    reads = _key_reads(container)
    refused = _burst(client, clock, str(uuid.uuid4()), secret, 8)
    assert refused == [(401, "apikey-unknown")] * 8
    assert len(reads) == 1


def test_without_a_key_cache_each_request_reads_its_key_once(
    settings: Settings, clock: FrozenClock
) -> None:
    from rampart.web.app import create_app

    uncached = settings.model_copy(
        update={"apikeys": settings.apikeys.model_copy(update={"auth_cache_seconds": 0})}
    )
    container = bootstrap(uncached, clock=clock)
    install(container)  # the owner's stand-in sign-in, to create the key
    try:
        with TestClient(create_app(container), base_url=BASE) as client:
            user = new_account(container)
            key = create_key(client, user, scopes=["read"])
            assert bot(client, clock, key, secret=key["secret"]).get(WHOAMI).status_code == 200
            reads = _key_reads(container)
            for expected in (1, 2, 3):
                assert _burst(client, clock, key["key_id"], key["secret"], 1) == [(200, None)]
                assert len(reads) == expected
    finally:
        container.close()


def test_a_revocation_by_another_process_on_this_host_holds_at_once(
    client: TestClient, container: Container, clock: FrozenClock, same_host: Container
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200  # cached now
    with same_host.uow() as uow:
        same_host.apikeys.revoke_by_operator(uow, key["key_id"], reason="incident")
        uow.commit()
    response = signer.get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-revoked")


def test_a_lock_by_another_process_on_this_host_holds_at_once(
    client: TestClient, container: Container, clock: FrozenClock, same_host: Container
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200
    with same_host.uow() as uow:
        same_host.identity.accounts.set_locked(uow, user, True, reason="fraud review")
        uow.commit()
    response = signer.get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-owner-inactive")


def test_without_a_shared_marker_a_revocation_holds_within_the_cache_lifetime(
    client: TestClient,
    container: Container,
    clock: FrozenClock,
    settings: Settings,
    other_host: Container,
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200
    with other_host.uow() as uow:
        other_host.apikeys.revoke_by_operator(uow, key["key_id"], reason="incident")
        uow.commit()
    clock.advance(settings.apikeys.auth_cache_seconds)
    response = signer.get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-revoked")


def test_a_change_committed_while_a_key_was_being_read_is_not_trusted(
    client: TestClient, container: Container, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change token is taken before the reads: a revocation landing mid-read voids the entry."""
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    service = container.apikeys
    roles_of = container.access.roles_of

    def revoked_meanwhile(*args: Any, **kwargs: Any) -> Any:
        service.keys_changed()
        return roles_of(*args, **kwargs)

    monkeypatch.setattr(container.access, "roles_of", revoked_meanwhile)
    with container.db.read() as session:
        service.load_key(session, key["key_id"])
    assert service.cached_key(key["key_id"]) is None


def test_change_markers_move_on_every_bump(tmp_path: Path) -> None:
    marker = FileKeyChanges(tmp_path / "var" / "apikeys.changed")
    seen = {repr(marker.current())}
    for _ in range(5):
        marker.bump()
        token = repr(marker.current())
        assert token not in seen
        seen.add(token)


def test_redis_change_counter_moves_on_every_bump(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        changes = RedisKeyChanges(client, key=f"test:{uuid.uuid4().hex}")
        before = changes.current()
        changes.bump()
        assert changes.current() != before
    finally:
        client.close()


@pytest.mark.slow
def test_an_unreachable_redis_trusts_no_cached_key() -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    changes = RedisKeyChanges(client)
    assert changes.current() != changes.current()


def test_last_use_is_a_sample_not_a_write_per_request(
    container: Container, clock: FrozenClock
) -> None:
    keys = container.apikeys
    assert keys.needs_use_recorded("k1", "192.0.2.1")
    assert not keys.needs_use_recorded("k1", "192.0.2.1")
    # A bot hopping between addresses is written at most once a second.
    assert not keys.needs_use_recorded("k1", "192.0.2.2")
    clock.advance(1.0)
    assert keys.needs_use_recorded("k1", "192.0.2.2")
    assert not keys.needs_use_recorded("k1", "192.0.2.3")
    clock.advance(container.settings.apikeys.last_use_write_seconds)
    assert keys.needs_use_recorded("k1", "192.0.2.3")


def test_with_redis_a_revocation_by_another_host_holds_at_once(
    settings: Settings, clock: FrozenClock, tmp_path: Path, redis_url: str
) -> None:
    """Two hosts (no data directory in common) on one database and one Redis."""
    from rampart.web.app import create_app
    from tests.access.support import install

    here = settings.model_copy(update={"redis_url": redis_url})
    elsewhere = here.model_copy(update={"data_dir": tmp_path / "elsewhere"})
    container = bootstrap(here, clock=clock)
    try:
        install(container)
        with TestClient(create_app(container), base_url=BASE) as client:
            user = new_account(container)
            key = create_key(client, user, scopes=["read"])
            signer = bot(client, clock, key, secret=key["secret"])
            assert signer.get(WHOAMI).status_code == 200
            assert container.apikeys.cached_key(key["key_id"]) is not None
            for other in _other_process(elsewhere, clock, elsewhere.data_dir):
                with other.uow() as uow:
                    other.apikeys.revoke_by_operator(uow, key["key_id"], reason="incident")
                    uow.commit()
            response = signer.get(WHOAMI)
            assert (response.status_code, problem(response)) == (401, "apikey-revoked")
    finally:
        container.close()
