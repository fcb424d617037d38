"""The batch verifier accepts exactly what the entry-by-entry reference check accepts.

`verify_log` checks a whole batch with a few C-level calls and only falls back to `parse_entry`
entry by entry to say what is wrong. These tests hold it to the reference: for any batch, it
passes only when every entry is canonical and matches its columns, and when it does not, it names
the same first entry.
"""

from __future__ import annotations

import orjson
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.audit import db as audit_db
from rampart.audit.batch_check import EntryBatch, entry_columns
from rampart.audit.domain import (
    MalformedEntryError,
    make_record,
    parse_entry,
    sanitised_entry_bytes,
)
from rampart.audit.merkle import CompactRange, leaf_hash
from rampart.audit.migrations import audit_0002_subtrees
from rampart.audit.verify import SUBTREE_MIN_HEIGHT, verify_log


def record_bytes(i: int, details: dict) -> tuple[bytes, tuple]:
    record = make_record(
        ts_ns=1_767_600_000_000_000_000 + i,
        actor=f"user:{i % 7}",
        action="order.placed",
        outcome="success",
        subject=f"order:{i}" if i % 3 else None,
        request_id="req-1",
        client_ip=None,
        details=details,
    )
    return sanitised_entry_bytes(record), entry_columns(record)


def row(seq: int, data: bytes, columns: tuple) -> tuple:
    return (seq, data, leaf_hash(data), *columns)


def reference_first_bad(rows: list[tuple]) -> int | None:
    for seq, data, leaf, *columns in rows:
        if leaf != leaf_hash(data):
            return int(seq)
        try:
            record = parse_entry(data)
        except MalformedEntryError:
            return int(seq)
        expected = (
            str(record.ts_ns),
            record.actor,
            record.action,
            record.outcome,
            record.subject,
            record.request_id,
            record.client_ip,
        )
        if tuple(columns) != expected:
            return int(seq)
    return None


def check(rows: list[tuple]) -> None:
    report = verify_log(batches=[EntryBatch(rows, True)], checkpoint_notes=[], keys=[], origin=None)
    expected = reference_first_bad(rows)
    assert report.first_bad_seq == expected, report.problems
    assert report.ok == (expected is None)
    rng = CompactRange()
    rng.extend([r[2] for r in rows])
    assert report.root == rng.root()


def base_rows(n: int) -> list[tuple]:
    return [row(i, *record_bytes(i, {"qty": "10", "i": i})) for i in range(n)]


def canonical_from(value: dict) -> bytes:
    return rfc8785.dumps(value)


def test_an_intact_batch_passes_without_the_slow_path() -> None:
    rows = base_rows(300)
    report = verify_log(batches=[EntryBatch(rows, True)], checkpoint_notes=[], keys=[], origin=None)
    assert report.ok, report.problems
    assert report.rechecked_batches == 0


MUTATIONS = [
    # (name, function from the entry's JSON value and bytes to new bytes, new columns or None)
    "whitespace",
    "keys out of order",
    "float orjson form",
    "float canonical form",
    "integer beyond 2**53",
    "timestamp with a leading zero",
    "version true",
    "version 1.0",
    "extra key",
    "missing key",
    "details a list",
    "duplicate key",
    "escaped non-ASCII",
    "raw non-ASCII",
    "U+2028 raw",
    "column actor",
    "column ts",
    "column subject empty",
    "non-BMP keys",
    "negative timestamp",
    "string holding a float-looking text",
    "unicode digit timestamp",
]


def mutate(name: str, data: bytes, columns: tuple) -> tuple[bytes, tuple]:
    value = orjson.loads(data)
    cols = list(columns)
    if name == "whitespace":
        return data.replace(b",", b", ", 1), columns
    if name == "keys out of order":
        return orjson.dumps(dict(reversed(list(value.items())))), columns
    if name == "float orjson form":
        value["details"]["x"] = 1e16
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS), columns
    if name == "float canonical form":
        value["details"]["x"] = 1.5
        return canonical_from(value), columns
    if name == "integer beyond 2**53":
        value["details"]["x"] = 2**60
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS), columns
    if name == "timestamp with a leading zero":
        value["ts"] = "0" + value["ts"]
        cols[0] = value["ts"]
        return canonical_from(value), tuple(cols)
    if name == "version true":
        value["v"] = True
        return canonical_from(value), columns
    if name == "version 1.0":
        return data.replace(b'"v":1}', b'"v":1.0}'), columns
    if name == "extra key":
        value["zz"] = 1
        return canonical_from(value), columns
    if name == "missing key":
        del value["client_ip"]
        return canonical_from(value), columns
    if name == "details a list":
        value["details"] = [1]
        return canonical_from(value), columns
    if name == "duplicate key":
        return data.replace(b'{"action":', b'{"action":"x","action":', 1), columns
    if name == "escaped non-ASCII":
        return data.replace(b'"qty":"10"', b'"qty":"\\u00e9"'), columns
    if name == "raw non-ASCII":
        value["details"]["name"] = "\u00e9t\u00e9 \U0001f600"
        return canonical_from(value), columns
    if name == "U+2028 raw":
        value["details"]["sep"] = "a\u2028b"
        return canonical_from(value), columns
    if name == "column actor":
        cols[1] = "user:someone-else"
        return data, tuple(cols)
    if name == "column ts":
        cols[0] = str(int(cols[0]) + 1)
        return data, tuple(cols)
    if name == "column subject empty":
        cols[4] = ""
        return data, tuple(cols)
    if name == "non-BMP keys":
        value["details"] = {"\U0001f600": 1, "\ufb01": 2}
        return canonical_from(value), columns
    if name == "negative timestamp":
        value["ts"] = "-5"
        cols[0] = "-5"
        return canonical_from(value), tuple(cols)
    if name == "string holding a float-looking text":
        value["details"]["note"] = "ratio:1.5,[2e3"
        return canonical_from(value), columns
    if name == "unicode digit timestamp":
        value["ts"] = "\u00b2"
        cols[0] = "\u00b2"
        return canonical_from(value), tuple(cols)
    raise AssertionError(name)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=40),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=39), st.sampled_from(MUTATIONS)),
        max_size=3,
    ),
)
def test_batch_verdict_equals_the_reference(n: int, edits: list[tuple[int, str]]) -> None:
    rows = base_rows(n)
    for index, name in dict(edits).items():  # one mutation per entry
        if index >= n:
            continue
        seq, data, _leaf, *columns = rows[index]
        data, new_columns = mutate(name, data, tuple(columns))
        # The forger also fixed the leaf hash: only the form and column checks can catch it.
        rows[index] = row(seq, data, new_columns)
    check(rows)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(st.text(max_size=5), json_values, max_size=4), sort=st.booleans())
def test_any_details_encoding_gets_the_reference_verdict(details: dict, sort: bool) -> None:
    rows = base_rows(3)
    seq, data, _leaf, *columns = rows[1]
    value = orjson.loads(data)
    value["details"] = details
    try:
        data = rfc8785.dumps(value) if sort else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except Exception:  # noqa: BLE001 - a value neither encoder takes is not an entry at all
        return
    rows[1] = row(seq, data, tuple(columns))
    check(rows)


def test_the_subtree_height_is_the_same_everywhere() -> None:
    assert SUBTREE_MIN_HEIGHT == audit_db.SUBTREE_MIN_HEIGHT == audit_0002_subtrees.MIN_HEIGHT


def test_a_wrong_stored_subtree_is_reported() -> None:
    rows = base_rows(64)
    rng = CompactRange()
    nodes = {(h, i): x for h, i, x in rng.extend_recording([r[2] for r in rows], 4)}
    ok = verify_log(
        batches=[EntryBatch(rows, True, nodes)], checkpoint_notes=[], keys=[], origin=None
    )
    assert ok.ok, ok.problems
    bad = dict(nodes)
    bad[(4, 2)] = b"\x00" * 32
    report = verify_log(
        batches=[EntryBatch(rows, True, bad)], checkpoint_notes=[], keys=[], origin=None
    )
    assert not report.ok
    assert "level 4, index 2" in report.problems[0]
    missing = {k: v for k, v in nodes.items() if k != (5, 1)}
    report = verify_log(
        batches=[EntryBatch(rows, True, missing)], checkpoint_notes=[], keys=[], origin=None
    )
    assert "level 5, index 1) is missing" in report.problems[0]
