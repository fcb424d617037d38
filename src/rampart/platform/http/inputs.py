"""The types every id and every piece of text in a request goes through.

Input is refused at the edge, by type, rather than by whichever driver or library first chokes on
it: PostgreSQL refuses a NUL byte in a text value (the driver raises, which used to answer 500),
a lone surrogate cannot be encoded as UTF-8 by orjson or psycopg, and a control character in a
name or a reason ends up in logs, CSV exports and e-mails. So:

- `Id` is the one type of every id in a path or a body: the canonical text `new_id` makes.
  Routes name it in the path too (`/v1/orders/{order_id:id}`), so that a path whose segment is
  not an id is not theirs: `DELETE /v1/mfa/webauthn/registrations` is 405 (that path takes POST),
  not a 422 from the `/v1/mfa/webauthn/{authenticator_id}` route catching it.
- `Text` is a line of text: no C0 or C1 control character, no DEL (and, as every `str` validated
  against a pattern, no lone surrogate). `Multiline` also allows tab, CR and LF, for reasons and
  descriptions. Both state their pattern in the OpenAPI schema, so clients and the contract tests
  know the rule.
- `Choice` routes a path segment that takes a few fixed values (`/v1/mfa/{channel:channel}`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints
from starlette.convertors import Convertor, register_url_convertor

from rampart.kernel.ids import ID_REGEX

#: C0 controls, DEL and C1 controls: never part of a name, an address or a reason.
_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: The same, but tab, LF and CR are allowed: for free text that may hold line breaks.
_MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"

#: The largest value a 64-bit signed integer column holds: bounds every integer a request gives
#: for a stored number (sequence numbers, times in nanoseconds).
MAX_INT64 = 2**63 - 1

Id = Annotated[str, StringConstraints(min_length=36, max_length=36, pattern=f"^{ID_REGEX}$")]
Text = Annotated[str, StringConstraints(pattern=_LINE)]
Multiline = Annotated[str, StringConstraints(pattern=_MULTILINE)]


class IdConvertor(Convertor[str]):
    """`{name:id}` in a route path: the segment matches only an id."""

    regex = ID_REGEX

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        if not isinstance(value, str) or len(value) != 36:
            raise ValueError("not an id")
        return value


def register_choice(name: str, *choices: str) -> None:
    """Register `{param:name}` for a route path segment that takes one of `choices`."""
    if not choices or any(not c.replace("-", "").isalnum() for c in choices):
        raise ValueError("choices are plain words")
    allowed = frozenset(choices)

    class ChoiceConvertor(Convertor[str]):
        regex = "|".join(sorted(allowed))

        def convert(self, value: str) -> str:
            return value

        def to_string(self, value: str) -> str:
            if value not in allowed:
                raise ValueError(f"not one of {sorted(allowed)}")
            return value

    register_url_convertor(name, ChoiceConvertor())


# Registered at import: route paths are compiled when their routers are built, and every domain
# router imports this module for `Id` before it declares a route.
register_url_convertor("id", IdConvertor())
