"""Verifying the audit log, from its database or from an exported file.

One pass over the entries in sequence order: each entry's leaf hash is recomputed from its bytes
and compared with the stored one, its bytes must be the canonical JSON of an entry, its searchable
columns must equal what the bytes say, and the tree is rebuilt leaf by leaf. Wherever a checkpoint
was signed, the rebuilt root must equal the signed one. Every checkpoint signature is checked, and
finally the newest checkpoint held outside the database (the sink): a database truncated or
rolled back behind it has fewer entries than it signed, or a different root at that size.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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
from rampart.audit.merkle import HASH_SIZE, CompactRange, leaf_hash

EXPORT_FORMAT = "rampart-audit-export/1"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored: its bytes, its stored leaf hash, and its searchable columns."""

    seq: int
    data: bytes
    leaf: bytes
    columns: tuple[Any, ...] | None = None


@dataclass
class VerifyReport:
    entries: int = 0
    root: bytes = b""
    checkpoints: int = 0
    #: The first entry that does not match, and why.
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    sink_size: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, seq: int | None = None) -> None:
        if seq is not None and self.first_bad_seq is None:
            self.first_bad_seq = seq
        if len(self.problems) < 100:
            self.problems.append(message)


def _columns(record: Any) -> tuple[Any, ...]:
    return (
        record.ts_ns,
        record.actor,
        record.action,
        record.outcome,
        record.subject,
        record.request_id,
        record.client_ip,
    )


def verify_log(
    entries: Iterable[StoredEntry],
    *,
    checkpoint_notes: Iterable[str],
    keys: list[tuple[str, bytes]],
    origin: str | None,
    sink_note: str | None = None,
    sink_keys: list[tuple[str, bytes]] | None = None,
    expected_size: int | None = None,
    state: tuple[int, bytes] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check a whole log; `report.ok` is True only when nothing at all is wrong.

    `keys` verify the checkpoints stored with the log; `sink_keys` (default: `keys`) the one from
    the sink, which should be keys the verifier trusts independently of the database.
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
        roots[0] = CompactRange().root()

    rng = CompactRange()
    last_good_checkpoint = 0
    for entry in entries:
        index = rng.size
        if entry.seq != index:
            report.fail(f"entry {index} is missing (found {entry.seq} in its place)", index)
            break
        computed = leaf_hash(entry.data)
        if computed != entry.leaf:
            report.fail(f"entry {index}: its bytes do not match its stored leaf hash", index)
        try:
            record = parse_entry(entry.data)
            if entry.columns is not None and _columns(record) != entry.columns:
                report.fail(f"entry {index}: its searchable columns differ from its bytes", index)
        except MalformedEntryError as exc:
            report.fail(f"entry {index}: not a canonical audit entry ({exc})", index)
        rng.append(computed)
        size = rng.size
        if size in wanted:
            root = rng.root()
            roots[size] = root
            if size in signed:
                if signed[size] != root:
                    report.fail(
                        f"entries {last_good_checkpoint}..{size - 1} differ from what "
                        f"checkpoint {size} signed",
                        last_good_checkpoint if report.first_bad_seq is None else None,
                    )
                else:
                    last_good_checkpoint = size
        if progress is not None and size % 65536 == 0:
            progress(size)
    report.entries = rng.size
    report.root = rng.root()
    if progress is not None:
        progress(rng.size)
    for size in sorted(signed):
        if size > rng.size:
            report.fail(f"checkpoint {size} was signed but the log holds {rng.size} entries")
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
