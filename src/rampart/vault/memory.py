"""`Sealer` and `Shredder` in memory, for service tests that seal without a database.

The same ciphertext format and the same AES-GCM binding to purpose and place as the real vault
(`rampart.vault.domain`); only the keys differ: random per instance, version 1, never wrapped
or stored, so nothing sealed here opens anywhere else. A shred takes effect at once (the
database's is undone by a rollback).
"""

from __future__ import annotations

import hmac
import os
import threading
from typing import Any

from rampart.kernel.secret import Secret
from rampart.vault.domain import (
    USER_KEY_ID_BYTES,
    Header,
    PlaintextTooLargeError,
    Purpose,
    SealContext,
    ShreddedError,
    UnreadableError,
    as_bytes,
    blind_index,
    blind_index_key,
    new_key,
    open_with,
    parse_header,
    seal_with,
)

VERSION = 1


class InMemoryVault:
    def __init__(self, max_plaintext_bytes: int = 16 * 1_048_576) -> None:
        self._max = max_plaintext_bytes
        self._lock = threading.Lock()
        self._purpose_keys: dict[Purpose, bytes] = {}
        self._index_root = new_key()
        #: user key id -> (purpose, owner, key or None once shredded)
        self._user_keys: dict[bytes, tuple[Purpose, str, bytes | None]] = {}
        self._shredded: set[str] = set()

    def _purpose_key(self, purpose: Purpose) -> bytes:
        with self._lock:
            return self._purpose_keys.setdefault(purpose, new_key())

    def _user_key(self, purpose: Purpose, user_id: str) -> tuple[bytes, bytes]:
        with self._lock:
            if user_id in self._shredded:
                raise ShreddedError()
            for key_id, (p, owner, key) in self._user_keys.items():
                if p == purpose and owner == user_id and key is not None:
                    return key_id, key
            key_id, key = os.urandom(USER_KEY_ID_BYTES), new_key()
            self._user_keys[key_id] = (purpose, user_id, key)
            return key_id, key

    def seal(
        self,
        db: object,
        purpose: Purpose,
        plaintext: bytes | str | Secret[Any],
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> bytes:
        purpose = Purpose(purpose)
        raw = as_bytes(plaintext.reveal() if isinstance(plaintext, Secret) else plaintext)
        if len(raw) > self._max:
            raise PlaintextTooLargeError()
        if user_id is None:
            return seal_with(self._purpose_key(purpose), Header(purpose, VERSION), raw, context)
        key_id, key = self._user_key(purpose, user_id)
        return seal_with(key, Header(purpose, VERSION, key_id), raw, context)

    def open(
        self,
        db: object,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[bytes]:
        header = parse_header(ciphertext)
        if header.purpose != Purpose(purpose) or header.key_version != VERSION:
            raise UnreadableError()
        if header.user_key_id is None:
            if user_id is not None:
                raise UnreadableError()
            key = self._purpose_key(header.purpose)
        else:
            key = self._key_for(header, user_id)
        return Secret(open_with(key, header, ciphertext, context))

    def _key_for(self, header: Header, user_id: str | None) -> bytes:
        with self._lock:
            found = self._user_keys.get(header.user_key_id or b"")
        # Ownership first: "shredded" is an answer for the owner only.
        if (
            user_id is None
            or found is None
            or found[0] != header.purpose
            or not hmac.compare_digest(found[1].encode(), user_id.encode())
        ):
            raise UnreadableError()
        if found[2] is None:
            raise ShreddedError()
        return found[2]

    def open_text(
        self,
        db: object,
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

    def blind_index(self, db: object, index: str, value: bytes | str) -> str:
        if not index:
            raise ValueError("a blind index needs a name")
        return blind_index(blind_index_key(self._index_root, index), as_bytes(value))

    def shred_user(self, db: object, user_id: str) -> int:
        destroyed = 0
        with self._lock:
            for key_id, (purpose, owner, key) in list(self._user_keys.items()):
                if owner == user_id and key is not None:
                    self._user_keys[key_id] = (purpose, owner, None)
                    destroyed += 1
            self._shredded.add(user_id)
        return destroyed

    def is_shredded(self, db: object, user_id: str) -> bool:
        with self._lock:
            return user_id in self._shredded
