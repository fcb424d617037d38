"""The in-process nonce store never forgets a nonce that could still be replayed."""

from __future__ import annotations

import pytest

from rampart.apikeys.nonces import MemoryNonceStore, NonceStoreUnavailableError
from rampart.kernel.clock import FrozenClock


def test_a_full_store_refuses_rather_than_forgets_a_live_nonce() -> None:
    clock = FrozenClock()
    store = MemoryNonceStore(clock, max_entries=2)
    assert store.first_use("k", "nonce-aaaaaaaaaaaaaaaa", 31)
    assert store.first_use("k", "nonce-bbbbbbbbbbbbbbbb", 31)
    # A flood of fresh nonces must not push out one that is still inside its window.
    with pytest.raises(NonceStoreUnavailableError):
        store.first_use("k", "nonce-cccccccccccccccc", 31)
    assert not store.first_use("k", "nonce-aaaaaaaaaaaaaaaa", 31)
    # Once the window has passed, the expired entries make room again.
    clock.advance(32)
    assert store.first_use("k", "nonce-cccccccccccccccc", 31)
