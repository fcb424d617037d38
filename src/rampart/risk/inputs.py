"""What every risk use case checks about its caller and its inputs: a person (not a key or the
system) for decisions people answer for, a stated reason, well-formed symbols and account ids."""

from __future__ import annotations

import re

from rampart.access.domain import Principal
from rampart.kernel.errors import ForbiddenError, ValidationError

#: The scope of the platform-wide row of limits and trading states (an account's: `account:<id>`).
PLATFORM_SCOPE = "platform"
MAX_REASON = 1000
MAX_PAGE = 200

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9:_\-]{1,100}$")


class PersonRequiredError(ForbiddenError):
    code = "person-required"
    title = "Only a person may do this, not an API key or the system"


def reason_text(reason: str) -> str:
    """A stated reason, checked (non-empty, bounded)."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why.")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"The reason may be at most {MAX_REASON} characters.")
    return reason


def clean_symbol(symbol: str) -> str:
    symbol = symbol.strip().upper()
    if not _SYMBOL.match(symbol):
        raise ValidationError("A symbol is 1-16 letters, digits, '.' or '-'.")
    return symbol


def clean_account(account_id: str) -> str:
    if not _ACCOUNT.match(account_id):
        raise ValidationError("Not a valid account id.")
    return account_id


def require_person(principal: Principal) -> None:
    # Halts and resumes are decisions people answer for: not a bot's key, not the system.
    if principal.user_id is None or principal.method == "apikey":
        raise PersonRequiredError
