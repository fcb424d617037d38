"""Key providers: who holds the key-encryption key (KEK) and wraps data keys with it.

The vault never sees a KEK directly; it asks a `KeyProvider` to wrap and unwrap 32-byte data keys.
`LocalKeyProvider` holds the KEK in process memory (from `RAMPART_VAULT__KEK`, its `_FILE` variant,
or a generated dev key). A KMS or HSM provider implements the same three members and keeps the KEK
inside the device: `wrap` and `unwrap` become calls to it, and nothing else changes.

Each wrapped key records the `kek_id` that wrapped it, so a provider can hold the previous KEKs
during a KEK rotation and `rampart keys rotate-kek` can find what still needs re-wrapping.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from rampart.kernel.secret import Secret
from rampart.vault.domain import UnreadableError, aead_unwrap, aead_wrap, key_fingerprint


class KeyProvider(Protocol):
    @property
    def kek_id(self) -> str:
        """The id of the KEK that `wrap` uses now."""
        ...

    def wrap(self, key: bytes, context: bytes) -> bytes:
        """`key` encrypted and authenticated under the current KEK, bound to `context`."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        """The key wrapped by KEK `kek_id`; `UnreadableError` if it cannot be recovered."""
        ...


class LocalKeyProvider:
    """AES-256-GCM key wrapping under a KEK held in memory, plus previous KEKs for unwrapping."""

    def __init__(self, kek: Secret[bytes], previous: list[Secret[bytes]] | None = None) -> None:
        current = kek.reveal()
        self._keks: dict[str, bytes] = {}
        for old in previous or []:
            self._keks[self._id(old.reveal())] = old.reveal()
        self._kek_id = self._id(current)
        self._keks[self._kek_id] = current

    @staticmethod
    def _id(key: bytes) -> str:
        return "local:" + key_fingerprint(key)

    @property
    def kek_id(self) -> str:
        return self._kek_id

    def wrap(self, key: bytes, context: bytes) -> bytes:
        return aead_wrap(self._keks[self._kek_id], key, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        for known, kek in self._keks.items():
            if hmac.compare_digest(known, kek_id):
                return aead_unwrap(kek, wrapped, context)
        raise UnreadableError()

    def __repr__(self) -> str:
        return f"LocalKeyProvider(kek_id={self._kek_id!r})"
