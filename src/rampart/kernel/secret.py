"""A value that must never be shown.

`Secret` wraps a password, a token or a decrypted field. Its `repr`, `str` and JSON forms are
redacted, so it cannot leak into a log line, an exception message or a response by accident; the
one way to read it is `reveal()`, at the moment of use.
"""

from __future__ import annotations

import hmac
from typing import Generic, TypeVar

T = TypeVar("T", str, bytes)

REDACTED = "[REDACTED]"


class Secret(Generic[T]):
    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value: T = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        # Constant-time, so comparing a guess against a secret leaks nothing through timing.
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(_as_bytes(self._value), _as_bytes(other._value))

    def __hash__(self) -> int:
        raise TypeError("Secret values are not hashable")

    def __reduce__(self) -> str:
        raise TypeError("Secret values cannot be pickled")

    def __json__(self) -> str:
        return REDACTED


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
