"""Verification with the column check in the database and the canonical form sampled.

On SQLite the database compares every entry's searchable columns with its body, and the canonical
form is checked exactly only where no signed root authenticates the bytes (plus non-ASCII entries
and a random sample). Whatever is edited behind the application's back must still be named by
`rampart audit verify`: a searchable column, a body, a non-canonical body (with its leaf hash and
the tree fixed to match, signed or not yet signed), a body that is not JSON. The same edits are
named on PostgreSQL (every entry checked in Python) and with --thorough.
"""

from __future__ import annotations

import orjson
import pytest

from rampart.audit.batch_check import EntryBatch
from rampart.audit.domain import canonical_json
from rampart.audit.merkle import CompactRange, leaf_hash
from rampart.audit.verify import verify_log
from rampart.bootstrap import Container
from tests.audit.test_integrity import behind_the_apps_back, blob, fill, verify
from tests.audit.test_verify_fast import base_rows, mutate, reference_first_bad, row


def stored(container: Container, seq: int) -> bytes:
    return next(e.data for e in container.audit.stored_entries() if e.seq == seq)


def forge(container: Container, seq: int, data: bytes) -> None:
    """Replace entry `seq`'s body and fix its leaf hash and the tree state to match, as a
    forger with write access to the database would."""
    leaves = [e.leaf for e in container.audit.stored_entries()]
    leaves[seq] = leaf_hash(data)
    rng = CompactRange()
    rng.extend(leaves)
    behind_the_apps_back(
        container,
        f"UPDATE audit_entry SET entry = {blob(container, data)}, "
        f"leaf_hash = {blob(container, leaves[seq])} WHERE seq = {seq}",
        f"UPDATE audit_tree_state SET border = {blob(container, rng.pack())}, "
        f"root = {blob(container, rng.root())}",
    )


def non_canonical(data: bytes) -> bytes:
    """The same values with a space after the first colon: valid JSON, not RFC 8785."""
    return data.replace(b":", b": ", 1)


@pytest.fixture(params=[False, True], ids=["default", "thorough"])
def thorough(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def run_verify(container: Container, thorough: bool) -> tuple[int, str]:
    return verify(container, "--thorough") if thorough else verify(container)


def test_an_intact_log_verifies_both_ways(container: Container, thorough: bool) -> None:
    fill(container, 20)
    container.audit_checkpointer.checkpoint()
    fill(container, 5, start=20)
    code, output = run_verify(container, thorough)
    assert code == 0, output
    assert "25 entries" in output


def test_an_edited_searchable_column_is_named(container: Container, thorough: bool) -> None:
    fill(container, 12)
    container.audit_checkpointer.checkpoint()
    # Hiding an entry from a search by actor: the body and its hash stay intact.
    behind_the_apps_back(container, "UPDATE audit_entry SET actor = 'user:nobody' WHERE seq = 7")
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "first entry that does not match: 7" in output
    assert "entry 7: its searchable columns differ from its bytes" in output


def test_an_edited_timestamp_column_is_named(container: Container) -> None:
    fill(container, 6)
    container.audit_checkpointer.checkpoint()
    behind_the_apps_back(container, "UPDATE audit_entry SET ts_ns = ts_ns + 1 WHERE seq = 2")
    code, output = verify(container)
    assert code == 1
    assert "first entry that does not match: 2" in output


def test_a_timestamp_stored_as_another_type_is_named(container: Container, thorough: bool) -> None:
    """SQLite: a blob holding the same digits matches no search by time (it sorts after every
    number); the column must hold an integer, in both modes. (PostgreSQL's column is bigint.)"""
    if not container.db.is_sqlite:
        return
    fill(container, 6)
    container.audit_checkpointer.checkpoint()
    behind_the_apps_back(
        container,
        "UPDATE audit_entry SET ts_ns = CAST(CAST(ts_ns AS TEXT) AS BLOB) WHERE seq = 4",
    )
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "first entry that does not match: 4" in output


def test_an_edited_body_is_named(container: Container, thorough: bool) -> None:
    fill(container, 10)
    container.audit_checkpointer.checkpoint()
    data = stored(container, 5).replace(b'"i":5', b'"i":55')
    behind_the_apps_back(
        container, f"UPDATE audit_entry SET entry = {blob(container, data)} WHERE seq = 5"
    )
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "first entry that does not match: 5" in output
    assert "entry 5: its bytes do not match its stored leaf hash" in output


def test_a_non_canonical_body_not_yet_signed_is_named(container: Container, thorough: bool) -> None:
    fill(container, 10)
    container.audit_checkpointer.checkpoint()
    fill(container, 6, start=10)
    # After the newest checkpoint no signature covers the bytes: their form is checked exactly.
    forge(container, 13, non_canonical(stored(container, 13)))
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "first entry that does not match: 13" in output
    assert "entry 13: not a canonical audit entry" in output


def test_a_non_canonical_body_under_a_signed_root_is_named(
    container: Container, thorough: bool
) -> None:
    fill(container, 40)
    container.audit_checkpointer.checkpoint()
    forge(container, 21, non_canonical(stored(container, 21)))
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "differ from what checkpoint 40 signed" in output
    # The suspect range is re-checked exactly, which names the entry itself.
    assert "entry 21: not a canonical audit entry" in output
    assert "first entry that does not match: 21" in output


def test_a_body_that_is_not_json_is_named(container: Container, thorough: bool) -> None:
    fill(container, 8)
    container.audit_checkpointer.checkpoint()
    fill(container, 4, start=8)
    # The database cannot read it as JSON: the chunk falls back to the check in Python.
    forge(container, 9, b'{"action":')
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "first entry that does not match: 9" in output
    assert "entry 9: not a canonical audit entry" in output


def test_a_body_with_a_duplicate_key_is_named(container: Container, thorough: bool) -> None:
    fill(container, 8)
    container.audit_checkpointer.checkpoint()
    fill(container, 4, start=8)
    # Parsers disagree on duplicate keys (SQLite reads the first, orjson the last).
    data = stored(container, 10)
    forge(container, 10, data.replace(b'{"action":', b'{"action":"auth.login","action":', 1))
    code, output = run_verify(container, thorough)
    assert code == 1
    assert "first entry that does not match: 10" in output


# --- The sampled mode without a database ---------------------------------------------------------
CANONICAL_MUTATIONS = [
    "whitespace",
    "keys out of order",
    "float orjson form",
    "integer beyond 2**53",
    "timestamp with a leading zero",
    "version true",
    "extra key",
    "missing key",
    "details a list",
    "duplicate key",
    "escaped non-ASCII",
    "unicode digit timestamp",
]


@pytest.mark.parametrize("name", CANONICAL_MUTATIONS)
def test_unsigned_entries_get_the_exact_verdict_when_sampled(name: str) -> None:
    rows = base_rows(50)
    seq, data, _leaf, *columns = rows[17]
    data, new_columns = mutate(name, data, tuple(columns))
    rows[17] = row(seq, data, new_columns)
    expected = reference_first_bad(rows)
    bare = [r[:3] for r in rows]
    # The database found no column disagreeing; nothing is signed, so every entry is exact.
    report = verify_log(
        batches=[EntryBatch(bare, False, None, [])],
        checkpoint_notes=[],
        keys=[],
        origin=None,
        sample_every=1_000_000,
    )
    assert report.first_bad_seq == expected == 17, report.problems
    assert report.canonical_checked == 50


def test_signed_entries_are_sampled_and_non_ascii_ones_always_checked() -> None:
    from rampart.audit.notes import Checkpoint, NoteSigner

    rows = base_rows(64)
    seq, data, _leaf, *columns = rows[30]
    value = orjson.loads(data)
    value["details"]["name"] = "\u00e9t\u00e9"
    rows[30] = row(seq, canonical_json(value), tuple(columns))
    rng = CompactRange()
    rng.extend([r[2] for r in rows])
    signer = NoteSigner("example.org/audit", b"\x07" * 32)
    note = signer.sign_checkpoint(Checkpoint("example.org/audit", 64, rng.root()))
    keys = [(signer.name, signer.public_key)]
    bare = [r[:3] for r in rows]
    report = verify_log(
        batches=[EntryBatch(bare, False, None, [])],
        checkpoint_notes=[note],
        keys=keys,
        origin="example.org/audit",
        sample_every=16,
    )
    assert report.ok, report.problems
    # 64 / 16 sampled, plus the non-ASCII entry (which may also have been drawn).
    assert 4 <= report.canonical_checked <= 5
    every = verify_log(
        batches=[EntryBatch(bare, False, None, [])],
        checkpoint_notes=[note],
        keys=keys,
        origin="example.org/audit",
        sample_every=1,
    )
    assert every.ok
    assert every.canonical_checked == 64


def test_column_suspects_are_checked_exactly() -> None:
    rows = base_rows(10)
    bare = [r[:3] for r in rows]
    # A false alarm (columns that do agree) passes; a real disagreement is named.
    good = verify_log(
        batches=[EntryBatch(bare, False, None, [rows[3]])],
        checkpoint_notes=[],
        keys=[],
        origin=None,
    )
    assert good.ok, good.problems
    bad_row = (*rows[6][:4], "user:nobody", *rows[6][5:])
    bad = verify_log(
        batches=[EntryBatch(bare, False, None, [bad_row])],
        checkpoint_notes=[],
        keys=[],
        origin=None,
    )
    assert bad.first_bad_seq == 6
    assert "entry 6: its searchable columns differ from its bytes" in bad.problems


def test_column_suspects_are_named_in_a_batch_that_also_fails_its_hashes() -> None:
    rows = base_rows(10)
    bare = [r[:3] for r in rows]
    bare[2] = (2, bare[2][1], b"\x00" * 32)  # a wrong stored leaf hash
    bad_row = (*rows[6][:4], "user:nobody", *rows[6][5:])
    report = verify_log(
        batches=[EntryBatch(bare, False, None, [bad_row])],
        checkpoint_notes=[],
        keys=[],
        origin=None,
    )
    assert report.first_bad_seq == 2
    assert "entry 2: its bytes do not match its stored leaf hash" in report.problems
    assert "entry 6: its searchable columns differ from its bytes" in report.problems
