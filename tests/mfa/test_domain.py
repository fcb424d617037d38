"""Pure MFA logic: RFC 6238 vectors, drift window, replay ordering, code shapes, cooling period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rampart.identity.mfa.domain import (
    BACKUP_CODE_COUNT,
    FactorSummary,
    clean_authenticator_name,
    clean_phone_number,
    in_cooling,
    match_totp,
    new_backup_codes,
    new_numeric_code,
    normalise_backup_code,
    provisioning_uri,
    totp_code,
    totp_step,
    valid_purpose,
)
from rampart.kernel.errors import ValidationError

RFC_SEED = b"12345678901234567890"

# RFC 6238 Appendix B, SHA-1 column: (Unix time, 8-digit TOTP).
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("epoch", "expected"), RFC6238_SHA1)
def test_rfc6238_appendix_b_sha1_vectors(epoch: int, expected: str) -> None:
    assert totp_code(RFC_SEED, totp_step(epoch), digits=8) == expected


def test_six_digit_codes_are_the_low_digits_of_the_rfc_value() -> None:
    # Authenticator apps use 6 digits: the same truncation, modulo 10^6.
    assert totp_code(RFC_SEED, totp_step(59)) == "287082"


def test_a_code_is_accepted_in_its_own_step_and_one_step_late_only() -> None:
    now = 1_700_000_000.0
    step = totp_step(now)
    for offset in (-1, 0):
        code = totp_code(RFC_SEED, step + offset)
        assert match_totp(RFC_SEED, code, now, last_used_step=None) == step + offset
    # Two steps old (over 60 s), or from a step that has not begun: refused.
    for offset in (-3, -2, 1, 2):
        code = totp_code(RFC_SEED, step + offset)
        # Only a collision with a code inside the window could match; rule it out first.
        inside = {totp_code(RFC_SEED, step + d) for d in (-1, 0)}
        if code not in inside:
            assert match_totp(RFC_SEED, code, now, last_used_step=None) is None


def test_the_strict_setting_accepts_the_current_step_only() -> None:
    now = 1_700_000_000.0
    step = totp_step(now)
    current, late = totp_code(RFC_SEED, step), totp_code(RFC_SEED, step - 1)
    assert match_totp(RFC_SEED, current, now, last_used_step=None, late_steps=0) == step
    if late != current:
        assert match_totp(RFC_SEED, late, now, last_used_step=None, late_steps=0) is None


def test_a_used_step_and_every_earlier_one_are_refused() -> None:
    now = 1_700_000_000.0
    step = totp_step(now)
    code = totp_code(RFC_SEED, step)
    assert match_totp(RFC_SEED, code, now, last_used_step=step) is None
    previous = totp_code(RFC_SEED, step - 1)
    assert match_totp(RFC_SEED, previous, now, last_used_step=step) is None
    following = totp_code(RFC_SEED, step + 1)
    assert match_totp(RFC_SEED, following, now + 30, last_used_step=step) == step + 1


@pytest.mark.parametrize("junk", ["", "12345", "1234567", "abcdef", "12 34 5x", "１２３４５６"])
def test_malformed_codes_never_match(junk: str) -> None:
    assert match_totp(RFC_SEED, junk, 1_700_000_000.0, last_used_step=None) is None


def test_provisioning_uri_names_issuer_and_parameters() -> None:
    uri = provisioning_uri(RFC_SEED, account="ann@example.com", issuer="Rampart")
    assert uri.startswith("otpauth://totp/Rampart:ann%40example.com?")
    assert "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" in uri
    assert "issuer=Rampart" in uri


def test_backup_codes_are_distinct_and_normalise_leniently() -> None:
    codes = new_backup_codes()
    assert len(codes) == BACKUP_CODE_COUNT == len(set(codes))
    code = codes[0]
    assert normalise_backup_code(code) == code.replace("-", "")
    assert normalise_backup_code(" " + code.upper().replace("-", " ") + " ") == code.replace(
        "-", ""
    )
    assert normalise_backup_code("short") is None
    assert normalise_backup_code("!" * 10) is None


@given(st.text(max_size=80))
def test_normalised_backup_codes_are_always_canonical(text: str) -> None:
    normal = normalise_backup_code(text)
    assert normal is None or (len(normal) == 10 and normal == normal.lower())


def test_numeric_codes_have_six_digits() -> None:
    for _ in range(200):
        code = new_numeric_code()
        assert len(code) == 6
        assert code.isdigit()


def test_purposes_are_constrained() -> None:
    assert valid_purpose("login:0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000")
    assert valid_purpose("step-up:abc")
    assert not valid_purpose("login:" + "x" * 200)
    assert not valid_purpose("Login\n:x")


def test_names_and_phone_numbers_are_cleaned() -> None:
    assert clean_authenticator_name("  YubiKey 5  ") == "YubiKey 5"
    with pytest.raises(ValidationError):
        clean_authenticator_name("bad\x00name")
    with pytest.raises(ValidationError):
        clean_authenticator_name("x" * 65)
    assert clean_phone_number("+44 7700 900-123") == "+447700900123"
    with pytest.raises(ValidationError):
        clean_phone_number("07700900123")


def test_cooling_period_lasts_24_hours() -> None:
    reset = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert in_cooling(reset, reset + timedelta(hours=23, minutes=59))
    assert not in_cooling(reset, reset + timedelta(hours=24))
    assert not in_cooling(None, reset)


def test_backup_codes_alone_do_not_count_as_mfa() -> None:
    summary = FactorSummary(
        totp=False, webauthn=0, email=False, sms=None, backup_codes_remaining=10
    )
    assert not summary.enrolled
