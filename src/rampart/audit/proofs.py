"""Inclusion and consistency proofs of the audit log, from O(log n) stored rows.

Proofs are assembled from the stored perfect-subtree hashes (`audit_subtree`) and a few leaf
hashes, whatever the size of the log; each is verified against its root before it is served, and
comes with the signed checkpoint of the same size when there is one (whose root must match), so a
client checks it against a root it got signed, not against our word.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, select, tuple_
from sqlalchemy.orm import Session

from rampart.audit.checkpoints import newest_checkpoint
from rampart.audit.db import (
    SUBTREE_MIN_HEIGHT,
    AuditCheckpointRow,
    AuditEntryRow,
    AuditSubtreeRow,
)
from rampart.audit.merkle import (
    consistency_ranges,
    fold_subtrees,
    inclusion_ranges,
    perfect_subtrees,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from rampart.audit.writer import load_state
from rampart.kernel.errors import ConflictError, UnavailableError
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)

_ENTRY = cast(Table, AuditEntryRow.__table__)
_CHECKPOINT = cast(Table, AuditCheckpointRow.__table__)
_SUBTREE = cast(Table, AuditSubtreeRow.__table__)


class ProofUnavailableError(ConflictError):
    code = "audit-proof-unavailable"
    title = "No proof can be given for these tree sizes"


class AuditIntegrityError(UnavailableError):
    """What the log would prove from disagrees with what it signed: `rampart audit verify`."""

    code = "audit-integrity"
    title = "The audit log failed an integrity check"


class AuditProofs:
    """Proofs that an entry is in the log, and that one tree size extends another."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: Rows the last proof read (hashes and leaves): O(log n), for tests and metrics.
        self.rows_read = 0

    def _size(self, session: Session, size: int | None) -> int:
        current = load_state(session, lock=False).size
        if size is None:
            newest = newest_checkpoint(session)
            size = newest.size if newest is not None else current
        if not 0 < size <= current:
            raise ProofUnavailableError(f"tree_size must be between 1 and {current}")
        return size

    def _signed(self, session: Session, size: int) -> tuple[str, bytes] | None:
        found = session.execute(
            select(_CHECKPOINT.c.note, _CHECKPOINT.c.root).where(_CHECKPOINT.c.size == size)
        ).first()
        return None if found is None else (str(found.note), bytes(found.root))

    def _nodes(
        self, session: Session, ranges: list[tuple[int, int]]
    ) -> Callable[[int, int], bytes]:
        """MTH of any of `ranges` from O(log n) stored rows: the perfect subtrees they split into
        come from `audit_subtree` (or, below its smallest level, from at most 8 leaf hashes)."""
        pieces = {p for lo, hi in ranges for p in perfect_subtrees(lo, hi)}
        stored = sorted(p for p in pieces if p[0] >= SUBTREE_MIN_HEIGHT)
        hashes: dict[tuple[int, int], bytes] = {}
        reads = 0
        if stored:
            rows = session.execute(
                select(_SUBTREE.c.level, _SUBTREE.c.idx, _SUBTREE.c.hash).where(
                    tuple_(_SUBTREE.c.level, _SUBTREE.c.idx).in_(stored)
                )
            ).all()
            reads += len(rows)
            hashes.update({(row.level, row.idx): bytes(row.hash) for row in rows})
        # Small pieces, and any a log written before the subtree table lacks, from the leaves.
        from_leaves = [p for p in pieces if p not in hashes]
        seqs = sorted({seq for h, i in from_leaves for seq in range(i << h, (i + 1) << h)})
        leaves: dict[int, bytes] = {}
        for start in range(0, len(seqs), 500):
            part = seqs[start : start + 500]
            found = session.execute(
                select(_ENTRY.c.seq, _ENTRY.c.leaf_hash).where(
                    _ENTRY.c.seq >= part[0], _ENTRY.c.seq <= part[-1], _ENTRY.c.seq.in_(part)
                )
            ).all()
            reads += len(found)
            leaves.update({row.seq: bytes(row.leaf_hash) for row in found})
        if len(leaves) != len(seqs):
            raise ProofUnavailableError("the log is missing entries; run `rampart audit verify`")
        for h, i in from_leaves:
            hashes[(h, i)] = root_hash([leaves[seq] for seq in range(i << h, (i + 1) << h)])
        self.rows_read = reads

        def subtree(lo: int, hi: int) -> bytes:
            return fold_subtrees([hashes[p] for p in perfect_subtrees(lo, hi)])

        return subtree

    def _check_root(self, session: Session, size: int, root: bytes) -> str | None:
        """The signed note of `size` if any; refuses when what we would prove from disagrees
        with what was signed (a damaged subtree row must never yield a false proof)."""
        signed = self._signed(session, size)
        if signed is not None and signed[1] != root:
            log.critical("audit proof refused: stored hashes disagree with a signed checkpoint")
            raise AuditIntegrityError("The log's stored hashes disagree with its checkpoint.")
        return None if signed is None else signed[0]

    def inclusion(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """The inclusion proof of entry `seq` in the tree of `tree_size` (default: the newest
        checkpoint's size), from O(log n) stored hashes."""
        with self._db.read() as session:
            size = self._size(session, tree_size)
            if not 0 <= seq < size:
                raise ProofUnavailableError("the entry is not in a tree of this size")
            ranges = inclusion_ranges(seq, size)
            subtree = self._nodes(session, [*ranges, (seq, seq + 1), (0, size)])
            leaf = subtree(seq, seq + 1)
            proof = [subtree(lo, hi) for lo, hi in ranges]
            root = subtree(0, size)
            note = self._check_root(session, size, root)
        if not verify_inclusion(leaf, seq, size, proof, root):
            raise AuditIntegrityError("The log's stored hashes do not form a valid proof.")
        b64 = base64.b64encode
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_hash": b64(leaf).decode(),
            "root": b64(root).decode(),
            "proof": [b64(p).decode() for p in proof],
            "checkpoint": note,
        }

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """The consistency proof between two tree sizes, from O(log n) stored hashes."""
        with self._db.read() as session:
            size = self._size(session, new_size)
            if not 0 < old_size <= size:
                raise ProofUnavailableError("old_size must satisfy 0 < old_size <= new_size")
            ranges = consistency_ranges(old_size, size)
            subtree = self._nodes(session, [*ranges, (0, old_size), (0, size)])
            proof = [subtree(lo, hi) for lo, hi in ranges]
            old_root, new_root = subtree(0, old_size), subtree(0, size)
            old_note = self._check_root(session, old_size, old_root)
            new_note = self._check_root(session, size, new_root)
        if not verify_consistency(old_size, size, old_root, new_root, proof):
            raise AuditIntegrityError("The log's stored hashes do not form a valid proof.")
        b64 = base64.b64encode
        return {
            "old_size": old_size,
            "new_size": size,
            "old_root": b64(old_root).decode(),
            "new_root": b64(new_root).decode(),
            "proof": [b64(p).decode() for p in proof],
            "old_checkpoint": old_note,
            "new_checkpoint": new_note,
        }
