"""Audit export files: JSON lines with a header, the verifier keys, the checkpoints, then every
entry in order; what `rampart audit verify --file` checks with no database at all."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rampart.audit.batch_check import StoredEntry
from rampart.audit.merkle import HASH_SIZE
from rampart.audit.notes import parse_verifier_key, verifier_key

EXPORT_FORMAT = "rampart-audit-export/1"


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
