"""Verifying the audit log, from its database or from an exported file.

One pass over the entries in sequence order: each entry's leaf hash is recomputed from its bytes
and compared with the stored one, its bytes must be the canonical JSON of an entry, its searchable
columns must equal what the bytes say, and the tree is rebuilt. Wherever a checkpoint was signed,
the rebuilt root must equal the signed one; the stored perfect subtrees (what proofs are built
from) must equal the rebuilt ones. Every checkpoint signature is checked, and finally the newest
checkpoint held outside the database (the sink): a database truncated or rolled back behind it has
fewer entries than it signed, or a different root at that size.

How a batch of entries is checked fast, and where the canonical form is only sampled, is told in
`rampart.audit.batch_check`; export files are read and written by `rampart.audit.export`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

from rampart.audit.batch_check import (
    ROW_DATA,
    ROW_LEAF,
    ROW_SEQ,
    EntryBatch,
    StoredEntry,
    VerifyReport,
    batch_ok,
    batches_of,
    check_sampled,
    column_suspects,
    recheck_batch,
    recheck_entry,
)
from rampart.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    fold_subtrees,
    leaf_hashes,
    perfect_levels,
)
from rampart.audit.notes import verify_checkpoint

#: Stored subtrees start at this height (as `rampart.audit.db.SUBTREE_MIN_HEIGHT`; this module
#: stays free of database imports so that an auditor can run it on an export alone).
SUBTREE_MIN_HEIGHT = 4


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
        seqs = list(map(ROW_SEQ, rows))
        missing: tuple[int, int] | None = None
        if seqs != list(range(lo, lo + len(rows))):
            cut = next(i for i, seq in enumerate(seqs) if seq != lo + i)
            missing = (lo + cut, seqs[cut])
            rows = rows[:cut]
        if rows:
            datas = list(map(ROW_DATA, rows))
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
            if computed != list(map(ROW_LEAF, rows)):
                recheck_batch(report, rows, computed, lo, batch.has_columns)
                if not batch.has_columns:
                    for row in suspects or ():
                        recheck_entry(report, int(row[0]), row, True)
            elif batch.sample_form and batch.has_columns:
                sampled = sampled or lo < exact_from
                flagged = column_suspects(rows)
                check_sampled(report, rows, datas, lo, exact_from, sample_every, flagged)
            elif suspects is None or batch.has_columns:
                report.canonical_checked += len(rows)
                if not batch_ok(rows, datas, batch.has_columns):
                    recheck_batch(report, rows, computed, lo, batch.has_columns)
            else:
                sampled = sampled or lo < exact_from
                check_sampled(report, rows, datas, lo, exact_from, sample_every, suspects)
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
