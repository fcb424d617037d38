"""Server-rendered pages: one Jinja2 environment, autoescaped, with the request's CSP nonce.

Other domains' pages extend `base.html` and render through `render()`, which fills in what the
base layout needs: the CSP nonce (`csp_nonce`) that any inline `<script>` or `<style>` must carry,
the CSRF token for forms (`csrf_token`), and whether someone is signed in.
"""

from __future__ import annotations

import hmac
import re
import secrets
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from rampart.access.domain import Permission
from rampart.identity.authn import SESSION_COOKIE
from rampart.identity.domain import CsrfError
from rampart.identity.sessions import csrf_token_for
from rampart.web.wiring import container_of

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

#: The CSRF cookie of forms shown before sign-in (double-submit): sign-up, sign-in, reset.
ANON_CSRF_COOKIE = "__Host-rampart_csrf"

_URL = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Escape `text`, then turn the http(s) URLs in it into links (for the dev mailbox)."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        out.append(str(escape(text[last : match.start()])))
        url = escape(match.group(0))
        out.append(f'<a href="{url}" rel="noreferrer">{url}</a>')
        last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))  # noqa: S704 - every piece above was escaped


#: The platform's one currency: every cash amount is in US dollars.
CURRENCY_SYMBOL = "$"


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def money(value: object) -> str:
    """A cash amount as people read it: $12,345.67, -$1,000.00 (to the cent, half to even)."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    cents = number.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    sign = "-" if cents < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{abs(cents):,.2f}"


def signed_money(value: object) -> str:
    """A P&L figure: +$12.50, -$3.00, $0.00."""
    text = money(value)
    number = _decimal(value)
    if number is not None and number.quantize(Decimal("0.01")) > 0:
        return f"+{text}"
    return text


def amount(value: object, places: int = 0) -> str:
    """A quantity or price with thousands separators, never rounded: 1,234.5 (at least
    `places` decimals: amount(18.2, 2) -> 18.20)."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    text = format(number, "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(places, "0")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{sign}{int(whole.lstrip('-') or '0'):,}"
    return f"{grouped}.{fraction}" if fraction else grouped


environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["linkify"] = linkify
environment.filters["money"] = money
environment.filters["amount"] = amount
environment.filters["signed_money"] = signed_money


def anon_csrf(request: Request) -> tuple[str, bool]:
    """The pre-sign-in CSRF token and whether it must be set as a cookie now."""
    existing = request.cookies.get(ANON_CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 64:
        return existing, False
    return secrets.token_urlsafe(24), True


def csrf_for(request: Request) -> tuple[str, bool]:
    """The token `render()` puts in forms: the session's when a session cookie is present, the
    pre-sign-in double-submit one otherwise."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        return csrf_token_for(secret), False
    return anon_csrf(request)


def check_public_form_csrf(request: Request, presented: str) -> None:
    """The CSRF check of a public form (sign-up, sign-in, confirm an address, reset a password).

    It accepts the token such a form can carry: the double-submit cookie's, or, when a session
    cookie is present, the session's (`csrf_for` renders that one for a signed-in person, who
    may well open a confirmation or reset link). Both are unreadable to another site. Raises
    `CsrfError` otherwise.
    """
    given = presented.encode()
    expected = request.cookies.get(ANON_CSRF_COOKIE, "")
    if expected and hmac.compare_digest(given, expected.encode()):
        return
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and hmac.compare_digest(given, csrf_token_for(secret).encode()):
        return
    raise CsrfError


def set_cookie(response: Response, name: str, value: str, *, max_age: int | None) -> None:
    # `__Host-`: Secure, Path=/, no Domain, so no sibling subdomain can set or read it.
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    container = container_of(request)
    csrf, fresh = csrf_for(request)
    principal = getattr(request.state, "principal", None)
    values: dict[str, Any] = {
        "csp_nonce": request.scope["state"]["csp_nonce"],
        "csrf_token": csrf,
        "signed_in": principal is not None or SESSION_COOKIE in request.cookies,
        # The console's link, for those whose sign-in holds the permission (staff: with a key).
        "audit_console": principal is not None and principal.can(Permission.COMPLIANCE_AUDIT),
        "admin_console": principal is not None and principal.can(Permission.ADMIN_USERS),
        "halts_console": principal is not None and principal.can(Permission.COMPLIANCE_HALT),
        "dev_mailbox": container.settings.profile == "dev",
        "api_docs": container.settings.api_docs_enabled,
        "errors": [],
        "notice": None,
    }
    values.update(context or {})
    html = environment.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    if fresh:
        set_cookie(response, ANON_CSRF_COOKIE, csrf, max_age=None)
    return response
