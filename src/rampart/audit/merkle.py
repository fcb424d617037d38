"""RFC 6962 / RFC 9162 Merkle trees over bytes: hashes, proofs and their verification.

This module is the stable, pure API of the audit log; it has no state and no I/O, so an auditor
can use it (or any other RFC 6962 implementation) to check what the log hands out:

- `leaf_hash(entry)`: SHA-256(0x00 || entry).
- `root_hash(leaf_hashes)`: the Merkle Tree Hash (MTH) of RFC 6962 section 2.1; the empty tree's
  root is SHA-256 of the empty string.
- `inclusion_proof` / `verify_inclusion`: the audit path of RFC 9162 section 2.1.3.
- `consistency_proof` / `verify_consistency`: the consistency proof of RFC 9162 section 2.1.4.

The verifiers return False for every proof that does not verify, malformed ones included (hashes
of the wrong length, extra or missing components, an index or size out of range, wrong types),
and never raise for them. As in RFC 9162, a consistency proof needs 0 < old_size <= new_size;
equal sizes verify only with an empty proof and equal roots. Every hash, root included, must be
32 bytes: a verifier that compared roots of any length would accept what is not a SHA-256 root.

`CompactRange` keeps a growing tree's right border (the roots of its perfect subtrees), which is
all that is needed to append leaves and to compute the root without the leaves themselves.

Proofs from stored subtrees: every node an RFC 9162 proof needs is the hash of a range of leaves
that splits into at most log2(n) perfect subtrees (`perfect_subtrees`). `inclusion_proof_from` and
`consistency_proof_from` build the standard proofs from any `SubtreeHash` function, so a log that
keeps the hashes of its perfect subtrees answers a proof with O(log n) reads; `proof_ranges` and
`consistency_ranges` say in advance which ranges a proof will ask for, so they can be fetched in
one query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import methodcaller

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
#: Runs of at least this many leaves are hashed a whole level at a time.
_BLOCK_MIN = 32

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "consistency_proof_from",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_proof_from",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_levels",
    "perfect_subtrees",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the hash of one log entry's bytes."""
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_leaves(leaf_hashes: Sequence[bytes]) -> None:
    for h in leaf_hashes:
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise ValueError("every leaf hash must be 32 bytes")


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi], bottom-up through a compact range: no recursion, no copies."""
    rng = CompactRange()
    for i in range(lo, hi):
        rng.append(leaves[i])
    return rng.root()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (each 32 bytes)."""
    _check_leaves(leaf_hashes)
    return _mth(leaf_hashes, 0, len(leaf_hashes))


#: A function giving the MTH of the leaves in [lo, hi): lets proofs be built from whatever holds
#: the needed subtree hashes (all leaves, or a compact range plus the newer leaves).
SubtreeHash = Callable[[int, int], bytes]


def _inclusion_path(index: int, lo: int, hi: int, subtree: SubtreeHash) -> list[bytes]:
    path: list[bytes] = []
    # Walk down from the root, then reverse: RFC 9162 lists the path from the leaf up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def _consistency_path(old: int, lo: int, hi: int, subtree: SubtreeHash) -> list[bytes]:
    # RFC 9162 section 2.1.4.1 SUBPROOF(m, D[lo:hi], b), unrolled: each step adds one node.
    nodes: list[bytes] = []
    complete = True
    m = old
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                nodes.append(subtree(lo, hi))
            break
        k = _split(n)
        if m <= k:
            nodes.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            nodes.append(subtree(lo, lo + k))
            lo = lo + k
            m -= k
            complete = False
    nodes.reverse()
    return nodes


def _leaf_subtree(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    def subtree(lo: int, hi: int) -> bytes:
        return _mth(leaf_hashes, lo, hi)

    return subtree


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path proving that leaf `index` is in the tree of `leaf_hashes`.

    Raises ValueError for an index out of range or a leaf hash that is not 32 bytes.
    """
    _check_leaves(leaf_hashes)
    if not 0 <= index < len(leaf_hashes):
        raise ValueError("index out of range")
    return _inclusion_path(index, 0, len(leaf_hashes), _leaf_subtree(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the tree of the first `old_size` leaves is a prefix of the whole tree.

    Needs 0 < old_size <= len(leaf_hashes) (raises ValueError otherwise); equal sizes give [].
    """
    _check_leaves(leaf_hashes)
    if not 0 < old_size <= len(leaf_hashes):
        raise ValueError("old_size must satisfy 0 < old_size <= tree size")
    if old_size == len(leaf_hashes):
        return []
    return _consistency_path(old_size, 0, len(leaf_hashes), _leaf_subtree(leaf_hashes))


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _proof_ok(proof: object) -> bool:
    if isinstance(proof, bytes | str) or not isinstance(proof, Sequence):
        return False
    return all(_is_hash(p) for p in proof)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `proof` shows the leaf with `leaf_hash` at `index` in the tree with `root`.

    RFC 9162 section 2.1.3.2. False (never an exception) for anything malformed.
    """
    try:
        if not (_is_hash(leaf_hash) and _is_hash(root) and _proof_ok(proof)):
            return False
        if not (_is_size(index) and _is_size(tree_size)) or index >= tree_size:
            return False
        fn, sn = index, tree_size - 1
        r = leaf_hash
        for p in proof:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = node_hash(p, r)
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except Exception:  # noqa: BLE001 - a verifier answers False, whatever it was handed
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when `proof` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 section 2.1.4.2, with 0 < old_size <= new_size; equal sizes need an empty proof and
    equal roots. False (never an exception) for anything malformed.
    """
    try:
        if not (_is_hash(old_root) and _is_hash(new_root) and _proof_ok(proof)):
            return False
        if not (_is_size(old_size) and _is_size(new_size)) or not 0 < old_size <= new_size:
            return False
        if old_size == new_size:
            return len(proof) == 0 and old_root == new_root
        nodes = list(proof)
        if not nodes:
            return False
        # When old_size is a power of two its root is itself the first node of the path.
        if old_size & (old_size - 1) == 0:
            nodes.insert(0, old_root)
        fn, sn = old_size - 1, new_size - 1
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = nodes[0]
        for c in nodes[1:]:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                fr = node_hash(c, fr)
                sr = node_hash(c, sr)
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                sr = node_hash(sr, c)
            fn >>= 1
            sn >>= 1
        return sn == 0 and fr == old_root and sr == new_root
    except Exception:  # noqa: BLE001 - a verifier answers False, whatever it was handed
        return False


class CompactRange:
    """The right border of a growing tree: the roots of its perfect subtrees, largest first.

    For a tree of n leaves it holds one hash per set bit of n, so appending a leaf and computing
    the root cost O(log n) without the leaves. This is what the log keeps in its state row.
    """

    __slots__ = ("_border", "size")

    def __init__(self, size: int = 0, border: Sequence[bytes] = ()) -> None:
        if size < 0 or len(border) != size.bit_count():
            raise ValueError("a compact range holds one hash per set bit of its size")
        self.size = size
        self._border = list(border)

    @property
    def border(self) -> list[bytes]:
        return list(self._border)

    def append(self, leaf: bytes) -> None:
        border = self._border
        s = self.size
        h = leaf
        while s & 1:
            h = _sha256(NODE_PREFIX + border.pop() + h).digest()
            s >>= 1
        border.append(h)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def extend_recording(
        self, leaves: Sequence[bytes], min_height: int
    ) -> list[tuple[int, int, bytes]]:
        """Append `leaves`; return every perfect subtree they complete of height >= min_height,
        as (height, index, hash). This is how the log stores the subtrees proofs are built from.
        """
        completed: list[tuple[int, int, bytes]] = []
        border = self._border
        i, n = 0, len(leaves)
        while i < n:
            size = self.size
            # The largest perfect subtree that can go here whole: aligned, and not past the end.
            width = min(size & -size if size else 1 << 62, 1 << ((n - i).bit_length() - 1))
            if width >= _BLOCK_MIN:
                levels = perfect_levels(leaves[i : i + width])
                top = len(levels) - 1
                for height in range(min_height, top + 1):
                    start = size >> height
                    level = levels[height]
                    completed.extend(zip(repeat(height), range(start, start + len(level)), level))
                completed.extend(self.push(levels[top][0], top))
                i += width
                continue
            s = size
            h = leaves[i]
            height = 0
            while s & 1:
                h = _sha256(NODE_PREFIX + border.pop() + h).digest()
                s >>= 1
                height += 1
                if height >= min_height:
                    completed.append((height, ((size + 1) >> height) - 1, h))
            border.append(h)
            self.size += 1
            i += 1
        return completed

    def push(self, node: bytes, height: int) -> list[tuple[int, int, bytes]]:
        """Append a whole perfect subtree of 2**height leaves (the size must be a multiple of
        2**height); return the perfect subtrees this completes above it, as in
        `extend_recording`."""
        width = 1 << height
        if self.size % width:
            raise ValueError("a perfect subtree goes at a multiple of its width")
        completed: list[tuple[int, int, bytes]] = []
        border = self._border
        s = self.size >> height
        h = node
        end = self.size + width
        while s & 1:
            h = _sha256(NODE_PREFIX + border.pop() + h).digest()
            s >>= 1
            height += 1
            completed.append((height, (end >> height) - 1, h))
        border.append(h)
        self.size = end
        return completed

    def root(self) -> bytes:
        border = self._border
        if not border:
            return EMPTY_ROOT
        r = border[-1]
        for i in range(len(border) - 2, -1, -1):
            r = _sha256(NODE_PREFIX + border[i] + r).digest()
        return r

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self._border)

    def pack(self) -> bytes:
        """The border as bytes (32 per hash), for storage."""
        return b"".join(self._border)

    @classmethod
    def unpack(cls, size: int, packed: bytes) -> CompactRange:
        if len(packed) != HASH_SIZE * size.bit_count():
            raise ValueError("packed border does not match the size")
        return cls(size, [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)])

    def subtree(self, lo: int, hi: int) -> bytes | None:
        """The hash of [lo, hi) when it is one of the border's perfect subtrees, else None."""
        start = 0
        position = 0
        for bit in range(self.size.bit_length() - 1, -1, -1):
            width = 1 << bit
            if self.size & width:
                if start == lo and start + width == hi:
                    return self._border[position]
                start += width
                position += 1
        return None


def extension_consistency_proof(old: CompactRange, new_leaves: Sequence[bytes]) -> list[bytes]:
    """A consistency proof from `old` to `old` plus `new_leaves`, without the older leaves.

    Every node of such a proof lies either in the old tree, where it is one of the old border's
    perfect subtrees, or among the new leaves; so the border and the new leaves are enough. This
    is how the log proves each new checkpoint consistent with the last one it signed.
    """
    m = old.size
    n = m + len(new_leaves)
    if not 0 < m < n:
        raise ValueError("needs an old tree that is not empty and at least one new leaf")

    def subtree(lo: int, hi: int) -> bytes:
        if hi <= m:
            found = old.subtree(lo, hi)
            if found is None:
                raise ValueError("the old border does not hold this subtree")
            return found
        if lo < m:
            raise ValueError("a consistency proof never spans the old tree's edge")
        return _mth(new_leaves, lo - m, hi - m)

    return _consistency_path(m, 0, n, subtree)


# --- Proofs from stored perfect subtrees ---------------------------------------------------
_digest = methodcaller("digest")


def perfect_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees whose MTHs make up the MTH of leaves [lo, hi), left to right.

    Each is (height, index): the node covering leaves [index << height, (index + 1) << height).
    RFC 6962 splits n leaves at the largest power of two below n, so [lo, hi) is the perfect
    subtrees of the set bits of hi - lo, largest first; `lo` must be a multiple of the first one's
    width, which holds for every range a proof asks for (they come from splitting the tree).
    """
    if not 0 <= lo < hi:
        raise ValueError("needs 0 <= lo < hi")
    pieces = []
    start = lo
    n = hi - lo
    for height in range(n.bit_length() - 1, -1, -1):
        if n >> height & 1:
            if start % (1 << height):
                raise ValueError("the range is not aligned to the tree's subtrees")
            pieces.append((height, start >> height))
            start += 1 << height
    return pieces


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """The MTH of consecutive perfect subtrees given largest first (as `perfect_subtrees`)."""
    r = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        r = _sha256(NODE_PREFIX + hashes[i] + r).digest()
    return r


def _recording() -> tuple[list[tuple[int, int]], SubtreeHash]:
    ranges: list[tuple[int, int]] = []

    def record(lo: int, hi: int) -> bytes:
        ranges.append((lo, hi))
        return EMPTY_ROOT

    return ranges, record


def inclusion_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose MTHs form the inclusion proof of `index` (leaf first)."""
    if not 0 <= index < tree_size:
        raise ValueError("index out of range")
    ranges, record = _recording()
    _inclusion_path(index, 0, tree_size, record)
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs form the consistency proof from old_size to new_size."""
    if not 0 < old_size <= new_size:
        raise ValueError("old_size must satisfy 0 < old_size <= new_size")
    if old_size == new_size:
        return []
    ranges, record = _recording()
    _consistency_path(old_size, 0, new_size, record)
    ranges.reverse()
    return ranges


def inclusion_proof_from(index: int, tree_size: int, subtree: SubtreeHash) -> list[bytes]:
    """`inclusion_proof` for a tree known only through `subtree(lo, hi)` (the MTH of a range)."""
    return [subtree(lo, hi) for lo, hi in inclusion_ranges(index, tree_size)]


def consistency_proof_from(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """`consistency_proof` for a tree known only through `subtree(lo, hi)`."""
    return [subtree(lo, hi) for lo, hi in consistency_ranges(old_size, new_size)]


def perfect_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every complete node above `leaves`, level by level: levels[0] is the leaves themselves and
    levels[h][j] the root of leaves [j << h, (j + 1) << h) (complete pairs only).

    Built a whole level at a time with C-level `map`s: this is what makes full verification fast.
    The leaves must start at a multiple of 2**len(levels) for the nodes to be the tree's own.
    """
    level = list(leaves)
    levels = [level]
    join = NODE_PREFIX.__add__
    while len(level) > 1:
        level = list(
            map(_digest, map(_sha256, map(join, map(bytes.__add__, level[0::2], level[1::2]))))
        )
        levels.append(level)
    return levels


def leaf_hashes(entries: Sequence[bytes]) -> list[bytes]:
    """`leaf_hash` of every entry, in one C-level pass."""
    return list(map(_digest, map(_sha256, map(LEAF_PREFIX.__add__, entries))))
