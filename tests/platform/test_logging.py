"""No secret reaches a log line: each kind is logged on purpose and looked for in the output."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.kernel.secret import Secret
from rampart.platform.logging import configure_logging, get_logger

JWT = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyOjEyMyIsImV4cCI6MTcwMDAwMDAwMH0."
    "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
)
API_KEY = "rmp_live_Q2hhbmdlTWVQbGVhc2VUaGlzSXNBS2V5_3f9a"
CARD = "4111 1111 1111 1111"


@pytest.fixture
def log_output() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "hunter2-correct-horse"),
        ("new_password", "Tr0ub4dor&3-staple"),
        ("access_token", JWT),
        ("refresh_token", "rt-9f8e7d6c5b4a39281706"),
        ("api_secret", API_KEY),
        ("authorization", "Bearer " + JWT),
        ("cookie", "__Host-rampart_session=s3ss10n-v4lue-abcdef"),
        ("account_number", "DE89370400440532013000"),
        ("card_number", CARD),
        ("totp_seed", "JBSWY3DPEHPK3PXP"),
        ("tax_id", "123-45-6789"),
    ],
)
def test_sensitive_fields_are_redacted(log_output: io.StringIO, field: str, value: str) -> None:
    get_logger("test").info("event", **{field: value})
    text = log_output.getvalue()
    assert value not in text
    assert lines(log_output)[-1][field] == "[REDACTED]"


@pytest.mark.parametrize(
    "secret_text",
    [
        "Authorization: Bearer " + JWT,
        "token was " + JWT,
        "client used " + API_KEY,
        "card " + CARD + " declined",
        "GET /v1/auth/verify-email?token=abcdef0123456789xyz&x=1",
    ],
)
def test_secret_shapes_inside_free_text_are_redacted(
    log_output: io.StringIO, secret_text: str
) -> None:
    get_logger("test").info(secret_text)
    get_logger("test").info("message", note=secret_text)
    text = log_output.getvalue()
    for needle in (JWT, API_KEY, CARD, "abcdef0123456789xyz"):
        assert needle not in text


def test_secret_values_are_redacted_wherever_they_sit(log_output: io.StringIO) -> None:
    get_logger("test").info("nested", payload={"user": "u1", "inner": [Secret("s3cr3t-value")]})
    assert "s3cr3t-value" not in log_output.getvalue()


def test_stdlib_loggers_are_redacted_too(log_output: io.StringIO) -> None:
    logging.getLogger("some.library").warning("retrying with %s", "Bearer " + JWT)
    assert JWT not in log_output.getvalue()
    assert "[REDACTED]" in log_output.getvalue()


def test_exceptions_are_logged_without_message_or_trace(log_output: io.StringIO) -> None:
    try:
        raise RuntimeError("INSERT INTO users VALUES ('hunter2')")
    except RuntimeError:
        get_logger("test").error("failed", exc_info=True)
    text = log_output.getvalue()
    assert "hunter2" not in text
    assert "INSERT" not in text
    assert "Traceback" not in text
    assert lines(log_output)[-1]["exc_type"] == "builtins.RuntimeError"


def test_ordinary_values_pass_through(log_output: io.StringIO) -> None:
    get_logger("test").info("order", symbol="ACME", quantity=10, price="12.34", order_id="o-1")
    entry = lines(log_output)[-1]
    assert entry["symbol"] == "ACME"
    assert entry["quantity"] == 10
    assert entry["price"] == "12.34"


# --- review findings: kinds of secret that used to slip through ---------------------------------
# A made-up key body; the armour is assembled at run time so secret scanners see no key here.
_ARMOUR = "PRIVATE " + "KEY-----"
PEM = (
    f"-----BEGIN {_ARMOUR}\nMC4CAQAwBQYDK2VwBCIEIPEMSECRETPEMSECRETPEMSECRETPEMSECRET\n"
    f"-----END {_ARMOUR}"
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vault_kek", "S2VrU2VjcmV0S2VrU2VjcmV0S2VrU2VjcmV0S2Vr"),
        ("previous_keks", "UHJldmlvdXNLZWtQcmV2aW91c0tla1ByZXZpb3Vz"),
        ("data_key", "RGF0YUtleURhdGFLZXlEYXRhS2V5RGF0YUtleQ"),
        ("file_key", "RmlsZUtleUZpbGVLZXlGaWxlS2V5RmlsZUtleQ"),
        ("recovery_code", "RECOV-4242-9191"),
        ("pin", "914273"),
        ("card_pan", "5500005555555559"),
    ],
)
def test_more_sensitive_field_names_are_redacted(
    log_output: io.StringIO, field: str, value: str
) -> None:
    get_logger("test").info("event", **{field: value})
    assert value not in log_output.getvalue()


@pytest.mark.parametrize(
    ("secret_text", "needle"),
    [
        ("connecting to postgresql+psycopg://app:pgPassw0rd-42@db:5432/rampart", "pgPassw0rd-42"),
        ("redis down at redis://:r3disPassw0rd@cache:6379/0", "r3disPassw0rd"),
        ("startup with password=Hunter2Hunter2 and more", "Hunter2Hunter2"),
        ("config api_key: k3y-k3y-k3y-k3y", "k3y-k3y-k3y-k3y"),
        ("loaded " + PEM, "PEMSECRETPEMSECRET"),
        ("key is rampart-dev-key:ZGV2a2V5ZGV2a2V5ZGV2a2V5ZGV2a2V5ZGV2a2V5ZGU=", "ZGV2a2V5ZGV2a2V5"),
    ],
)
def test_credentials_inside_free_text_are_redacted(
    log_output: io.StringIO, secret_text: str, needle: str
) -> None:
    get_logger("test").info(secret_text)
    get_logger("test").info("message", note=secret_text)
    logging.getLogger("some.library").error(secret_text)
    assert needle not in log_output.getvalue()


def test_a_dict_logged_through_the_stdlib_is_redacted_by_key(log_output: io.StringIO) -> None:
    # Only structlog's own records are pre-redacted; a library logging a dict is not one of them.
    logging.getLogger("some.library").info({"password": "D1ctPassw0rd", "user": "u1"})
    text = log_output.getvalue()
    assert "D1ctPassw0rd" not in text
    assert "u1" in text


# --- the fast path ---------------------------------------------------------------------------
_SECRETISH = st.sampled_from(
    [
        f"-----BEGIN {_ARMOUR}abc",
        "rampart-dev-key:QUJD",
        "postgres://u:pw@h/db",
        "password=hunter2",
        "API-KEY: x1",
        "Bearer abcdefgh12345",
        "eyJhbGciOi.eyJzdWIiOi.sig",
        "rmp_live_" + "A" * 20,
        "?code=abc",
        "&Key=1",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "kek: zz",
    ]
)


@given(st.lists(st.one_of(st.text(max_size=30), _SECRETISH), max_size=6).map("".join))
@settings(max_examples=300, deadline=None)
def test_skipping_the_patterns_never_changes_what_is_redacted(text: str) -> None:
    from rampart.platform.logging import _redact_all, redact_text

    assert redact_text(text) == _redact_all(text)


def _redacted_value_by_value(event: dict[str, object]) -> dict[str, object]:
    """What the processor must produce: every value screened on its own."""
    from rampart.kernel.secret import REDACTED
    from rampart.platform.logging import _EVENT_KEYS_KEPT, _sensitive_key, redact

    out: dict[str, object] = {}
    for key, value in event.items():
        if value is not None and key not in _EVENT_KEYS_KEPT and _sensitive_key(key):
            out[key] = REDACTED
        else:
            out[key] = redact(value)
    return out


_FIELD_TEXT = st.lists(st.one_of(st.text(max_size=12), _SECRETISH), max_size=3).map("".join)


@given(
    st.dictionaries(
        st.sampled_from(["event", "request_id", "path", "note", "user", "pin", "detail", "n"]),
        st.one_of(st.none(), st.integers(), _FIELD_TEXT, st.lists(_FIELD_TEXT, max_size=2)),
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_screening_a_line_at_once_redacts_exactly_what_each_value_would(
    event: dict[str, object],
) -> None:
    from rampart.platform.logging import redaction_processor

    assert dict(redaction_processor(None, "info", dict(event))) == _redacted_value_by_value(event)


def test_both_kinds_of_line_share_the_stream_and_the_level(log_output: io.StringIO) -> None:
    configure_logging("warning", json=True, stream=log_output)
    get_logger("rampart.x").info("too low")
    logging.getLogger("some.library").info("too low as well")
    get_logger("rampart.x").warning("ours", n=1)
    logging.getLogger("some.library").warning("theirs")
    entries = lines(log_output)
    assert [(e["event"], e["level"], e["logger"]) for e in entries] == [
        ("ours", "warning", "rampart.x"),
        ("theirs", "warning", "some.library"),
    ]
    assert all("timestamp" in e for e in entries)


# --- our loggers keep the standard library's rules (review of the direct path) -------------------
def test_positional_arguments_are_redacted_not_interpolated(log_output: io.StringIO) -> None:
    get_logger("test").info("config %s", {"pin": "4321", "user": "u1"})
    get_logger("test").info("frame %s", b"hunter2-raw-frame")
    text = log_output.getvalue()
    assert "4321" not in text
    assert "hunter2-raw-frame" not in text
    first, second = lines(log_output)[-2:]
    assert first["event"] == "config %s"
    assert first["positional_args"] == [{"pin": "[REDACTED]", "user": "u1"}]
    assert second["positional_args"] == ["<17 bytes>"]


def test_a_field_named_like_structlogs_own_markers_is_still_redacted(
    log_output: io.StringIO,
) -> None:
    get_logger("test").info("event", _from_structlog={"pin": "4321"}, _record="password=Hunter2x")
    text = log_output.getvalue()
    assert "4321" not in text
    assert "Hunter2x" not in text


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this")


class _BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


def test_logging_never_raises_into_the_caller(log_output: io.StringIO) -> None:
    log = get_logger("test")
    log.info("a %s %s", 1)  # too few arguments: kept as they are, never interpolated
    log.info("unrenderable", thing=_Unprintable())
    assert lines(log_output)[-1] == {
        "event": "log line not written",
        "level": "info",
        "logger": "test",
        "error": "RuntimeError",
    }
    configure_logging("info", json=True, stream=_BrokenStream())
    log.info("nowhere to go")
    log.exception("nor this")


def test_a_loggers_standard_library_level_quiets_it(log_output: io.StringIO) -> None:
    access = get_logger("rampart.access")  # bound before any level is set: follows it anyway
    logging.getLogger("rampart.access").setLevel(logging.WARNING)
    try:
        access.info("request", path="/v1/orders")
        access.warning("slow request", path="/v1/orders")
        configure_logging("error", json=True, stream=log_output)
        get_logger("rampart.other").warning("below the new level")
    finally:
        logging.getLogger("rampart.access").setLevel(logging.NOTSET)
    assert [e["event"] for e in lines(log_output)] == ["slow request"]


def test_the_keys_of_a_logged_mapping_are_redacted_too(log_output: io.StringIO) -> None:
    get_logger("test").info("pools %s", {"postgres://app:pw-in-a-key-42@db/rampart": 3})
    get_logger("test").info("seen", counts={"Bearer abcdefghijklmnopq": 2, (1, 2): "pair"})
    logging.getLogger("some.library").info({"redis://:r3dis-key-pw@cache:6379/0": 1})
    text = log_output.getvalue()
    for needle in ("pw-in-a-key-42", "abcdefghijklmnopq", "r3dis-key-pw"):
        assert needle not in text
    assert lines(log_output)[1]["counts"]["(1, 2)"] == "pair"


def test_a_callers_field_named_record_does_not_cost_the_line(log_output: io.StringIO) -> None:
    get_logger("test").info("kept", _record="just text")
    assert lines(log_output)[-1]["event"] == "kept"
