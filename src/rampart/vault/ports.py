"""What other domains need of the vault, as interfaces.

`Sealer`: encryption at rest. A value is sealed for one purpose and one place
(`SealContext`: table, column, row) and opens only there; optionally under a per-user key, so
that `Shredder.shred_user` can make everything of one person unreadable at once (erasure by
destroying keys, not by finding every copy). Every failure to open is one opaque
`UnreadableError` (`ShreddedError` for the owner of shredded data).

Implemented by `rampart.vault.service.VaultService` (keys wrapped by the key provider, stored
in the database, rotated) and `rampart.vault.memory.InMemoryVault` (keys in this process only);
`tests/vault/test_sealer_contract.py` holds both to the same behaviour.
"""

from __future__ import annotations

from typing import Any, Protocol

from rampart.kernel.secret import Secret
from rampart.vault.domain import Purpose, SealContext
from rampart.vault.keys import SessionLike


class Sealer(Protocol):
    def seal(
        self,
        db: SessionLike,
        purpose: Purpose,
        plaintext: bytes | str | Secret[Any],
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> bytes:
        """Encrypt `plaintext` for `context` (under `user_id`'s own key when given)."""
        ...

    def open(
        self,
        db: SessionLike,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[bytes]:
        """Decrypt a value sealed for exactly this purpose, context and user."""
        ...

    def open_text(
        self,
        db: SessionLike,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[str]: ...

    def blind_index(self, db: SessionLike, index: str, value: bytes | str) -> str:
        """A keyed hash of `value` for equality lookups: equal in one index, unrelated across
        indexes."""
        ...


class Shredder(Protocol):
    def shred_user(self, db: SessionLike, user_id: str) -> int:
        """Destroy every per-user key of `user_id`; returns how many were destroyed."""
        ...

    def is_shredded(self, db: SessionLike, user_id: str) -> bool: ...
