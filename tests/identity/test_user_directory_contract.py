"""`UserDirectory`: the SQL account service and the in-memory users behave the same for the
domains that read accounts (API keys, risk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rampart.identity.domain import AccountStatus
from rampart.identity.memory import InMemoryUsers
from rampart.identity.ports import UserDirectory
from rampart.kernel.errors import NotFoundError
from tests.support.ports import PortBackend


@dataclass
class Accounts:
    directory: UserDirectory
    add: Callable[[str, bool], str]
    lock: Callable[[str], None]
    close: Callable[[str], None]


@pytest.fixture
def accounts(port_backend: PortBackend) -> Accounts:
    if port_backend.in_memory:
        users = InMemoryUsers(port_backend.clock)
        return Accounts(
            users,
            lambda email, verified: users.add(email, verified=verified),
            lambda user_id: users.set_locked(user_id, True),
            users.close,
        )
    book = port_backend.app.identity.accounts

    def add(email: str, verified: bool) -> str:
        with port_backend.uow() as uow:
            user_id = book.create_user(
                uow, email, None, role="TRADER", verified=verified, created_by="operator:test"
            )
            uow.commit()
        return user_id

    def lock(user_id: str) -> None:
        with port_backend.uow() as uow:
            book.set_locked(uow, user_id, True, reason="test")
            uow.commit()

    def close(user_id: str) -> None:
        with port_backend.uow() as uow:
            book.close(uow, user_id)
            uow.commit()

    return Accounts(book, add, lock, close)


def test_an_open_verified_account_is_active_and_reachable(
    port_backend: PortBackend, accounts: Accounts
) -> None:
    user_id = accounts.add("ann@example.com", True)
    with port_backend.read() as session:
        user = accounts.directory.get(session, user_id)
        assert (user.id, user.email, user.email_verified) == (user_id, "ann@example.com", True)
        assert user.status == AccountStatus.ACTIVE
        assert accounts.directory.exists(session, user_id)
        assert accounts.directory.is_active(session, user_id)
        assert accounts.directory.contact_email(session, user_id) == "ann@example.com"


def test_an_unconfirmed_address_is_not_written_to(
    port_backend: PortBackend, accounts: Accounts
) -> None:
    user_id = accounts.add("bob@example.com", False)
    with port_backend.read() as session:
        assert accounts.directory.get(session, user_id).email_verified is False
        assert accounts.directory.contact_email(session, user_id) is None


def test_a_locked_account_may_not_act_but_is_still_there(
    port_backend: PortBackend, accounts: Accounts
) -> None:
    user_id = accounts.add("cy@example.com", True)
    accounts.lock(user_id)
    with port_backend.read() as session:
        assert not accounts.directory.is_active(session, user_id)
        assert accounts.directory.get(session, user_id).status == AccountStatus.LOCKED
        assert accounts.directory.contact_email(session, user_id) == "cy@example.com"


def test_a_closed_account_existed_but_is_gone_for_everything_else(
    port_backend: PortBackend, accounts: Accounts
) -> None:
    user_id = accounts.add("di@example.com", True)
    accounts.close(user_id)
    with port_backend.read() as session:
        assert accounts.directory.exists(session, user_id)
        assert not accounts.directory.is_active(session, user_id)
        assert accounts.directory.contact_email(session, user_id) is None
        with pytest.raises(NotFoundError):
            accounts.directory.get(session, user_id)


def test_an_unknown_id_is_nobody(port_backend: PortBackend, accounts: Accounts) -> None:
    with port_backend.read() as session:
        assert not accounts.directory.exists(session, "no-such-user")
        assert not accounts.directory.is_active(session, "no-such-user")
        assert accounts.directory.contact_email(session, "no-such-user") is None
        with pytest.raises(NotFoundError):
            accounts.directory.get(session, "no-such-user")
