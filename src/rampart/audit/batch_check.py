"""Stored audit entries in batches, and the checks run over a batch (pure: an auditor runs them
on an export alone).

Speed without skipping anything: entries come in batches of `BATCH`, and each check runs over a
whole batch in a few C-level calls (`batch_ok`): hashlib through `map`, the tree a level at a
time, orjson parsing every entry and re-serialising the batch for a byte-for-byte comparison, list
comparisons for the columns. Where orjson's canonical form could differ from RFC 8785 (non-ASCII
text, floats) the entry takes the reference check. A batch that fails anything is re-checked entry
by entry (`recheck_batch`) to name the first bad entry and say why; tests hold the two to the same
verdict.

Columns checked without a parse. A batch may come without its columns, the database having
compared every entry's columns with its body itself (`EntryBatch.column_suspects`: the full rows of
the entries it flagged, re-checked here exactly), or with its columns and `sample_form`, compared
here by `column_suspects` (bytes around `details` against orjson's array of the columns, no
parse; PostgreSQL, whose JSON costs more than this). The canonical-form check is then exact
where the bytes are not authenticated by a signed root (at and after `exact_from`), for every
entry with non-ASCII bytes (where orjson and RFC 8785 can differ) and for every flagged entry,
and made on a random sample elsewhere (`sample_every`); a signed range whose root does not match
is reported in `VerifyReport.suspect_ranges` for the caller to re-check exactly.
docs/decisions/0014-audit-log.md (Verifying) gives the reasoning: the sample only tests the log's
own serialiser, never what a forger could change unseen.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import getitem, itemgetter
from typing import Any

import orjson

from rampart.audit.domain import MalformedEntryError, parse_entry


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored: its bytes, its stored leaf hash, and its searchable columns
    (`ENTRY_COLUMNS`: the timestamp as decimal text, actor, action, outcome, subject, request id,
    client IP)."""

    seq: int
    data: bytes
    leaf: bytes
    columns: tuple[Any, ...] | None = None


#: Entries verified together; a power of two, so that every batch but the last is a perfect
#: subtree of the log and its nodes are built a whole level at a time.
BATCH = 1 << 16


@dataclass(frozen=True, slots=True)
class EntryBatch:
    """Consecutive stored entries as rows `(seq, entry, leaf_hash[, ts text, actor, action,
    outcome, subject, request_id, client_ip])`, starting at a multiple of `BATCH`."""

    rows: list[tuple[Any, ...]]
    has_columns: bool
    #: The stored perfect-subtree hashes completed by these entries, {(level, idx): hash};
    #: None when there is no subtree table to check (an export file).
    subtrees: dict[tuple[int, int], bytes] | None = None
    #: When the database compared every entry's searchable columns with its body itself (rows
    #: without columns): the full rows, with columns, of the entries it found disagreeing or could
    #: not check; they are re-checked exactly. None when the columns were not checked that way.
    column_suspects: list[tuple[Any, ...]] | None = None
    #: Rows with columns whose canonical form may be sampled where a signed root covers them:
    #: the columns are then compared with the bodies by `column_suspects` (no parse), and the
    #: flagged rows re-checked exactly, as for `column_suspects` given by the database.
    sample_form: bool = False


def batches_of(entries: Iterable[StoredEntry], size: int = BATCH) -> Iterator[EntryBatch]:
    """Group single entries (an export file) into batches."""
    rows: list[tuple[Any, ...]] = []
    columns = False
    for entry in entries:
        if entry.columns is not None:
            columns = True
            rows.append((entry.seq, entry.data, entry.leaf, *entry.columns))
        else:
            rows.append((entry.seq, entry.data, entry.leaf))
        if len(rows) == size:
            yield EntryBatch(rows, columns)
            rows = []
    if rows:
        yield EntryBatch(rows, columns)


@dataclass
class VerifyReport:
    entries: int = 0
    root: bytes = b""
    checkpoints: int = 0
    #: The first entry that does not match, and why.
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    sink_size: int | None = None
    #: Batches whose fast check found something, re-checked entry by entry to say what.
    rechecked_batches: int = 0
    #: Entries whose canonical form was checked exactly (all of them unless sampled).
    canonical_checked: int = 0
    #: Ranges [lo, hi) whose signed root did not match, when their entries' canonical form was
    #: only sampled: the caller re-checks them exactly to name the entry (`recheck_exactly`).
    suspect_ranges: list[tuple[int, int]] = field(default_factory=list)
    #: True while `first_bad_seq` is only the start of a suspect range, not a named entry.
    first_bad_is_range: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, seq: int | None = None) -> None:
        if seq is not None and self.first_bad_seq is None:
            self.first_bad_seq = seq
        if len(self.problems) < 100:
            self.problems.append(message)


def entry_columns(record: Any) -> tuple[Any, ...]:
    """An entry's searchable columns as stored (`StoredEntry.columns`), from its record."""
    return (
        str(record.ts_ns),
        record.actor,
        record.action,
        record.outcome,
        record.subject,
        record.request_id,
        record.client_ip,
    )


# The fast check runs every test on every entry, a whole batch per C-level call (orjson, hashlib,
# map/itemgetter, list comparison); it says only "all good" or "something is wrong here". When
# something is wrong, `recheck_batch` goes entry by entry with `parse_entry` to name the entry
# and why.

#: The fields of a row of an `EntryBatch`.
ROW_SEQ = itemgetter(0)
ROW_DATA = itemgetter(1)
ROW_LEAF = itemgetter(2)
_ROW_COLUMNS = itemgetter(3, 4, 5, 6, 7, 8, 9)
_REQUIRED_COLUMNS = itemgetter(1, 2, 3)
_JSON_COLUMNS = itemgetter("ts", "actor", "action", "outcome", "subject", "request_id", "client_ip")
_REQUIRED_TEXT = (itemgetter(1), itemgetter(2), itemgetter(3))
_OPTIONAL_TEXT = (itemgetter(4), itemgetter(5), itemgetter(6))
_VERSION = itemgetter("v")
_TS = itemgetter(0)
_DETAILS = itemgetter("details")
_STR = {str}
_OPTIONAL_STR = {str, type(None)}
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
#: A number with a fraction or exponent in orjson's output: where it may differ from RFC 8785.
#: Also matches such text inside strings; those entries just take the exact check.
_FLOAT_TOKEN = re.compile(rb"[:,\[]-?[0-9]+[.eE]")


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def batch_ok(rows: list[tuple[Any, ...]], datas: list[bytes], has_columns: bool) -> bool:
    """True when every entry is the RFC 8785 canonical JSON of a well-formed entry and equals
    its searchable columns (the leaf hashes are compared by the caller)."""
    n = len(datas)
    try:
        parsed = list(map(orjson.loads, datas))
        if set(map(type, parsed)) != {dict} or set(map(len, parsed)) != {9}:
            return False
        # Nine keys, and these nine are there: exactly the entry's keys.
        columns = list(map(_JSON_COLUMNS, parsed))
        versions = list(map(_VERSION, parsed))
        details = list(map(_DETAILS, parsed))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    if set(map(type, versions)) != {int} or versions.count(1) != n:
        return False
    if set(map(type, details)) != {dict}:
        return False
    if has_columns:
        # Equal to the database's columns, and text (or NULL where allowed) on both sides: Python
        # equality alone would take a JSON true for a column holding 1.
        if list(map(_ROW_COLUMNS, rows)) != columns:
            return False
        if not set(map(type, chain.from_iterable(columns))) <= _OPTIONAL_STR:
            return False
        if None in set(chain.from_iterable(map(_REQUIRED_COLUMNS, columns))):
            return False
    else:
        for getter in _REQUIRED_TEXT:
            if set(map(type, map(getter, columns))) != _STR:
                return False
        for getter in _OPTIONAL_TEXT:
            if not set(map(type, map(getter, columns))) <= _OPTIONAL_STR:
                return False
    stamps = list(map(_TS, columns))
    if set(map(type, stamps)) != _STR or not all(map(str.isdigit, stamps)):
        return False
    if ",0" in "," + ",".join(stamps):
        return False  # a leading zero is not the canonical form of a timestamp (nor is 0 likely)
    # Each entry must be its own canonical form. orjson's sorted output of the parsed batch,
    # compared with the stored bytes joined the same way: equal only if every entry's own
    # re-serialisation is byte for byte its stored bytes (a JSON text parsed alone cannot end
    # early, so the pieces cannot shift across the commas).
    try:
        if orjson.dumps(parsed, option=_CANONICAL) != b"[" + b",".join(datas) + b"]":
            return False
    except orjson.JSONEncodeError:
        return False  # an integer beyond 2**53
    # orjson and RFC 8785 agree on everything else; these few take the exact reference check.
    suspects: set[int] = set()
    if not all(map(bytes.isascii, datas)):
        suspects.update(i for i, data in enumerate(datas) if not data.isascii())
    if _FLOAT_TOKEN.search(orjson.dumps(details)):
        suspects.update(i for i, value in enumerate(details) if _has_float(value))
    for i in suspects:
        try:
            parse_entry(datas[i])
        except MalformedEntryError:
            return False
    return True


#: The searchable columns in the order their keys come in a canonical entry (action, actor,
#: client_ip, | details |, outcome, request_id, subject, ts) from a row with columns.
_COLUMNS_IN_BODY_ORDER = itemgetter(5, 4, 9, 6, 8, 7, 3)
_DETAILS_KEY = b',"details":'
_OUTCOME_KEY = b',"outcome":'
#: Turn what surrounds `details` in a canonical body into the JSON array of its values.
_KEYS_TO_ARRAY = (
    (b'{"action":', b"["),
    (b',"actor":', b","),
    (b',"client_ip":', b","),
    (b',"outcome":', b","),
    (b',"request_id":', b","),
    (b',"subject":', b","),
    (b',"ts":', b","),
    (b',"v":1}', b"]"),
)
_COLUMN_CHUNK = 4096
_concat: Callable[[bytes, bytes], bytes] = bytes.__add__


def column_suspects(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows (with columns) whose searchable columns may differ from their bodies, found
    without parsing JSON; the caller re-checks them exactly (`_recheck_entry`).

    A canonical entry's keys come in a fixed order: `action`, `actor` and `client_ip` before
    `details`, then `outcome`, `request_id`, `subject`, `ts`, `v`. Only `details` is arbitrary,
    and it sits between the first `,"details":` (nothing before it can hold that text outside a
    string, and a string cannot hold an unescaped quote) and the last `,"outcome":` (nothing after
    it can either). What surrounds it, with the key names replaced by commas, is the JSON array of
    the column values, which orjson writes from the columns in one call for thousands of rows at
    once: a byte-for-byte comparison with no parse. Equal text means equal values and JSON types
    (a number where the body has a string, a NULL where it has a string, a bytes column all
    differ); where orjson's text can differ from RFC 8785's (U+2028/U+2029) or cannot be written
    (lone surrogates), rows are flagged, never passed. A body that is not canonical does not come
    out as this array, so it is flagged too, unless it was built to look canonical around its
    `details`: such bytes are what the canonical-form check (exact, or sampled under a signed
    root: docs/decisions/0014-audit-log.md, Verifying) is for.
    """
    flagged: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), _COLUMN_CHUNK):
        chunk = rows[start : start + _COLUMN_CHUNK]
        if not _columns_agree(chunk):
            flagged.extend(row for row in chunk if not _columns_agree([row]))
    return flagged


def _columns_agree(rows: list[tuple[Any, ...]]) -> bool:
    datas = list(map(ROW_DATA, rows))
    try:
        heads: Iterator[bytes] = map(
            getitem, datas, map(slice, repeat(None), map(bytes.find, datas, repeat(_DETAILS_KEY)))
        )
        tails: Iterator[bytes] = map(
            getitem, datas, map(slice, map(bytes.rfind, datas, repeat(_OUTCOME_KEY)), repeat(None))
        )
        around = b"[" + b",".join(map(_concat, heads, tails)) + b"]"
        expected = orjson.dumps(list(map(_COLUMNS_IN_BODY_ORDER, rows)))
    except (TypeError, orjson.JSONEncodeError):
        return False  # a body that is not bytes, a column JSON cannot hold
    for key, replacement in _KEYS_TO_ARRAY:
        around = around.replace(key, replacement)
    return around == expected


def recheck_batch(
    report: VerifyReport,
    rows: list[tuple[Any, ...]],
    computed: list[bytes],
    first: int,
    has_columns: bool,
) -> None:
    """Entry by entry: what exactly is wrong, and where first."""
    report.rechecked_batches += 1
    for i, row in enumerate(rows):
        index = first + i
        if computed[i] != row[2]:
            report.fail(f"entry {index}: its bytes do not match its stored leaf hash", index)
        recheck_entry(report, index, row, has_columns)


def recheck_entry(report: VerifyReport, index: int, row: tuple[Any, ...], columns: bool) -> None:
    """The reference check of one entry's form (and columns, when the row has them)."""
    data = row[1]
    if type(data) is not bytes:
        report.fail(f"entry {index}: stored as {type(data).__name__}, not bytes", index)
        return
    try:
        record = parse_entry(data)
        if columns and entry_columns(record) != tuple(row[3:10]):
            report.fail(f"entry {index}: its searchable columns differ from its bytes", index)
    except MalformedEntryError as exc:
        report.fail(f"entry {index}: not a canonical audit entry ({exc})", index)


def recheck_exactly(report: VerifyReport, batches: Iterable[EntryBatch]) -> None:
    """Re-check entries (rows with their columns) one by one with the reference check, adding
    what is wrong to `report`: how a suspect range (a signed root that does not match) is
    narrowed down to the entries it holds that are not canonical or disagree with their columns.
    """
    named = VerifyReport()
    for batch in batches:
        for row in batch.rows:
            recheck_entry(named, int(row[0]), row, batch.has_columns)
    for problem in named.problems:
        report.fail(problem)
    if named.first_bad_seq is not None and (
        report.first_bad_seq is None
        or report.first_bad_is_range
        or named.first_bad_seq < report.first_bad_seq
    ):
        report.first_bad_seq = named.first_bad_seq
        report.first_bad_is_range = False


def check_sampled(
    report: VerifyReport,
    rows: list[tuple[Any, ...]],
    datas: list[bytes],
    lo: int,
    exact_from: int,
    sample_every: int,
    suspects: list[tuple[Any, ...]],
) -> None:
    """A batch whose columns the database checked: the flagged entries exactly (with their
    columns), and the canonical form of the entries that need it (see the module docstring)."""
    for row in suspects:
        recheck_entry(report, int(row[0]), row, True)
    n = len(rows)
    if lo + n <= exact_from:
        chosen: set[int] = set()
        if not all(map(bytes.isascii, datas)):
            chosen.update(i for i, data in enumerate(datas) if not data.isascii())
        if n:
            # Unpredictable: whoever could write a bad entry cannot know where the sample falls
            # (a generator seeded from the OS's CSPRNG for each batch; never shown to anyone).
            sampler = random.Random(secrets.randbits(128))
            chosen.update(sampler.sample(range(n), -(-n // sample_every)))
        indices = sorted(chosen)
    else:
        indices = list(range(n))
    if suspects:
        # Already checked in full, columns and all: named once.
        flagged = {int(row[0]) - lo for row in suspects}
        indices = [i for i in indices if i not in flagged]
    report.canonical_checked += len(indices) + len(suspects)
    subset = [rows[i] for i in indices]
    if subset and not batch_ok(subset, [datas[i] for i in indices], False):
        report.rechecked_batches += 1
        for i, row in zip(indices, subset, strict=True):
            recheck_entry(report, lo + i, row, False)
