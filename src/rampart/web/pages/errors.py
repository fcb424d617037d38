"""The error page: what a person's browser gets instead of problem+json.

`rampart.platform.http.problems` decides who gets a page (a navigation asking for `text/html`,
outside the API's paths) and calls `problem_page` with the problem it would otherwise send; the
page says what happened in words, names the request id to quote to support, and offers a way
back. Nothing more leaves than in the JSON problem: no stack trace, no submitted values.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rampart.platform.http.problems import PROBLEM_TYPE_PREFIX
from rampart.web.pages.templating import render

#: Headings a person understands, by status; the problem's own title and detail follow.
_HEADINGS = {
    400: "That request could not be read",
    401: "Please sign in",
    403: "That is not allowed",
    404: "Page not found",
    405: "That page cannot do that",
    409: "That clashes with a change made meanwhile",
    413: "That was too large to send",
    422: "Something in the form needs fixing",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "Temporarily unavailable",
}

#: Words for problems whose title alone would leave a person puzzled.
_EXPLANATIONS = {
    "csrf-failed": (
        "The form was out of date (opened before you signed in or out, or in another tab). "
        "Open the page again and resend it."
    ),
    "not-found": "There is nothing at this address. The link may be mistyped or out of date.",
    "internal": "This was not your doing. Try again in a moment; if it keeps happening, quote "
    "the request id below to support.",
}


def problem_page(request: Request, problem: dict[str, Any]) -> Response:
    status = int(problem.get("status", 500))
    code = str(problem.get("type", "")).removeprefix(PROBLEM_TYPE_PREFIX)
    heading = _HEADINGS.get(status, "That did not work")
    explanation = _EXPLANATIONS.get(code) or problem.get("detail") or problem.get("title", "")
    return render(
        request,
        "error.html",
        {
            "status": status,
            "heading": heading,
            "title": str(problem.get("title", "")),
            "explanation": str(explanation),
            "request_id": problem.get("request_id"),
        },
        status=status,
    )


__all__ = ["problem_page"]
