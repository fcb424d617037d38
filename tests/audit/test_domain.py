"""Canonical entries and C2SP signed notes."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.audit.domain import (
    AuditEntryError,
    MalformedEntryError,
    canonical_json,
    entry_bytes,
    make_record,
    parse_entry,
)
from rampart.audit.notes import (
    Checkpoint,
    NoteSigner,
    parse_verifier_key,
    verify_checkpoint,
    verify_note,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_is_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)  # type: ignore[arg-type]


def test_known_signed_note_from_the_c2sp_spec() -> None:
    # The example of golang.org/x/mod/sumdb/note (C2SP signed-note).
    name, key = parse_verifier_key(
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    )
    note = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n\n"
        "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
        "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    assert verify_note(note, name, key) is not None
    assert verify_note(note.replace("answer", "Answer"), name, key) is None


def test_checkpoint_round_trip_and_forgery() -> None:
    signer = NoteSigner("example.com/audit", b"\x07" * 32)
    note = signer.sign_checkpoint(
        Checkpoint("example.com/audit", 42, b"\x01" * 32, ("timestamp 5",))
    )
    keys = [parse_verifier_key(signer.verifier_key)]
    checkpoint = verify_checkpoint(note, keys, "example.com/audit")
    assert checkpoint is not None
    assert checkpoint.size == 42
    assert checkpoint.timestamp_ns == 5
    assert verify_checkpoint(note, keys, "other.example/audit") is None
    assert verify_checkpoint(note.replace("\n42\n", "\n43\n"), keys) is None
    other = NoteSigner("example.com/audit", b"\x08" * 32)
    assert verify_checkpoint(note, [parse_verifier_key(other.verifier_key)]) is None
    for garbage in ("", "\n\n", note[:-1], note + "junk", "x\n\n\u2014 a b\n"):
        assert verify_checkpoint(garbage, keys) is None


def test_entries_are_canonical_and_refuse_what_json_cannot_hold() -> None:
    record = make_record(
        ts_ns=1_767_623_400_123_456_789,
        actor="user:u",
        action="order.placed",
        outcome="success",
        subject="order:1",
        request_id=None,
        client_ip="::1",
        details={"price": __import__("decimal").Decimal("101.25")},
    )
    data = entry_bytes(record)
    assert parse_entry(data) == make_record(
        ts_ns=record.ts_ns,
        actor="user:u",
        action="order.placed",
        outcome="success",
        subject="order:1",
        request_id=None,
        client_ip="::1",
        details={"price": "101.25"},
    )
    assert b'"ts":"1767623400123456789"' in data
    with pytest.raises(MalformedEntryError):
        parse_entry(data.replace(b'{"action"', b'{ "action"'))
    with pytest.raises(AuditEntryError):
        make_record(
            ts_ns=1,
            actor="a",
            action="x",
            outcome="success",
            subject=None,
            request_id=None,
            client_ip=None,
            details={"f": 0.1},
        )
    with pytest.raises(AuditEntryError):
        make_record(
            ts_ns=1,
            actor="a" * 201,
            action="x",
            outcome="success",
            subject=None,
            request_id=None,
            client_ip=None,
            details={},
        )
