"""Seal and open values, and blind indexes: the part of the vault every domain calls.

See the docstring of `rampart.vault.service` for the calling conventions.
"""

from __future__ import annotations

from typing import Any

from rampart.config import VaultSettings
from rampart.kernel.secret import Secret
from rampart.vault.domain import (
    BLIND_INDEX_FAMILY,
    Header,
    PlaintextTooLargeError,
    Purpose,
    SealContext,
    UnreadableError,
    as_bytes,
    blind_index,
    blind_index_key,
    open_with,
    parse_header,
    seal_with,
)
from rampart.vault.keys import KeyRing, SessionLike, session_of


class EnvelopeSealer:
    """Envelope encryption: per-purpose data keys (and per-user keys) from the key ring."""

    def __init__(self, keys: KeyRing, settings: VaultSettings) -> None:
        self.keys = keys
        self._settings = settings

    def seal(
        self,
        db: SessionLike,
        purpose: Purpose,
        plaintext: bytes | str | Secret[Any],
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> bytes:
        """Encrypt `plaintext` for `context` under the newest key of `purpose`."""
        session = session_of(db)
        purpose = Purpose(purpose)
        raw = as_bytes(plaintext.reveal() if isinstance(plaintext, Secret) else plaintext)
        if len(raw) > self._settings.max_plaintext_bytes:
            raise PlaintextTooLargeError()
        version, key = self.keys.current_key(session, purpose.value)
        if user_id is None:
            return seal_with(key, Header(purpose, version), raw, context)
        key_id, user_key = self.keys.user_key_for_seal(session, purpose, version, key, user_id)
        return seal_with(user_key, Header(purpose, version, key_id), raw, context)

    def open(
        self,
        db: SessionLike,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[bytes]:
        """Decrypt a value sealed for `context`; `UnreadableError` for any failure."""
        session = session_of(db)
        header = parse_header(ciphertext)
        if header.purpose != Purpose(purpose):
            raise UnreadableError()
        key = self.keys.key_for_open(session, header, user_id)
        return Secret(open_with(key, header, ciphertext, context))

    def open_text(
        self,
        db: SessionLike,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[str]:
        raw = self.open(db, purpose, ciphertext, context, user_id=user_id).reveal()
        try:
            return Secret(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise UnreadableError() from None

    def blind_index(self, db: SessionLike, index: str, value: bytes | str) -> str:
        """HMAC-SHA256 of `value` under index `index`'s own key, as 64 hex characters.

        Equal inputs give equal outputs, so store it beside the ciphertext for equality lookups.
        The key never rotates with the data keys (every stored index would have to be recomputed
        from plaintext); it is wrapped by the KEK like the data keys and moves with rotate-kek.
        """
        if not index:
            raise ValueError("a blind index needs a name")
        _version, root = self.keys.current_key(session_of(db), BLIND_INDEX_FAMILY)
        return blind_index(blind_index_key(root, index), as_bytes(value))
