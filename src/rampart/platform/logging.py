"""Structured JSON logs that cannot carry secrets.

Every log line, ours or a library's (uvicorn, SQLAlchemy), passes through `redact`, which removes:
values under sensitive keys (password, token, secret, authorization, cookie, account/card numbers,
...), any `Secret` value, and secret-shaped text inside strings (bearer tokens, JWTs, Rampart API
keys, card numbers that pass the Luhn check). Exceptions are logged by type and location only: an
exception message may quote SQL or the value that failed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import orjson
import structlog

from rampart.kernel.secret import REDACTED, Secret

# `(?<![a-z])x(?![a-z])` rather than `\bx\b`: `_` is a word character, so `\bkek\b` would miss
# `vault_kek` and `\bpan\b` would miss `card_pan`.
SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authorization|auth_header|cookie|session_id|"
    r"api[_-]?key|private[_-]?key|signing[_-]?key|(?<![a-z])keks?(?![a-z]|_id)|"
    r"(?<![a-z])(data|file|user|master|encryption|wrapping|hmac|root)[_-]?keys?(?![a-z]|_id)|"
    r"(?<![a-z])deks?(?![a-z])|seed|otp|totp|(backup|recovery)[_-]?codes?|(?<![a-z])pin(?![a-z])|"
    r"account[_-]?(number|no)|iban|routing|card[_-]?(number|no)|(?<![a-z])pan(?![a-z])|cvv|cvc|"
    r"tax[_-]?id|ssn|credential|signature",
    re.IGNORECASE,
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys (an unterminated block is cut to the end of the text).
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
        ),
        REDACTED,
    ),
    # Generated dev keys carry a marker, wherever they are pasted.
    (re.compile(r"rampart-dev-key:[A-Za-z0-9+/=_-]+"), REDACTED),
    # The password of a URL's userinfo: database, Redis and SMTP URLs in error messages.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s/@]+@"), r"\1" + REDACTED + "@"),
    # `password=...`, `api_key: ...` and the like in free text (a config dump, a DSN, a repr).
    (
        re.compile(
            r"(?i)\b(pass(?:word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|keks?)"
            r"([\"']?\s*[=:]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;&}]+"
        ),
        r"\1\2" + REDACTED,
    ),
    # Authorization header values, wherever they appear.
    (re.compile(r"(?i)\b(bearer|basic|digest)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # JWTs: three base64url segments, the first two starting like JSON objects.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Rampart API key secrets and refresh tokens carry a recognisable prefix.
    (re.compile(r"\brmp_[a-z]+_[A-Za-z0-9_-]{16,}"), REDACTED),
    # Sensitive query parameters in URLs.
    (
        re.compile(r"(?i)([?&](?:token|code|password|secret|key|signature)=)[^&\s\"']+"),
        r"\1" + REDACTED,
    ),
]
_CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _redact_cards(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return REDACTED if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)

    return _CARD_CANDIDATE.sub(replace, text)


# Something every match of `_PATTERNS` or a card candidate contains: text without any of these
# cannot hold a secret the patterns would remove, and skips them (one scan instead of nine
# substitutions). Wider than the patterns on purpose (case-insensitive, no word boundaries): a
# false alarm only costs the full pipeline.
_MAY_HOLD_SECRET = re.compile(
    r"-----BEGIN|rampart-dev-key:|://|pass|secret|token|api[_-]?key|private[_-]?key|kek|"
    r"bearer|basic|digest|eyJ|rmp_|[?&](?:code|key|signature)=|\d(?:[ -]?\d){12}",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    if not _MAY_HOLD_SECRET.search(text):
        return text
    return _redact_all(text)


def _redact_all(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _redact_cards(text)


@functools.lru_cache(maxsize=4096)
def _sensitive_key(key: str) -> bool:
    # Log field names come from a small set fixed in the code: remember each verdict.
    return SENSITIVE_KEY.search(key) is not None


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with every secret replaced by `[REDACTED]`."""
    if depth > 8:
        return REDACTED
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            # A key is text like any other (a connection URL can be a key), and a key that is not
            # a string is written as text: as JSON would, and renderable whatever its type.
            name = key if isinstance(key, str) else str(key)
            sensitive = _sensitive_key(name) and item is not None
            out[redact_text(name)] = REDACTED if sensitive else redact(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, depth + 1) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is rendered as text first, then scrubbed like text.
    return redact_text(str(value))


_EVENT_KEYS_KEPT = {"event", "level", "timestamp", "logger", "request_id"}
#: Values that cannot carry text (exact types: a subclass may render as anything).
_PLAIN = frozenset({int, float, bool})


def _formatter_meta(key: str, value: Any) -> bool:
    """What structlog's formatter carries with a standard library record (the record, and a flag)
    for the processors after this one, removed before rendering; a caller's own `_record` field
    is redacted like any other."""
    if key == "_record":
        return isinstance(value, logging.LogRecord)
    return key == "_from_structlog" and value.__class__ is bool


def redaction_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    texts: list[str] = []
    for key in list(event_dict):
        value = event_dict[key]
        if value is None or _formatter_meta(key, value):
            continue
        if key not in _EVENT_KEYS_KEPT and _sensitive_key(key):
            event_dict[key] = REDACTED
        elif value.__class__ is str:
            texts.append(key)
        elif value.__class__ not in _PLAIN:
            event_dict[key] = redact(value)
    # The line's text is screened in one scan: a secret-shaped piece of any value is a piece of
    # the joined text, so a clean join means every value is clean (a match across the seam is a
    # false alarm, and only costs the scan of each value).
    if texts and _MAY_HOLD_SECRET.search("\n".join([event_dict[key] for key in texts])):
        for key in texts:
            event_dict[key] = redact_text(event_dict[key])
    return event_dict


def exception_summary(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace exc_info by the exception's type and where it was raised: no message, no trace."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        exc_type, _exc, tb = exc_info
        if exc_type is not None:
            event_dict["exc_type"] = f"{exc_type.__module__}.{exc_type.__qualname__}"
            where = _innermost_frame(tb)
            if where:
                event_dict["exc_where"] = where
    event_dict.pop("stack_info", None)
    return event_dict


def _innermost_frame(tb: TracebackType | None) -> str | None:
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return None
    code = last.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{last.tb_lineno} in {code.co_name}"


class _StdlibFilter(logging.Filter):
    """Format stdlib records' arguments through the redactor before they are rendered."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Mapping):
            # A library logging a mapping of its own: redact it by key, like our own fields.
            record.msg = str(redact(record.msg))
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not break the caller
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info:
            exc_type = record.exc_info[0]
            record.msg += f" [{exc_type.__name__ if exc_type else 'exception'}]"
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


def _json_line(event_dict: Any, **_kw: Any) -> str:
    try:
        return orjson.dumps(event_dict, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits: the standard library renders anything else
        return json.dumps(event_dict, default=str)


#: The handler `configure_logging` installed: our own lines are written to its stream under its
#: lock, so that they never interleave with the standard library's.
_sink: logging.StreamHandler[TextIO] | None = None


class _LineLogger:
    """What structlog writes our own events to: the rendered line, straight to the sink.

    Our events skip the standard library's machinery (a `LogRecord`, a caller lookup, a second
    record in the formatter): through it, the access log line cost more than a third of an echo
    request's CPU. The standard library's logger of the same name still decides the level, so
    `logging.getLogger(name).setLevel(...)` quiets our loggers as it does the libraries'."""

    __slots__ = ("_levels", "name")

    def __init__(self, name: str | None = None) -> None:
        self.name = name or "root"
        self._levels = logging.getLogger(name)

    def enabled_for(self, level: int) -> bool:
        return self._levels.isEnabledFor(level)

    def msg(self, message: str) -> None:
        handler = _sink
        if handler is None:
            return
        with handler.lock:  # type: ignore[union-attr]
            handler.stream.write(message + "\n")
            handler.stream.flush()

    debug = info = warning = error = critical = msg


class _BoundLogger(structlog.BoundLoggerBase):
    """The loggers `get_logger` returns: structlog's, with the standard library's rules.

    - Positional arguments are never interpolated into the message: they go to the line as
      `positional_args`, redacted like any field (interpolated, a dict or bytes argument would
      reach the text before redaction could see its keys).
    - Logging never raises into the caller: a line that cannot be rendered or written is
      replaced by a notice that names the failure, as `logging.Handler.handleError` would."""

    def _log(self, level: int, method: str, event: str | None, args: Any, kw: Any) -> None:
        logger: _LineLogger = self._logger
        if not logger.enabled_for(level):
            return
        if args:
            kw["positional_args"] = args
        try:
            self._proxy_to_logger(method, event, **kw)
        except Exception as exc:  # noqa: BLE001 - a broken log call must not break the caller
            _unrenderable(logger, method, exc)

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._log(logging.DEBUG, "debug", event, args, kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._log(logging.INFO, "info", event, args, kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._log(logging.WARNING, "warning", event, args, kw)

    warn = warning

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._log(logging.ERROR, "error", event, args, kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._log(logging.ERROR, "error", event, args, kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._log(logging.CRITICAL, "critical", event, args, kw)

    fatal = critical


def _add_logger_name(
    logger: _LineLogger, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict["logger"] = logger.name
    return event_dict


def _unrenderable(logger: _LineLogger, method: str, exc: Exception) -> None:
    # Only names: the values that failed to render are exactly what must not be written raw.
    notice = {
        "event": "log line not written",
        "level": method,
        "logger": logger.name,
        "error": type(exc).__name__,
    }
    with contextlib.suppress(Exception):
        logger.msg(json.dumps(notice))


def configure_logging(
    level: str = "info", *, json: bool = True, stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library through one redacting JSON pipeline.

    Our own events (structlog) are rendered by structlog alone and written by `_LineLogger`;
    the standard library's records (uvicorn, SQLAlchemy, libraries) go through a handler that
    applies the same redaction first. Both write to `stream`, one line per event."""
    global _sink
    stream = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=lambda *_: None)
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # The level, our logger's name and the time are ours, added after redaction: nothing to scan.
    ours: list[Any] = [
        structlog.contextvars.merge_contextvars,
        exception_summary,
        redaction_processor,
        structlog.processors.add_log_level,
        _add_logger_name,
        stamp,
    ]
    # A library's logger name is theirs to choose: it is redacted with the rest.
    theirs: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        stamp,
        exception_summary,
        redaction_processor,
    ]
    structlog.configure(
        processors=[*ours, renderer],
        logger_factory=_LineLogger,
        wrapper_class=_BoundLogger,
        # Not cached: a logger always follows the configuration of the moment (tests reconfigure).
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.addFilter(_StdlibFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=theirs,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _sink = handler
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own middleware writes the access log, without query strings.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
