"""Verifying the audit log, from its database or from an exported file.

One pass over the entries in sequence order: each entry's leaf hash is recomputed from its bytes
and compared with the stored one, its bytes must be the canonical JSON of an entry, its searchable
columns must equal what the bytes say, and the tree is rebuilt. Wherever a checkpoint was signed,
the rebuilt root must equal the signed one; the stored perfect subtrees (what proofs are built
from) must equal the rebuilt ones. Every checkpoint signature is checked, and finally the newest
checkpoint held outside the database (the sink): a database truncated or rolled back behind it has
fewer entries than it signed, or a different root at that size.

Speed without skipping anything: entries come in batches of `BATCH`, and each check runs over a
whole batch in a few C-level calls (`_batch_ok`): hashlib through `map`, the tree a level at a
time, orjson parsing every entry and re-serialising the batch for a byte-for-byte comparison, list
comparisons for the columns. Where orjson's canonical form could differ from RFC 8785 (non-ASCII
text, floats) the entry takes the reference check. A batch that fails anything is re-checked entry
by entry (`_recheck`) to name the first bad entry and say why; tests hold the two to the same
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

import base64
import gc
import random
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import getitem, itemgetter
from pathlib import Path
from typing import Any

import orjson

from rampart.audit.domain import (
    MalformedEntryError,
    parse_entry,
    parse_verifier_key,
    verifier_key,
    verify_checkpoint,
)
from rampart.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    fold_subtrees,
    leaf_hashes,
    perfect_levels,
)

#: Stored subtrees start at this height (as `rampart.audit.db.SUBTREE_MIN_HEIGHT`; this module
#: stays free of database imports so that an auditor can run it on an export alone).
SUBTREE_MIN_HEIGHT = 4

EXPORT_FORMAT = "rampart-audit-export/1"


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


# --- Checking a batch of entries ---------------------------------------------------------------
# The fast check runs every test on every entry, a whole batch per C-level call (orjson, hashlib,
# map/itemgetter, list comparison); it says only "all good" or "something is wrong here". When
# something is wrong, `_recheck` goes entry by entry with `parse_entry` to name the entry and why.
_SEQ = itemgetter(0)
_DATA = itemgetter(1)
_LEAF = itemgetter(2)
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


def _batch_ok(rows: list[tuple[Any, ...]], datas: list[bytes], has_columns: bool) -> bool:
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
    datas = list(map(_DATA, rows))
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


def _recheck(
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
        _recheck_entry(report, index, row, has_columns)


def _recheck_entry(report: VerifyReport, index: int, row: tuple[Any, ...], columns: bool) -> None:
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
            _recheck_entry(named, int(row[0]), row, batch.has_columns)
    for problem in named.problems:
        report.fail(problem)
    if named.first_bad_seq is not None and (
        report.first_bad_seq is None
        or report.first_bad_is_range
        or named.first_bad_seq < report.first_bad_seq
    ):
        report.first_bad_seq = named.first_bad_seq
        report.first_bad_is_range = False


def _check_sampled(
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
        _recheck_entry(report, int(row[0]), row, True)
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
    if subset and not _batch_ok(subset, [datas[i] for i in indices], False):
        report.rechecked_batches += 1
        for i, row in zip(indices, subset, strict=True):
            _recheck_entry(report, lo + i, row, False)


def _pieces(levels: list[list[bytes]], count: int) -> list[tuple[int, bytes]]:
    """The perfect subtrees of the first `count` leaves of a batch, largest first."""
    out = []
    offset = 0
    for height in range(count.bit_length() - 1, -1, -1):
        if count >> height & 1:
            out.append((height, levels[height][offset >> height]))
            offset += 1 << height
    return out


def _subtree_problem(
    expected: dict[tuple[int, int], bytes], stored: dict[tuple[int, int], bytes]
) -> str | None:
    if expected == stored:
        return None
    for key in sorted(set(expected) | set(stored)):
        if expected.get(key) != stored.get(key):
            what = "missing" if key not in stored else "wrong" if key in expected else "extra"
            return (
                f"stored subtree hash (level {key[0]}, index {key[1]}) is {what}: proofs that "
                "need it are refused until it is repaired"
            )
    return None


def verify_log(
    entries: Iterable[StoredEntry] | None = None,
    *,
    batches: Iterable[EntryBatch] | None = None,
    checkpoint_notes: Iterable[str],
    keys: list[tuple[str, bytes]],
    origin: str | None,
    sink_note: str | None = None,
    sink_keys: list[tuple[str, bytes]] | None = None,
    expected_size: int | None = None,
    state: tuple[int, bytes] | None = None,
    progress: Callable[[int], None] | None = None,
    sample_every: int = 16,
) -> VerifyReport:
    """Check a whole log; `report.ok` is True only when nothing at all is wrong.

    The entries come one by one (`entries`) or, faster, in batches (`batches`). `keys` verify the
    checkpoints stored with the log; `sink_keys` (default: `keys`) the one from the sink, which
    should be keys the verifier trusts independently of the database. Batches whose columns the
    database checked (`EntryBatch.column_suspects`) have their canonical form checked exactly
    after the newest signed checkpoint and one entry in `sample_every` before it (plus every
    non-ASCII entry); every other batch is checked exactly throughout.
    """
    report = VerifyReport()
    signed: dict[int, bytes] = {}
    for note in checkpoint_notes:
        checkpoint = verify_checkpoint(note, keys, origin)
        if checkpoint is None:
            first = note.split("\n", 2)[:2]
            report.fail(f"checkpoint {' '.join(first)!r}: the signature does not verify")
            continue
        if checkpoint.size in signed and signed[checkpoint.size] != checkpoint.root:
            report.fail(f"two different signed roots for size {checkpoint.size}: a fork")
        signed[checkpoint.size] = checkpoint.root
        report.checkpoints += 1
    sink_size: int | None = None
    sink_root = b""
    if sink_note is not None:
        sink_checkpoint = verify_checkpoint(sink_note, sink_keys or keys, origin)
        if sink_checkpoint is None:
            report.fail("the newest shipped checkpoint's signature does not verify")
        else:
            sink_size, sink_root = sink_checkpoint.size, sink_checkpoint.root
            report.sink_size = sink_size
    wanted = set(signed)
    if sink_size is not None:
        wanted.add(sink_size)
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = EMPTY_ROOT

    if batches is None:
        batches = batches_of(entries or ())
    # The batch checks make and drop millions of small objects and no cycles: the cyclic
    # collector would only walk them again and again (it cost two thirds of the time).
    # Entries past every signed size are authenticated by no signature: their form is checked
    # exactly. (A signed size whose root turns out wrong is a suspect range, re-checked later.)
    exact_from = max(wanted, default=0)
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _verify_entries(
            report,
            batches,
            signed,
            wanted,
            roots,
            sink_size,
            sink_root,
            expected_size,
            state,
            progress,
            (exact_from, max(1, sample_every)),
        )
    finally:
        if collecting:
            gc.enable()


def _verify_entries(
    report: VerifyReport,
    batches: Iterable[EntryBatch],
    signed: dict[int, bytes],
    wanted: set[int],
    roots: dict[int, bytes],
    sink_size: int | None,
    sink_root: bytes,
    expected_size: int | None,
    state: tuple[int, bytes] | None,
    progress: Callable[[int], None] | None,
    sampling: tuple[int, int],
) -> VerifyReport:
    exact_from, sample_every = sampling
    sampled = False
    ordered_wanted = sorted(s for s in wanted if s > 0)
    next_wanted = 0
    rng = CompactRange()
    last_good_checkpoint = 0
    for batch in batches:
        rows = batch.rows
        lo = rng.size
        seqs = list(map(_SEQ, rows))
        missing: tuple[int, int] | None = None
        if seqs != list(range(lo, lo + len(rows))):
            cut = next(i for i, seq in enumerate(seqs) if seq != lo + i)
            missing = (lo + cut, seqs[cut])
            rows = rows[:cut]
        if rows:
            datas = list(map(_DATA, rows))
            if set(map(type, datas)) != {bytes}:
                # Named here, then hashed as the bytes they hold so the tree is still checked.
                for i, data in enumerate(datas):
                    if type(data) is not bytes:
                        kind = type(data).__name__
                        report.fail(f"entry {lo + i}: stored as {kind}, not bytes", lo + i)
                datas = [d if type(d) is bytes else _as_bytes(d) for d in datas]
                rows = [(r[0], d, *r[2:]) for r, d in zip(rows, datas, strict=True)]
            computed = leaf_hashes(datas)
            suspects = batch.column_suspects
            if computed != list(map(_LEAF, rows)):
                _recheck(report, rows, computed, lo, batch.has_columns)
                if not batch.has_columns:
                    for row in suspects or ():
                        _recheck_entry(report, int(row[0]), row, True)
            elif batch.sample_form and batch.has_columns:
                sampled = sampled or lo < exact_from
                flagged = column_suspects(rows)
                _check_sampled(report, rows, datas, lo, exact_from, sample_every, flagged)
            elif suspects is None or batch.has_columns:
                report.canonical_checked += len(rows)
                if not _batch_ok(rows, datas, batch.has_columns):
                    _recheck(report, rows, computed, lo, batch.has_columns)
            else:
                sampled = sampled or lo < exact_from
                _check_sampled(report, rows, datas, lo, exact_from, sample_every, suspects)
            n = len(rows)
            levels: list[list[bytes]] | None = None
            if lo % (1 << (n - 1).bit_length()) == 0:
                levels = perfect_levels(computed)
            # Roots wherever a checkpoint was signed (or shipped) inside this batch.
            while next_wanted < len(ordered_wanted) and ordered_wanted[next_wanted] <= lo + n:
                size = ordered_wanted[next_wanted]
                next_wanted += 1
                if levels is not None:
                    border = rng.border + [h for _, h in _pieces(levels, size - lo)]
                    root = fold_subtrees(border)
                else:
                    partial = rng.copy()
                    partial.extend(computed[: size - lo])
                    root = partial.root()
                roots[size] = root
                if size in signed:
                    if signed[size] != root:
                        if report.first_bad_seq is None:
                            report.first_bad_is_range = True
                        report.fail(
                            f"entries {last_good_checkpoint}..{size - 1} differ from what "
                            f"checkpoint {size} signed",
                            last_good_checkpoint if report.first_bad_seq is None else None,
                        )
                        if sampled:
                            report.suspect_ranges.append((last_good_checkpoint, size))
                    else:
                        last_good_checkpoint = size
            completed: list[tuple[int, int, bytes]] = []
            if levels is not None:
                for height, node in _pieces(levels, n):
                    completed.extend(rng.push(node, height))
            else:
                completed = rng.extend_recording(computed, SUBTREE_MIN_HEIGHT)
            if batch.subtrees is not None:
                expected = {(h, i): node for h, i, node in completed}
                if levels is not None:
                    for height in range(SUBTREE_MIN_HEIGHT, len(levels)):
                        base = lo >> height
                        expected.update(
                            zip(
                                zip(repeat(height), range(base, base + len(levels[height]))),
                                levels[height],
                                strict=True,
                            )
                        )
                problem = _subtree_problem(expected, batch.subtrees)
                if problem is not None:
                    report.fail(problem)
        if progress is not None:
            progress(rng.size)
        if missing is not None:
            report.fail(
                f"entry {missing[0]} is missing (found {missing[1]} in its place)", missing[0]
            )
            break
    report.entries = rng.size
    report.root = rng.root()
    if progress is not None:
        progress(rng.size)
    for size in sorted(signed):
        if size > rng.size:
            report.fail(f"checkpoint {size} was signed but the log holds {rng.size} entries")
    if (
        sampled
        and sink_size is not None
        and sink_size not in signed
        and sink_size <= rng.size
        and roots.get(sink_size) != sink_root
    ):
        report.suspect_ranges.append((last_good_checkpoint, sink_size))
    if sink_size is not None:
        if sink_size > rng.size:
            report.fail(
                f"the shipped checkpoint covers {sink_size} entries but the log holds "
                f"{rng.size}: entries were removed or rolled back",
                rng.size,
            )
        elif roots.get(sink_size) != sink_root:
            report.fail(f"the log's first {sink_size} entries differ from the shipped checkpoint")
    if expected_size is not None and expected_size != rng.size:
        report.fail(f"expected {expected_size} entries, found {rng.size}")
    if state is not None and state != (rng.size, rng.root()):
        report.fail("the stored tree state does not match the entries")
    return report


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return bytes(value)


# --- Export files ---------------------------------------------------------------------------
def export_lines(
    origin: str,
    size: int,
    keys: Iterable[dict[str, Any]],
    checkpoint_notes: Iterable[str],
    entries: Iterable[StoredEntry],
    exported_at_ns: int,
) -> Iterator[bytes]:
    """The export file, as JSON lines: header, keys, checkpoints, then every entry in order."""
    yield (
        orjson.dumps(
            {
                "type": "header",
                "format": EXPORT_FORMAT,
                "origin": origin,
                "size": size,
                "exported_at_ns": str(exported_at_ns),
            }
        )
        + b"\n"
    )
    for key in keys:
        yield orjson.dumps({"type": "key", **key}) + b"\n"
    for note in checkpoint_notes:
        yield orjson.dumps({"type": "checkpoint", "note": note}) + b"\n"
    for entry in entries:
        yield (
            orjson.dumps(
                {
                    "type": "entry",
                    "seq": entry.seq,
                    "entry": base64.b64encode(entry.data).decode(),
                    "leaf_hash": entry.leaf.hex(),
                }
            )
            + b"\n"
        )


class ExportFormatError(ValueError):
    pass


@dataclass
class ExportFile:
    origin: str
    size: int
    keys: list[tuple[str, bytes]]
    checkpoint_notes: list[str]
    path: Path

    def entries(self) -> Iterator[StoredEntry]:
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.startswith(b'{"type":"entry"'):
                    continue
                try:
                    item = orjson.loads(line)
                    leaf = bytes.fromhex(item["leaf_hash"])
                    data = base64.b64decode(item["entry"], validate=True)
                    seq = item["seq"]
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise ExportFormatError(f"line {number}: malformed entry") from exc
                if not isinstance(seq, int) or len(leaf) != HASH_SIZE:
                    raise ExportFormatError(f"line {number}: malformed entry")
                yield StoredEntry(seq, data, leaf)


def read_export(path: Path) -> ExportFile:
    """The header, keys and checkpoints of an export file (entries are streamed later)."""
    keys: list[tuple[str, bytes]] = []
    notes: list[str] = []
    header: dict[str, Any] | None = None
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith(b'{"type":"entry"'):
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ExportFormatError(f"line {number}: not JSON") from exc
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "header":
                header = item
            elif kind == "key":
                keys.append(parse_verifier_key(str(item.get("verifier_key", ""))))
            elif kind == "checkpoint" and isinstance(item.get("note"), str):
                notes.append(item["note"])
            else:
                raise ExportFormatError(f"line {number}: unknown record")
    if header is None or header.get("format") != EXPORT_FORMAT:
        raise ExportFormatError(f"not a {EXPORT_FORMAT} file")
    size = header.get("size")
    if not isinstance(size, int) or not isinstance(header.get("origin"), str):
        raise ExportFormatError("malformed header")
    return ExportFile(header["origin"], size, keys, notes, path)


def key_record(name: str, public_key: bytes, valid_from_ns: int, retired_at_ns: int | None) -> dict:
    return {
        "verifier_key": verifier_key(name, public_key),
        "valid_from_ns": str(valid_from_ns),
        "retired_at_ns": None if retired_at_ns is None else str(retired_at_ns),
    }
