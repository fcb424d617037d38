"""Sealing and opening: round trips, binding to the row, tampering, user keys, logs."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.exc import StatementError

from rampart.bootstrap import Container
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.logging import configure_logging
from rampart.vault import (
    PlaintextRefusedError,
    Purpose,
    SealContext,
    ShreddedError,
    UnreadableError,
)
from rampart.vault.domain import Header, new_key, open_with, seal_with

CTX = SealContext("vault_test_secret", "credential", "row-1")


@pytest.mark.parametrize("purpose", list(Purpose))
def test_every_purpose_round_trips_with_and_without_a_user_key(
    container: Container, purpose: Purpose
) -> None:
    vault = container.vault
    with container.uow() as uow:
        plain = vault.seal(uow, purpose, f"secret of {purpose}", CTX)
        personal = vault.seal(uow, purpose, b"\x00\xffbinary", CTX, user_id="user-1")
        uow.commit()
    with container.uow() as uow:
        opened = vault.open(uow, purpose, plain, CTX)
        assert isinstance(opened, Secret)
        assert opened.reveal() == f"secret of {purpose}".encode()
        assert vault.open_text(uow, purpose, plain, CTX).reveal() == f"secret of {purpose}"
        assert vault.open(uow, purpose, personal, CTX, user_id="user-1").reveal() == (
            b"\x00\xffbinary"
        )


def test_the_same_plaintext_never_gives_the_same_ciphertext(container: Container) -> None:
    with container.uow() as uow:
        first = container.vault.seal(uow, Purpose.TAX_ID, "123", CTX)
        second = container.vault.seal(uow, Purpose.TAX_ID, "123", CTX)
    assert first != second
    assert b"123" not in first


@pytest.mark.parametrize(
    "elsewhere",
    [
        SealContext("vault_test_secret", "credential", "row-2"),  # another row
        SealContext("vault_test_secret", "tax_id", "row-1"),  # another column
        SealContext("other_table", "credential", "row-1"),  # another table
    ],
)
def test_a_ciphertext_moved_elsewhere_does_not_open(
    container: Container, elsewhere: SealContext
) -> None:
    with container.uow() as uow:
        sealed = container.vault.seal(uow, Purpose.BROKER_CREDENTIAL, "api-secret", CTX)
        with pytest.raises(UnreadableError):
            container.vault.open(uow, Purpose.BROKER_CREDENTIAL, sealed, elsewhere)


def test_a_ciphertext_does_not_open_as_another_purpose(container: Container) -> None:
    with container.uow() as uow:
        sealed = container.vault.seal(uow, Purpose.BROKER_CREDENTIAL, "api-secret", CTX)
        with pytest.raises(UnreadableError):
            container.vault.open(uow, Purpose.API_KEY_SECRET, sealed, CTX)


def test_a_ciphertext_copied_into_another_row_of_the_table_fails(
    container: Container, vault_table
) -> None:
    vault = container.vault
    alice, mallory = new_id(), new_id()
    with container.uow() as uow:
        for row_id, secret in ((alice, "alice-broker-secret"), (mallory, "mallory-secret")):
            ctx = SealContext("vault_test_secret", "credential", row_id)
            uow.session.execute(
                insert(vault_table).values(
                    id=row_id,
                    credential=vault.seal(uow, Purpose.BROKER_CREDENTIAL, secret, ctx),
                )
            )
        uow.commit()
    # The attacker with write access to the database copies Alice's ciphertext into their row.
    with container.uow() as uow:
        stolen = uow.session.scalar(
            select(vault_table.c.credential).where(vault_table.c.id == alice)
        )
        uow.session.execute(
            vault_table.update().where(vault_table.c.id == mallory).values(credential=stolen)
        )
        uow.commit()
    with container.uow() as uow:
        copied = uow.session.scalar(
            select(vault_table.c.credential).where(vault_table.c.id == mallory)
        )
        ctx = SealContext("vault_test_secret", "credential", mallory)
        with pytest.raises(UnreadableError):
            vault.open(uow, Purpose.BROKER_CREDENTIAL, copied, ctx)


def test_every_altered_byte_is_refused_with_one_opaque_error(container: Container) -> None:
    with container.uow() as uow:
        sealed = container.vault.seal(uow, Purpose.MFA_SECRET, "JBSWY3DPEHPK3PXP", CTX)
        uow.commit()
    messages = set()
    with container.uow() as uow:
        for i in range(len(sealed)):
            altered = bytearray(sealed)
            altered[i] ^= 0x01
            with pytest.raises(UnreadableError) as caught:
                container.vault.open(uow, Purpose.MFA_SECRET, bytes(altered), CTX)
            messages.add((type(caught.value), str(caught.value)))
        with pytest.raises(UnreadableError):
            container.vault.open(uow, Purpose.MFA_SECRET, sealed[:-1], CTX)
        with pytest.raises(UnreadableError):
            container.vault.open(uow, Purpose.MFA_SECRET, b"plaintext", CTX)
    assert messages == {(UnreadableError, UnreadableError.title)}


def test_a_users_data_opens_only_as_theirs(container: Container) -> None:
    vault = container.vault
    with container.uow() as uow:
        sealed = vault.seal(uow, Purpose.TAX_ID, "123-45-6789", CTX, user_id="alice")
        uow.commit()
    with container.uow() as uow:
        for wrong in ("bob", None):
            with pytest.raises(UnreadableError):
                vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id=wrong)
        plain = vault.seal(uow, Purpose.TAX_ID, "987", CTX)
        with pytest.raises(UnreadableError):
            vault.open(uow, Purpose.TAX_ID, plain, CTX, user_id="alice")


def test_a_shredded_users_data_cannot_be_opened(container: Container) -> None:
    vault = container.vault
    with container.uow() as uow:
        alice_tax = vault.seal(uow, Purpose.TAX_ID, "123-45-6789", CTX, user_id="alice")
        alice_bank = vault.seal(
            uow, Purpose.BANK_DETAILS, "DE89370400440532013000", CTX, user_id="alice"
        )
        bob_tax = vault.seal(uow, Purpose.TAX_ID, "555-55-5555", CTX, user_id="bob")
        uow.commit()
    with container.uow() as uow:
        assert vault.shred_user(uow, "alice") == 2
        uow.commit()
    # Even with every key in memory forgotten, nothing can bring the key back.
    vault.forget_cached_keys()
    with container.uow() as uow:
        with pytest.raises(ShreddedError):
            vault.open(uow, Purpose.TAX_ID, alice_tax, CTX, user_id="alice")
        with pytest.raises(ShreddedError):
            vault.open(uow, Purpose.BANK_DETAILS, alice_bank, CTX, user_id="alice")
        assert vault.open(uow, Purpose.TAX_ID, bob_tax, CTX, user_id="bob").reveal() == (
            b"555-55-5555"
        )
        # Nothing new is sealed for a shredded user.
        with pytest.raises(ShreddedError):
            vault.seal(uow, Purpose.PERSONAL_DATA, "Alice", CTX, user_id="alice")
        assert vault.is_shredded(uow, "alice")
    register = container.settings.data_dir / "vault" / "shredded-users"
    assert register.read_text().split() == ["alice"]


def test_a_shred_that_rolls_back_destroys_nothing(container: Container) -> None:
    vault = container.vault
    with container.uow() as uow:
        sealed = vault.seal(uow, Purpose.TAX_ID, "123", CTX, user_id="alice")
        uow.commit()
    with container.uow() as uow:
        vault.shred_user(uow, "alice")
        uow.rollback()
    vault.forget_cached_keys()
    with container.uow() as uow:
        assert vault.open(uow, Purpose.TAX_ID, sealed, CTX, user_id="alice").reveal() == b"123"


def test_a_key_created_in_a_rolled_back_transaction_is_not_reused(container: Container) -> None:
    vault = container.vault
    with container.uow() as uow:
        vault.seal(uow, Purpose.WEBHOOK_SECRET, "first", CTX)
        uow.rollback()
    with container.uow() as uow:
        sealed = vault.seal(uow, Purpose.WEBHOOK_SECRET, "second", CTX)
        uow.commit()
    vault.forget_cached_keys()
    with container.uow() as uow:
        assert vault.open(uow, Purpose.WEBHOOK_SECRET, sealed, CTX).reveal() == b"second"


def test_blind_index_finds_equal_values_only(container: Container, vault_table) -> None:
    vault = container.vault
    with container.uow() as uow:
        for tax_id in ("123-45-6789", "987-65-4321"):
            row_id = new_id()
            ctx = SealContext("vault_test_secret", "tax_id", row_id)
            uow.session.execute(
                insert(vault_table).values(
                    id=row_id,
                    tax_id=vault.seal(uow, Purpose.TAX_ID, tax_id, ctx),
                    tax_id_index=vault.blind_index(uow, "test.tax_id", tax_id),
                )
            )
        uow.commit()
    with container.uow() as uow:
        probe = vault.blind_index(uow, "test.tax_id", "987-65-4321")
        found = uow.session.execute(
            select(vault_table.c.id, vault_table.c.tax_id).where(
                vault_table.c.tax_id_index == probe
            )
        ).all()
        assert len(found) == 1
        ctx = SealContext("vault_test_secret", "tax_id", found[0].id)
        assert vault.open(uow, Purpose.TAX_ID, found[0].tax_id, ctx).reveal() == b"987-65-4321"
        # Each index has its own key: the same value in another index does not match.
        assert vault.blind_index(uow, "other.index", "987-65-4321") != probe
        # A keyed digest: 64 hex digits that never spell the value (a bare "987" would match a
        # random digest about once in 70 runs, so the whole value, with and without its dashes).
        assert len(probe) == 64
        assert set(probe) <= set("0123456789abcdef")
        assert "987654321" not in probe


def test_the_sealed_column_refuses_plaintext(container: Container, vault_table) -> None:
    with container.uow() as uow:
        for wrong in (b"123-45-6789", "123-45-6789"):
            with pytest.raises(StatementError) as caught:
                uow.session.execute(insert(vault_table).values(id=new_id(), tax_id=wrong))
            assert isinstance(caught.value.orig, PlaintextRefusedError)
            uow.session.rollback()
        # A ciphertext of another purpose is refused as well.
        ctx = SealContext("vault_test_secret", "tax_id", "x")
        other = container.vault.seal(uow, Purpose.MFA_SECRET, "x", ctx)
        with pytest.raises(StatementError) as caught:
            uow.session.execute(insert(vault_table).values(id=new_id(), tax_id=other))
        assert isinstance(caught.value.orig, PlaintextRefusedError)


def test_secrets_never_reach_the_logs(container: Container) -> None:
    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    try:
        vault = container.vault
        secret = "S3cr3t-broker-value-4242"
        with container.uow() as uow:
            sealed = vault.seal(uow, Purpose.BROKER_CREDENTIAL, secret, CTX, user_id="u1")
            vault.rotate(uow, Purpose.BROKER_CREDENTIAL)
            uow.commit()
        with container.uow() as uow:
            opened = vault.open(uow, Purpose.BROKER_CREDENTIAL, sealed, CTX, user_id="u1")
            from rampart.platform.logging import get_logger

            # Even a careless log call of the opened value shows nothing.
            get_logger("test").info("opened", value=opened, text=f"{opened}")
            with pytest.raises(UnreadableError):
                vault.open(uow, Purpose.BROKER_CREDENTIAL, sealed, CTX, user_id="u2")
            vault.shred_user(uow, "u1")
            uow.commit()
    finally:
        configure_logging("warning", json=True)
    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(line.get("event") == "vault.key.rotated" for line in lines)
    assert secret not in output
    assert secret.encode().hex() not in output
    assert repr(opened) == "Secret([REDACTED])"


# --- properties of the format, without a database --------------------------------------------
contexts = st.builds(
    SealContext,
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=40),
)


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=300),
    context=contexts,
    purpose=st.sampled_from(list(Purpose)),
    version=st.integers(min_value=1, max_value=2**32 - 1),
    user_key=st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
)
def test_format_round_trips_and_binds_its_context(
    plaintext: bytes,
    context: SealContext,
    purpose: Purpose,
    version: int,
    user_key: bytes | None,
) -> None:
    key = new_key()
    header = Header(purpose, version, user_key)
    sealed = seal_with(key, header, plaintext, context)
    assert open_with(key, header, sealed, context) == plaintext
    moved = SealContext(context.table, context.column, context.row_id + "x")
    with pytest.raises(UnreadableError):
        open_with(key, header, sealed, moved)
    # Swapping fields between table and column must not collide (length-prefixed).
    swapped = SealContext(context.column, context.table, context.row_id)
    if swapped != context:
        with pytest.raises(UnreadableError):
            open_with(key, header, sealed, swapped)


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(min_size=1, max_size=64), data=st.data())
def test_any_flipped_bit_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    key = new_key()
    header = Header(Purpose.TAX_ID, 3)
    sealed = seal_with(key, header, plaintext, CTX)
    index = data.draw(st.integers(min_value=0, max_value=len(sealed) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    altered = bytearray(sealed)
    altered[index] ^= 1 << bit
    with pytest.raises(UnreadableError):
        open_with(key, _header_or_raise(bytes(altered)), bytes(altered), CTX)


def _header_or_raise(blob: bytes) -> Header:
    from rampart.vault.domain import parse_header

    return parse_header(blob)
