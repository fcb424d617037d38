"""Proofs from stored subtrees: the same proofs as the pure functions, in O(log n) reads."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rampart.audit.db import SUBTREE_MIN_HEIGHT
from rampart.audit.merkle import (
    CompactRange,
    consistency_proof,
    consistency_proof_from,
    fold_subtrees,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    perfect_levels,
    perfect_subtrees,
    root_hash,
)
from rampart.audit.proofs import AuditIntegrityError, ProofUnavailableError
from rampart.audit.writer import prepare
from rampart.bootstrap import Container
from rampart.kernel.context import RequestContext
from rampart.kernel.events import AuditEvent
from tests.audit.support import commit_prepared
from tests.audit.test_integrity import behind_the_apps_back, blob


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(b"entry %d" % i) for i in range(n)]


def stored_nodes(leaves: list[bytes], cuts: list[int]) -> dict[tuple[int, int], bytes]:
    """What the writer stores when the leaves arrive in batches ending at `cuts`."""
    rng = CompactRange()
    nodes: dict[tuple[int, int], bytes] = {}
    start = 0
    for end in [*sorted(set(cuts)), len(leaves)]:
        for height, index, value in rng.extend_recording(leaves[start:end], SUBTREE_MIN_HEIGHT):
            assert (height, index) not in nodes
            nodes[(height, index)] = value
        start = end
    return nodes


def from_store(leaves: list[bytes], nodes: dict[tuple[int, int], bytes]):  # type: ignore[no-untyped-def]
    def piece(height: int, index: int) -> bytes:
        if height >= SUBTREE_MIN_HEIGHT:
            return nodes[(height, index)]
        return root_hash(leaves[index << height : (index + 1) << height])

    def subtree(lo: int, hi: int) -> bytes:
        return fold_subtrees([piece(h, i) for h, i in perfect_subtrees(lo, hi)])

    return subtree


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=700),
    data=st.data(),
)
def test_stored_subtrees_are_every_complete_node_and_give_the_standard_proofs(
    n: int, data: st.DataObject
) -> None:
    leaves = leaves_of(n)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=n), max_size=6))
    nodes = stored_nodes(leaves, cuts)
    levels = perfect_levels(leaves)
    expected = {
        (h, i): value
        for h, level in enumerate(levels)
        if h >= SUBTREE_MIN_HEIGHT
        for i, value in enumerate(level)
    }
    assert nodes == expected
    subtree = from_store(leaves, nodes)
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    assert subtree(0, size) == root_hash(leaves[:size])
    assert inclusion_proof_from(index, size, subtree) == inclusion_proof(leaves[:size], index)
    assert consistency_proof_from(old, size, subtree) == consistency_proof(leaves[:size], old)


def test_perfect_subtrees_split_like_rfc6962() -> None:
    assert perfect_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_subtrees(8, 12) == [(2, 2)]
    with pytest.raises(ValueError):
        perfect_subtrees(2, 6)  # not a range any proof asks for
    with pytest.raises(ValueError):
        perfect_subtrees(3, 3)


def write(container: Container, n: int, batches: list[int]) -> list[bytes]:
    """Append n entries through the writer, in transactions of the given sizes."""
    ctx = RequestContext(request_id="req-1", client_ip="203.0.113.9")
    done = 0
    sizes = [b for b in batches if b > 0] or [n]
    while done < n:
        for size in sizes:
            count = min(size, n - done)
            if count <= 0:
                break
            entries = [
                prepare(AuditEvent("order.placed", subject=f"order:{done + i}"), ctx, 1)
                for i in range(count)
            ]
            commit_prepared(container, entries)
            done += count
    return [e.leaf for e in container.audit.stored_entries(columns=False)]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_proofs_over_the_database_equal_the_pure_ones(
    container: Container, data: st.DataObject
) -> None:
    # One log per backend (hypothesis reuses the fixture): 300 entries in uneven transactions.
    if container.audit.state()[0] == 0:
        write(container, 300, [1, 17, 64, 3, 100, 115])
    leaves = [e.leaf for e in container.audit.stored_entries(columns=False)]
    size = data.draw(st.integers(min_value=1, max_value=len(leaves)))
    seq = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    proof = container.audit.inclusion(seq, size)
    import base64

    assert [base64.b64decode(p) for p in proof["proof"]] == inclusion_proof(leaves[:size], seq)
    assert base64.b64decode(proof["root"]) == root_hash(leaves[:size])
    cons = container.audit.consistency(old, size)
    assert [base64.b64decode(p) for p in cons["proof"]] == consistency_proof(leaves[:size], old)
    assert base64.b64decode(cons["old_root"]) == root_hash(leaves[:old])


def test_a_proof_reads_logarithmically_many_rows(container: Container) -> None:
    n = 5000
    leaves = write(container, n, [2000])
    bound = 3 * n.bit_length() + 16  # ~log2(n) stored subtrees, < 16 leaves, the root's pieces
    for seq in (0, 1234, 4095, 4096, 4999):
        container.audit.inclusion(seq, n)
        assert container.audit.proof_rows_read <= bound
    for old in (1, 17, 4096, 4999):
        container.audit.consistency(old, n)
        assert container.audit.proof_rows_read <= bound
    assert (
        container.audit.inclusion(4999, n)["root"]
        == __import__("base64").b64encode(root_hash(leaves)).decode()
    )


def test_a_damaged_subtree_row_refuses_the_proof_instead_of_lying(container: Container) -> None:
    write(container, 64, [64])
    container.audit_checkpointer.checkpoint()
    container.audit.inclusion(3, 64)
    behind_the_apps_back(
        container,
        f"UPDATE audit_subtree SET hash = {blob(container, b'x' * 32)} WHERE level = 4 AND idx = 1",
    )
    with pytest.raises(AuditIntegrityError):
        container.audit.inclusion(3, 64)
    with pytest.raises(AuditIntegrityError):
        container.audit.consistency(10, 64)
    # Proofs that do not touch the damaged subtree still verify.
    container.audit.inclusion(40, 64)


def test_a_log_without_stored_subtrees_still_proves_from_its_leaves(container: Container) -> None:
    leaves = write(container, 40, [40])
    behind_the_apps_back(container, "DELETE FROM audit_subtree")
    proof = container.audit.inclusion(33, 40)
    import base64

    assert [base64.b64decode(p) for p in proof["proof"]] == inclusion_proof(leaves, 33)
    with pytest.raises(ProofUnavailableError):
        container.audit.inclusion(40, 40)
