"""Named limiters over a backend, with fail-open/closed policy and adaptive tightening."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from rampart.config import RateLimitSettings
from rampart.kernel.clock import Clock
from rampart.platform.logging import get_logger
from rampart.ratelimit.domain import (
    DEFAULT_LIMITS,
    Decision,
    LimitSpec,
    RateLimiterUnavailableError,
    RateLimitExceededError,
    fail_closed_by_default,
    parse_spec,
)
from rampart.ratelimit.ports import BackendUnavailableError, RateLimitBackend

log = get_logger(__name__)


def _subject_key(subject: str) -> str:
    # Subjects may be e-mail addresses or IPv6 text; hash them so keys are short, uniform and
    # never carry personal data into Redis.
    return hashlib.blake2b(subject.encode(), digest_size=12).hexdigest()


class RateLimits:
    """Every named limiter of the platform.

    `hit(name, subject)` spends one unit of `subject`'s allowance under limiter `name` and raises
    `RateLimitExceededError` (429) when there is none left. When the backend is down, a limiter
    guarding login, MFA, withdrawals or orders raises `RateLimiterUnavailableError` (503): an
    attacker must not get unlimited guesses by knocking Redis over. Other limiters let the request
    through and log that they did.
    """

    def __init__(
        self,
        backend: RateLimitBackend,
        clock: Clock,
        settings: RateLimitSettings,
        limits: Mapping[str, LimitSpec] | None = None,
    ) -> None:
        self.backend = backend
        self._clock = clock
        self._settings = settings
        specs = dict(limits or DEFAULT_LIMITS)
        for name, text in settings.limits.items():
            closed = specs[name].fail_closed if name in specs else fail_closed_by_default(name)
            specs[name] = parse_spec(name, text, fail_closed=closed)
        self._specs = specs

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def blocking(self) -> bool:
        """Whether a hit may wait on the network (Redis), not just on a lock in this process."""
        return bool(getattr(self.backend, "blocking", True))

    def spec(self, name: str) -> LimitSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"no rate limiter named {name!r}") from None

    def register(self, spec: LimitSpec) -> None:
        """Add a domain's own limiter (settings may still override its rate)."""
        if spec.name in self._settings.limits:
            return
        self._specs.setdefault(spec.name, spec)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def _now(self) -> float:
        return self._clock.time_ns() / 1e9

    def hit(self, name: str, subject: str, cost: int = 1) -> Decision | None:
        """Spend `cost` of `subject`'s allowance; None when limits are switched off."""
        spec = self.spec(name)
        if not self._settings.enabled:
            return None
        now = self._now()
        key = _subject_key(subject)
        try:
            factor = self._penalty_factor(spec.scope, key, now)
            effective = spec.tightened(factor)
            decision = self.backend.hit(f"{name}:{key}", effective, now, cost)
        except BackendUnavailableError as exc:
            if spec.fail_closed:
                log.error("rate limiter backend down: refusing", limiter=name, error=str(exc))
                raise RateLimiterUnavailableError(name) from None
            log.warning("rate limiter backend down: allowing", limiter=name, error=str(exc))
            return None
        if not decision.allowed:
            log.info("rate limited", limiter=name, penalised=factor > 1)
            raise RateLimitExceededError(decision)
        return decision

    def hit_all(self, hits: Iterable[tuple[str, str]]) -> Decision | None:
        """Apply several limiters; returns the tightest decision (fewest remaining)."""
        tightest: Decision | None = None
        for name, subject in hits:
            decision = self.hit(name, subject)
            if decision is not None and (
                tightest is None or decision.remaining < tightest.remaining
            ):
                tightest = decision
        return tightest

    def refund(self, name: str, subject: str, cost: int = 1) -> None:
        """Give back `cost` units `hit` took from `subject` under `name`. Best effort: with the
        backend down the units stay spent, which only errs on the side of refusing."""
        spec = self.spec(name)
        if not self._settings.enabled:
            return
        now = self._now()
        key = _subject_key(subject)
        try:
            effective = spec.tightened(self._penalty_factor(spec.scope, key, now))
            self.backend.refund(f"{name}:{key}", effective, now, cost)
        except BackendUnavailableError as exc:
            log.warning(
                "rate limiter backend down: unit not given back", limiter=name, error=str(exc)
            )

    @contextmanager
    def attempt(self, hits: Iterable[tuple[str, str]]) -> Iterator[None]:
        """Count only failed attempts: take a unit of each (limiter, subject) before the attempt,
        and give them back when the block completes without raising.

        For guessable checks (second factors): the allowance bounds wrong guesses exactly as a
        plain `hit` would (taken up front, atomically, so concurrent guesses cannot all slip past
        a check that has not counted them yet; refused 429, or 503 when a fail-closed limiter's
        backend is down), while a person who gets it right leaves the allowance as it was.
        """
        taken: list[tuple[str, str]] = []
        try:
            for name, subject in hits:
                if self.hit(name, subject) is not None:
                    taken.append((name, subject))
        except BaseException:
            # Refused by one limiter: nothing was tried, so the others' units go back.
            self._refund_all(taken)
            raise
        yield
        self._refund_all(taken)

    def _refund_all(self, taken: Iterable[tuple[str, str]]) -> None:
        for name, subject in taken:
            self.refund(name, subject)

    # --- adaptive mode ------------------------------------------------------------------------
    def record_auth_failure(self, scope: str, subject: str) -> None:
        """Count an authentication failure of an IP (`ip`) or an API key (`key`); past the
        threshold, that subject's limits are tightened for the rest of the window."""
        if not self._settings.enabled or not subject:
            return
        try:
            self.backend.incr(
                f"fail:{scope}:{_subject_key(subject)}",
                float(self._settings.penalty_window_seconds),
                self._now(),
            )
        except BackendUnavailableError:
            log.warning("rate limiter backend down: auth failure not counted", scope=scope)

    def is_penalised(self, scope: str, subject: str) -> bool:
        return self._penalty_factor(scope, _subject_key(subject), self._now()) > 1

    def _penalty_factor(self, scope: str, key: str, now: float) -> int:
        if scope not in ("ip", "key"):
            return 1
        failures = self.backend.count(f"fail:{scope}:{key}", now)
        return self._settings.penalty_factor if failures >= self._settings.penalty_failures else 1
