"""`Sealer` and `Shredder`: the database vault and the in-memory one keep the same promises."""

from __future__ import annotations

import re
from typing import Protocol

import pytest

from rampart.vault.domain import Purpose, SealContext, ShreddedError, UnreadableError
from rampart.vault.memory import InMemoryVault
from rampart.vault.ports import Sealer, Shredder
from tests.support.ports import PortBackend

HERE = SealContext(table="contract", column="secret", row_id="r-1")
ELSEWHERE = SealContext(table="contract", column="secret", row_id="r-2")


class Vault(Sealer, Shredder, Protocol):
    """Both ports, as one object provides them."""


@pytest.fixture
def vault(port_backend: PortBackend) -> Vault:
    return InMemoryVault() if port_backend.in_memory else port_backend.app.vault  # type: ignore[return-value]


def _seal(port_backend: PortBackend, vault: Vault, value: str, **kw) -> bytes:  # type: ignore[no-untyped-def]
    with port_backend.uow() as uow:
        sealed = vault.seal(uow, Purpose.MFA_SECRET, value, HERE, **kw)
        uow.commit()
    return sealed


def _open(port_backend: PortBackend, vault: Vault, sealed: bytes, **kw) -> str:  # type: ignore[no-untyped-def]
    with port_backend.uow() as uow:
        return vault.open_text(uow, kw.pop("purpose", Purpose.MFA_SECRET), sealed, **kw).reveal()


def test_a_sealed_value_opens_where_it_was_sealed_and_hides_its_text(
    port_backend: PortBackend, vault: Vault
) -> None:
    first = _seal(port_backend, vault, "JBSWY3DPEHPK3PXP")
    second = _seal(port_backend, vault, "JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in first
    assert first != second  # a fresh nonce every time
    assert _open(port_backend, vault, first, context=HERE) == "JBSWY3DPEHPK3PXP"
    assert _open(port_backend, vault, second, context=HERE) == "JBSWY3DPEHPK3PXP"


def test_a_value_moved_to_another_place_or_purpose_or_altered_does_not_open(
    port_backend: PortBackend, vault: Vault
) -> None:
    sealed = _seal(port_backend, vault, "secret")
    with pytest.raises(UnreadableError):
        _open(port_backend, vault, sealed, context=ELSEWHERE)
    with pytest.raises(UnreadableError):
        _open(port_backend, vault, sealed, context=HERE, purpose=Purpose.API_KEY_SECRET)
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(UnreadableError):
        _open(port_backend, vault, altered, context=HERE)
    with pytest.raises(UnreadableError):
        _open(port_backend, vault, b"not a ciphertext", context=HERE)


def test_a_value_under_a_user_key_opens_for_that_user_only(
    port_backend: PortBackend, vault: Vault
) -> None:
    sealed = _seal(port_backend, vault, "mine", user_id="u-1")
    assert _open(port_backend, vault, sealed, context=HERE, user_id="u-1") == "mine"
    for who in ("u-2", None):
        with pytest.raises(UnreadableError) as refused:
            _open(port_backend, vault, sealed, context=HERE, user_id=who)
        assert not isinstance(refused.value, ShreddedError)


def test_a_shredded_user_s_values_are_gone_and_nothing_new_is_sealed_for_them(
    port_backend: PortBackend, vault: Vault
) -> None:
    sealed = _seal(port_backend, vault, "mine", user_id="u-1")
    kept = _seal(port_backend, vault, "theirs", user_id="u-2")
    with port_backend.uow() as uow:
        assert vault.shred_user(uow, "u-1") == 1
        uow.commit()
    with port_backend.uow() as uow:
        assert vault.is_shredded(uow, "u-1")
        assert not vault.is_shredded(uow, "u-2")
    with pytest.raises(ShreddedError):
        _open(port_backend, vault, sealed, context=HERE, user_id="u-1")
    with pytest.raises(ShreddedError):
        _seal(port_backend, vault, "again", user_id="u-1")
    assert _open(port_backend, vault, kept, context=HERE, user_id="u-2") == "theirs"


def test_blind_indexes_match_equal_values_within_one_index_only(
    port_backend: PortBackend, vault: Vault
) -> None:
    with port_backend.uow() as uow:
        ann = vault.blind_index(uow, "email", "ann@example.com")
        assert re.fullmatch(r"[0-9a-f]{64}", ann)
        assert vault.blind_index(uow, "email", "ann@example.com") == ann
        assert vault.blind_index(uow, "email", "bob@example.com") != ann
        assert vault.blind_index(uow, "phone", "ann@example.com") != ann
        uow.commit()
