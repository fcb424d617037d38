"""Pure identity rules: the password policy, throttling arithmetic, the sign-in state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.identity.domain import (
    InvalidEmailError,
    LoginStep,
    PasswordPolicy,
    ThrottlePolicy,
    ThrottleState,
    WeakPasswordError,
    after_failure,
    delay_after,
    effective_permissions,
    next_login_step,
    normalise_email,
    wait_seconds,
)
from rampart.identity.service import load_blocklist, shipped_blocklist

POLICY = PasswordPolicy(min_length=8, max_length=256, blocklist=frozenset({"password123"}))


def test_shipped_blocklist_is_loaded_and_normalised() -> None:
    with shipped_blocklist().open(encoding="utf-8") as handle:
        blocklist = load_blocklist(handle)
    assert len(blocklist) > 40_000
    assert {"password", "qwertyuiop", "iloveyou"} <= blocklist
    assert all(len(entry) >= 8 and entry == entry.lower() for entry in list(blocklist)[:1000])


def test_policy_rules() -> None:
    assert POLICY.problems("correct horse") == []
    assert POLICY.problems("short")
    assert POLICY.problems("PassWord123")  # case-insensitive blocklist
    assert POLICY.problems("x" * 257)
    assert POLICY.problems("hello-alice-99", "alice@example.com")
    # No composition rules: all lower-case letters is fine when long enough.
    assert POLICY.problems("lowercaseonlybutlong") == []
    # Length is counted after NFKC: full-width digits count as ASCII digits, once each.
    assert POLICY.check("ｐａｓｓｐｈｒａｓｅ１２") == "passphrase12"
    with pytest.raises(WeakPasswordError) as caught:
        POLICY.check("short", "x@example.com")
    assert caught.value.extra["problems"]


@given(st.text(min_size=8, max_size=64).filter(lambda s: len(s) >= 8))
@settings(max_examples=200, deadline=None)
def test_policy_accepts_any_64_characters_but_blocked_ones(password: str) -> None:
    # SP 800-63B: at least 64 characters of any kind are accepted, spaces and emoji included.
    policy = PasswordPolicy(min_length=8, max_length=256, blocklist=frozenset())
    problems = policy.problems(password)
    import unicodedata

    if len(unicodedata.normalize("NFKC", password)) >= 8:
        assert problems == []


def test_email_normalisation() -> None:
    assert normalise_email("  Alice@Example.COM ") == "alice@example.com"
    for bad in ["", "no-at-sign", "a@b", "a b@example.com", "a@-x.com", "x" * 250 + "@e.com"]:
        with pytest.raises(InvalidEmailError):
            normalise_email(bad)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
TP = ThrottlePolicy(
    free_failures=3,
    lock_after=10,
    base_seconds=1,
    max_seconds=60,
    lock_seconds=900,
    window_seconds=3600,
)


def test_delays_grow_then_lock() -> None:
    assert [delay_after(n, TP) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 16, 32]
    assert delay_after(20, TP) == 60
    state = ThrottleState()
    for n in range(10):
        state = after_failure(state, T0 + timedelta(minutes=n), TP)
    assert state.locked_until == T0 + timedelta(minutes=9, seconds=900)
    assert wait_seconds(state, T0 + timedelta(minutes=10), TP) == pytest.approx(840)
    assert wait_seconds(state, T0 + timedelta(minutes=25), TP) == 0


@given(st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=40))
def test_throttle_never_lets_an_attempt_through_a_lock(gaps: list[int]) -> None:
    state, now = ThrottleState(), T0
    for gap in gaps:
        now += timedelta(seconds=gap)
        if state.locked_until is not None and now < state.locked_until:
            assert wait_seconds(state, now, TP) > 0
        state = after_failure(state, now, TP)
        assert state.failures >= 1


def test_second_factor_cannot_be_skipped() -> None:
    assert next_login_step(LoginStep.PASSWORD, factors_required=False) is LoginStep.COMPLETE
    assert next_login_step(LoginStep.PASSWORD, factors_required=True) is LoginStep.SECOND_FACTOR
    assert next_login_step(LoginStep.SECOND_FACTOR, factors_required=True) is LoginStep.COMPLETE
    with pytest.raises(ValueError):
        next_login_step(LoginStep.COMPLETE, factors_required=False)


def test_unverified_accounts_cannot_trade() -> None:
    granted = frozenset({"order:place", "account:view", "account:withdraw", "market:data"})
    assert effective_permissions(granted, True) == granted
    assert effective_permissions(granted, False) == {"account:view", "market:data"}


def test_service_refuses_to_start_without_its_blocklist(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rampart.config import Settings
    from rampart.identity.service import BlocklistMissingError, load_password_policy

    with pytest.raises(BlocklistMissingError):
        load_password_policy(Settings(), tmp_path / "missing.txt")


def test_context_specific_words_are_refused_in_passwords() -> None:
    # SP 800-63B 5.1.1.2: the service's name and the user's own address, or any part of it.
    from rampart.config import Settings
    from rampart.identity.service import load_password_policy

    policy = load_password_policy(Settings())
    assert policy.problems("my Rampart account 2026")
    assert policy.problems("RAMPART-trading-is-fun")
    email = "anna.leeds@acme-corp.example.com"
    for password in (
        "leeds family holiday 1999",  # a piece of the local part
        "acme-corp forever 77",  # the domain
        "corp lunch every friday",  # a piece of the domain
        "example of a passphrase",  # a domain label
        "anna.leeds is my name 12",  # the whole local part
    ):
        assert policy.problems(password, email), password
    # The top-level domain and pieces shorter than four characters are not words of the user.
    assert policy.problems("an uncommon phrase at com", email) == []
    assert policy.problems("correct horse battery staple", email) == []
