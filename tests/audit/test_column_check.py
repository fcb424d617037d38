"""The column check without a parse (`verify.column_suspects`) against the reference.

It compares what surrounds `details` in each body with the JSON array of the row's columns. For a
canonical body it must flag exactly the rows whose columns differ from the values the body holds,
whatever the strings contain (quotes, backslashes, commas, text that looks like keys, non-ASCII),
and whatever `details` holds (keys named like the entry's own, nested objects). A column of the
wrong type (NULL for a string, a number for text, bytes) is flagged. Non-canonical bodies may be
flagged or not: the canonical-form check catches them (tests/audit/test_verify_db.py).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.audit.batch_check import EntryBatch, column_suspects, entry_columns
from rampart.audit.domain import make_record, parse_entry, sanitised_entry_bytes
from rampart.audit.merkle import leaf_hash
from rampart.audit.verify import verify_log

TRICKY = (
    '"',
    "\\",
    ",",
    '","actor":"x',
    ',"details":{',
    ',"outcome":"',
    '","v":1}',
    "\u00e9",
    "\u2028",
    "\x01",
    "null",
    "",
)
texts = st.lists(st.sampled_from(TRICKY) | st.text(max_size=3), max_size=5).map("".join)
optional = st.none() | texts
details = st.dictionaries(
    st.sampled_from(["actor", "details", "outcome", "ts", "v", "x"]) | texts,
    texts | st.integers(-(2**40), 2**40) | st.dictionaries(texts, texts, max_size=2),
    max_size=4,
)


def entry_row(seq: int, values: dict) -> tuple:
    record = make_record(ts_ns=values["ts"], **{k: v for k, v in values.items() if k != "ts"})
    data = sanitised_entry_bytes(record)
    return (seq, data, leaf_hash(data), *entry_columns(record))


entry_values = st.fixed_dictionaries(
    {
        "ts": st.integers(1, 2**63 - 1),
        "actor": texts.filter(bool),
        "action": texts.filter(bool),
        "outcome": texts.filter(lambda t: 0 < len(t) <= 20),
        "subject": optional,
        "request_id": optional,
        "client_ip": optional,
        "details": details,
    }
)


def body_columns(data: bytes) -> tuple:
    return entry_columns(parse_entry(data))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(entry_values, min_size=1, max_size=6), st.data())
def test_flags_exactly_the_rows_whose_columns_differ(
    values: list[dict], data: st.DataObject
) -> None:
    rows = [entry_row(seq, v) for seq, v in enumerate(values)]
    # Edit some columns: another string, NULL, a number, bytes, a timestamp with a leading zero.
    edited = []
    for r in rows:
        index = data.draw(st.sampled_from([None, 3, 4, 5, 6, 7, 8, 9]))
        if index is None:
            edited.append(r)
            continue
        value = data.draw(st.sampled_from([None, 7, b"user:x", "0" + r[3], r[index]]) | texts)
        edited.append((*r[:index], value, *r[index + 1 :]))
    flagged = {r[0] for r in column_suspects(edited)}
    differ = {r[0] for r in edited if tuple(r[3:]) != body_columns(r[1])}
    # Every row that differs is flagged; a row that agrees is flagged only where orjson and
    # RFC 8785 may write text differently (U+2028/U+2029), never silently passed or failed.
    assert differ <= flagged
    for r in edited:
        if r[0] in flagged and r[0] not in differ:
            assert "\u2028" in r[1].decode() or "\u2029" in r[1].decode()


def test_an_intact_batch_has_no_suspects() -> None:
    rows = [
        entry_row(
            seq,
            {
                "ts": 1_767_600_000_000_000_000 + seq,
                "actor": f"user:{seq % 5}",
                "action": "order.placed",
                "outcome": "success",
                "subject": None if seq % 3 == 0 else f"order:{seq}",
                "request_id": "req-1",
                "client_ip": None if seq % 2 else "203.0.113.9",
                "details": {"qty": "10", "nested": {"actor": "not me", "outcome": "x"}},
            },
        )
        for seq in range(10_000)
    ]
    assert column_suspects(rows) == []
    # One edited column in thousands: exactly that row.
    rows[4321] = (*rows[4321][:4], "user:nobody", *rows[4321][5:])
    assert [r[0] for r in column_suspects(rows)] == [4321]


def test_an_edited_column_is_named_when_form_is_sampled() -> None:
    rows = [
        entry_row(
            seq,
            {
                "ts": 1_767_600_000_000_000_000 + seq,
                "actor": "user:a",
                "action": "order.placed",
                "outcome": "success",
                "subject": None,
                "request_id": None,
                "client_ip": None,
                "details": {"i": seq},
            },
        )
        for seq in range(50)
    ]
    rows[17] = (*rows[17][:3], "1", *rows[17][4:])  # the timestamp column
    report = verify_log(
        batches=[EntryBatch(rows, True, None, sample_form=True)],
        checkpoint_notes=[],
        keys=[],
        origin=None,
    )
    assert report.first_bad_seq == 17
    assert report.problems == ["entry 17: its searchable columns differ from its bytes"]
