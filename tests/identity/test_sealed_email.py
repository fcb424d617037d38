"""Email addresses are personal data: sealed at rest, found by blind index, one account each, and
a forgotten-password request costs the same whether or not the address has an account."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from rampart.bootstrap import Container
from rampart.identity.db import EmailTokenRow, UserRow
from rampart.identity.password_changes import TOPIC_PASSWORD_RESET
from rampart.kernel.ids import new_id
from rampart.platform.base import Base
from rampart.platform.outbox import OutboxRow
from tests.identity.support import PASSWORD, bearer, inbox, login, verified_user


def raw_database_text(container: Container) -> str:
    """Every stored byte, read around the ORM: the SQLite files, or each PostgreSQL row's text."""
    if container.db.is_postgres:
        parts = []
        with container.db.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                rows = conn.execute(text(f'SELECT t::text FROM "{table.name}" t'))
                parts.extend(str(row[0]) for row in rows)
        return "\n".join(parts)
    path = Path(container.settings.effective_database_url.removeprefix("sqlite:///"))
    blobs = [
        p.read_bytes()
        for p in path.parent.iterdir()
        if p.name == path.name or p.name.startswith(path.name + "-")
    ]
    return b"".join(blobs).decode("latin-1")


def test_no_address_is_stored_in_clear(client: TestClient, container: Container) -> None:
    verified_user(client, container, "ann.secret@example.com")
    tokens = login(client, "ann.secret@example.com")
    # A pending change of address keeps the new one too (in its link), and the outbox holds
    # messages to both addresses until they are delivered.
    container.outbox_worker.stop()
    changed = client.post(
        "/v1/me/email",
        headers=bearer(tokens["access_token"]),
        json={"password": PASSWORD, "new_email": "ann.new.secret@example.com"},
    )
    assert changed.status_code in (202, 204), changed.text
    with container.db.read() as session:
        assert session.scalar(select(func.count()).select_from(EmailTokenRow)) >= 2
        assert session.scalar(select(func.count()).select_from(OutboxRow)) >= 1
    stored = raw_database_text(container)
    assert "ann.secret@example.com" not in stored
    assert "ann.new.secret@example.com" not in stored
    assert "secret@example" not in stored
    # ...and yet the account is found, and shown its own address.
    me = client.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert me.json()["email"] == "ann.secret@example.com"


def test_one_account_per_address_is_kept_by_the_blind_index(container: Container) -> None:
    accounts = container.identity.accounts
    now = container.clock.now()

    def add(email: str) -> None:
        with container.uow() as uow:
            row = UserRow(id=new_id(), status="active", created_at=now, updated_at=now)
            accounts.set_email(uow.session, row, email)
            uow.session.add(row)
            uow.commit()

    add("bob@example.com")
    with pytest.raises(IntegrityError):
        add("bob@example.com")
    with container.db.read() as session:
        found = accounts.by_email(session, "bob@example.com")
        assert found is not None
        assert accounts.email_of(session, found) == "bob@example.com"
        assert accounts.by_email(session, "bobby@example.com") is None


def test_sign_in_finds_the_account_by_any_spelling_of_its_address(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "carol@example.com")
    assert login(client, "  Carol@EXAMPLE.com ")["access_token"]


@contextmanager
def statements(container: Container) -> Iterator[list[str]]:
    """The SQL statements run on both engines while the block runs (values are parameters)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engines = {id(e): e for e in (container.db.engine, container.db.read_engine)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def _outbox_topics(container: Container) -> list[str]:
    with container.db.read() as session:
        return sorted(session.scalars(select(OutboxRow.topic)))


def _link_count(container: Container) -> int:
    with container.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(EmailTokenRow)) or 0)


def test_forgot_password_does_the_same_work_for_known_and_unknown_addresses(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "dave@example.com")
    container.outbox_worker.stop()  # the background work is driven by hand below

    def ask(email: str) -> tuple[int, Any, list[str]]:
        with statements(container) as seen:
            response = client.post("/v1/auth/password/forgot", json={"email": email})
        return response.status_code, response.json(), seen

    ask("warm-up@example.com")  # keys and caches are made on first use, for either
    links_before, topics_before = _link_count(container), _outbox_topics(container)
    known = ask("dave@example.com")
    after_known = _outbox_topics(container)
    unknown = ask("nobody@example.com")
    after_unknown = _outbox_topics(container)

    assert known[0] == unknown[0] == 202
    assert known[1] == unknown[1]
    # The same statements, in the same order: nothing about the account is read or written.
    assert known[2] == unknown[2]
    assert after_known == sorted([*topics_before, TOPIC_PASSWORD_RESET])
    assert after_unknown == sorted([*after_known, TOPIC_PASSWORD_RESET])
    assert _link_count(container) == links_before

    # In the background, the account's owner gets the link; nobody else gets anything.
    container.outbox_worker.drain()
    assert [m for m in inbox(container, "dave@example.com") if m.kind == "password-reset"]
    assert not inbox(container, "nobody@example.com")
    assert _link_count(container) == links_before + 1
