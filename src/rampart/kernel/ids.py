"""Identifiers.

Ids are UUIDv7 strings: unique without coordination, sortable by creation time (good index
locality), and opaque to users, so they reveal neither counts nor neighbours.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time

#: The canonical text of an id `new_id` makes: lowercase 8-4-4-4-12 hex, version 7, RFC variant.
ID_REGEX = "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_ID = re.compile(ID_REGEX)

_lock = threading.Lock()
_last_ms = 0
_seq = 0
#: Random bytes from the kernel's CSPRNG, fetched a page at a time: a `getrandom` call per id
#: cost more than the rest of `new_id`, and it drops the GIL, so on a busy server every id waited
#: for another thread to hand the GIL back.
_POOL_SIZE = 4096
_pool = b""
_pool_at = 0


def _random(n: int) -> bytes:
    """`n` bytes of the kernel CSPRNG's output (call with `_lock` held)."""
    global _pool, _pool_at
    if n > _POOL_SIZE:
        return os.urandom(n)
    if _pool_at + n > len(_pool):
        _pool, _pool_at = os.urandom(_POOL_SIZE), 0
    chunk = _pool[_pool_at : _pool_at + n]
    _pool_at += n
    return chunk


def _forget_pool() -> None:
    # A forked child must not hand out the parent's unused bytes as well.
    global _pool, _pool_at, _lock
    _lock = threading.Lock()
    _pool, _pool_at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def new_id() -> str:
    """A UUIDv7 (RFC 9562) as a lowercase string, monotonic within this process."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:
                ms += 1
                _seq = 0
        else:
            _seq = int.from_bytes(_random(2), "big") & 0x3FF
        _last_ms = ms
        seq = _seq
        rand = int.from_bytes(_random(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= seq << 64
    value |= 0b10 << 62
    value |= rand
    # The canonical 8-4-4-4-12 form, without building a `uuid.UUID` (twice as slow).
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_token(nbytes: int = 16) -> str:
    """A URL-safe token of `nbytes` CSPRNG bytes (as `secrets.token_urlsafe`), from the same pool:
    for per-request values such as CSP nonces, not for long-lived secrets."""
    with _lock:
        raw = _random(nbytes)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def is_id(value: str) -> bool:
    """Whether `value` is an id in the canonical text `new_id` makes."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
