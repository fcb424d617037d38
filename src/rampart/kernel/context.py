"""Who is asking, carried through a request.

The web layer sets it once per request; the unit of work stamps audit entries with it, and log
lines are bound to its request id. Outside a request (CLI, workers) the actor is `system`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace

SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    #: `user:<id>`, `apikey:<id>` or `system`: a pseudonymous id, never an email or a name.
    actor: str = SYSTEM_ACTOR

    def with_actor(self, actor: str) -> RequestContext:
        return replace(self, actor=actor)


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "rampart_request_context",
    default=RequestContext(),  # noqa: B039 - frozen, so shared safely
)


def current_context() -> RequestContext:
    return _current.get()


def set_context(ctx: RequestContext) -> contextvars.Token[RequestContext]:
    return _current.set(ctx)


def reset_context(token: contextvars.Token[RequestContext]) -> None:
    _current.reset(token)
