"""The production pre-flight: everything `rampart serve` checks before it serves, listed at once.

`rampart.config.production_problems` refuses settings that are unsafe for any command. Serving
needs more, and some of it can only be seen with a connection: the database role the app runs
as (row-level security binds neither a superuser, nor a BYPASSRLS role, nor the tables' owner, see
`rampart.access.rls`), and whether the schema is current. An operator fixing a deployment wants
every reason in one go, one line each, not one traceback per restart: so nothing here raises,
every check adds its lines and the caller prints them all.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools
from email.utils import parseaddr
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from rampart.config import Settings, production_problems
from rampart.platform.keys import KeyMaterialError, decode_key

#: Production ceilings on how long a sign-in lasts: beyond them a stolen cookie or token is
#: worth too much (the lower bounds are in the settings themselves).
MAX_SESSION_IDLE_MINUTES = 30
MAX_SESSION_ABSOLUTE_HOURS = 24
MAX_ACCESS_TOKEN_MINUTES = 15
MAX_REFRESH_TOKEN_HOURS = 7 * 24
#: 32 random bytes show ~30 distinct values; fewer than this is a typed or patterned "key".
MIN_DISTINCT_KEY_BYTES = 16
CONNECT_TIMEOUT_SECONDS = 5
TLS_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})
#: `require` encrypts but takes any certificate: a man in the middle presents his own.
VERIFIED_SSLMODES = frozenset({"verify-ca", "verify-full"})
#: Passwords that ship as defaults, fill tutorials or are the first an attacker tries against a
#: database or cache. Compared case-insensitively; the role or user name itself is added.
WELL_KNOWN_PASSWORDS = frozenset(
    {
        "postgres", "password", "passw0rd", "secret", "changeme", "change-me", "admin",
        "root", "rampart", "redis", "default", "test", "example", "123456", "12345678", "pass",
        "letmein", "qwerty",
    }
)  # fmt: skip
#: Shorter than this, a service password falls to an online guess long before anyone notices.
MIN_SERVICE_PASSWORD_CHARS = 16


def preflight(settings: Settings, *, connect: bool = True) -> list[str]:
    """Every reason `settings` must not serve in production (empty when they may, or in dev)."""
    if settings.profile != "production":
        return []
    problems = production_problems(settings) + serving_problems(settings)
    if connect:
        problems += connection_problems(settings)
    return problems


def serving_problems(settings: Settings) -> list[str]:
    """The checks of the settings alone (no connection)."""
    return [
        *_trading_problems(settings),
        *_root_key_problems(settings),
        *_transport_problems(settings),
        *_credential_problems(settings),
        *_ca_problems(settings),
        *_witness_problems(settings),
        *_logging_problems(settings),
        *_session_problems(settings),
        *_notification_problems(settings),
        *_file_problems(settings),
    ]


def _trading_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.risk.pre_trade != "full":
        problems.append("risk: RAMPART_RISK__PRE_TRADE=controls skips the account checks; use full")
    if not settings.mfa.required_for_trading:
        problems.append("mfa: RAMPART_MFA__REQUIRED_FOR_TRADING must be true in production")
    if settings.email_factor_allowed:
        problems.append(
            "mfa: RAMPART_MFA__EMAIL_FACTOR_ENABLED must be false in production (a code sent to "
            "the mailbox that resets the password is no second factor)"
        )
    if settings.trading.simulator:
        problems.append(
            "trading: RAMPART_TRADING__SIMULATOR places demo orders; turn it off in production"
        )
    return problems


def _decoded(name: str, value: SecretStr | None) -> bytes | None:
    if value is None:
        return None
    try:
        return decode_key(value.get_secret_value(), name)
    except KeyMaterialError:
        return None  # `production_problems` already names a malformed key


def _degenerate(raw: bytes) -> bool:
    steps = {(b - a) % 256 for a, b in itertools.pairwise(raw)}
    return len(set(raw)) < MIN_DISTINCT_KEY_BYTES or len(steps) == 1


def _root_key_problems(settings: Settings) -> list[str]:
    """Each root key must be its own random bytes: one leaked key must not open the others (a
    JWT key equal to the KEK would let a token forger unwrap every data key)."""
    keys = [
        ("RAMPART_VAULT__KEK", _decoded("vault_kek", settings.vault.kek)),
        ("RAMPART_AUDIT__SIGNING_KEY", _decoded("audit_signing", settings.audit.signing_key)),
        (
            "RAMPART_IDENTITY__JWT_SIGNING_KEY",
            _decoded("jwt_signing", settings.identity.jwt_signing_key),
        ),
    ]
    keys += [
        ("RAMPART_VAULT__PREVIOUS_KEKS", _decoded("vault_kek", key))
        for key in settings.vault.previous_keks
    ]
    problems = []
    for name, raw in keys:
        if raw is not None and _degenerate(raw):
            problems.append(f"keys: {name} is not random (repeated or patterned bytes)")
    for i, (name, raw) in enumerate(keys):
        for other, other_raw in keys[i + 1 :]:
            if raw is None or other_raw is None or name == other:
                continue
            if hmac.compare_digest(raw, other_raw):
                problems.append(f"keys: {name} and {other} hold the same key; give each its own")
    return problems


def _loopback(host: str | None) -> bool:
    """Whether `host` is this machine (no host, or a path, means a local Unix socket)."""
    if not host or host.startswith("/"):
        return True
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _transport_problems(settings: Settings) -> list[str]:
    problems = []
    if not settings.uses_sqlite:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(settings.effective_database_url)
        except ArgumentError:
            return ["database: RAMPART_DATABASE_URL is not a database URL"]
        query_host = url.query.get("host")
        host = url.host or (query_host if isinstance(query_host, str) else None)
        sslmode = url.query.get("sslmode")
        if not _loopback(host) and sslmode not in TLS_SSLMODES:
            problems.append(
                f"database: RAMPART_DATABASE_URL reaches {host} without TLS; add "
                "?sslmode=verify-full"
            )
        elif not _loopback(host) and sslmode not in VERIFIED_SSLMODES:
            problems.append(
                f"database: RAMPART_DATABASE_URL reaches {host} with sslmode={sslmode}, which "
                "takes any certificate; use sslmode=verify-full (and RAMPART_TLS_CA_BUNDLE for an "
                "internal CA)"
            )
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        scheme = parts.scheme.lower()
        cert_reqs = parse_qs(parts.query).get("ssl_cert_reqs", [""])[0].lower()
        if scheme == "rediss" and cert_reqs == "none":
            problems.append(
                "redis: RAMPART_REDIS_URL turns certificate checks off (ssl_cert_reqs=none)"
            )
        elif scheme == "redis" and not _loopback(parts.hostname):
            problems.append(
                f"redis: RAMPART_REDIS_URL reaches {parts.hostname} without TLS; use rediss://"
            )
    return problems


def _password_problem(what: str, setting: str, user: str | None, password: str | None) -> str:
    if not password:
        return (
            f"{what}: {setting} carries no password; every service connection authenticates "
            "with its own credential in production"
        )
    if password.lower() in WELL_KNOWN_PASSWORDS or password == user:
        return f"{what}: {setting} uses a default or well-known password; give it its own"
    if len(password) < MIN_SERVICE_PASSWORD_CHARS:
        return (
            f"{what}: {setting} has a password shorter than {MIN_SERVICE_PASSWORD_CHARS} "
            "characters; generate a long random one"
        )
    return ""


def _credential_problems(settings: Settings) -> list[str]:
    """Each backend connection authenticates with a credential of its own (ASVS 13.2.1, 13.2.3):
    a password-less (trust) database role or an open Redis is reachable by anything that can
    reach the port, and a default password is the first one tried. A database login by client
    certificate (`sslcert` in the URL) counts as a credential."""
    problems = []
    if not settings.uses_sqlite:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(settings.effective_database_url)
        except ArgumentError:
            return []  # `_transport_problems` names it
        if not url.query.get("sslcert"):
            problems.append(
                _password_problem("database", "RAMPART_DATABASE_URL", url.username, url.password)
            )
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        problems.append(
            _password_problem("redis", "RAMPART_REDIS_URL", parts.username, parts.password)
        )
    return [p for p in problems if p]


def _ca_problems(settings: Settings) -> list[str]:
    ca_file = settings.tls_ca_bundle
    if ca_file is None:
        return []
    import ssl

    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError, ValueError) as exc:
        return [
            f"tls: RAMPART_TLS_CA_BUNDLE cannot be read as a PEM CA bundle ({type(exc).__name__})"
        ]
    if not context.get_ca_certs():
        return ["tls: RAMPART_TLS_CA_BUNDLE holds no CA certificate"]
    return []


def _witness_problems(settings: Settings) -> list[str]:
    """Checkpoints prove the audit log untouched only if whoever could rewrite the log cannot
    rewrite them too: they must leave this host, over a channel nobody can alter."""
    sink = settings.audit.checkpoint_sink
    setting = "RAMPART_AUDIT__CHECKPOINT_SINK"
    if not sink or not sink.startswith(("http://", "https://")):
        return [
            f"audit: {setting} must be an https:// witness on another host; a directory here "
            "can be rewritten along with the log"
        ]
    if sink.startswith("http://"):
        return [f"audit: {setting} must be https://, not http://"]
    host = (urlsplit(sink).hostname or "").lower()
    public_host = (urlsplit(settings.public_url or "").hostname or "").lower()
    if _loopback(host) or host == public_host:
        return [f"audit: {setting} points at this host ({host}); use a witness on another host"]
    return []


def _logging_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.log_level == "debug":
        problems.append("logging: RAMPART_LOG_LEVEL=debug in production; use info or higher")
    if not settings.log_json:
        problems.append("logging: RAMPART_LOG_JSON must be true in production (JSON lines)")
    return problems


def _session_problems(settings: Settings) -> list[str]:
    identity = settings.identity
    limits = [
        ("SESSION_IDLE_MINUTES", identity.session_idle_minutes, MAX_SESSION_IDLE_MINUTES),
        ("SESSION_ABSOLUTE_HOURS", identity.session_absolute_hours, MAX_SESSION_ABSOLUTE_HOURS),
        ("ACCESS_TOKEN_MINUTES", identity.access_token_minutes, MAX_ACCESS_TOKEN_MINUTES),
        ("REFRESH_TOKEN_HOURS", identity.refresh_token_hours, MAX_REFRESH_TOKEN_HOURS),
    ]
    return [
        f"sessions: RAMPART_IDENTITY__{name}={value} is above the production maximum of {most}"
        for name, value, most in limits
        if value > most
    ]


def _notification_problems(settings: Settings) -> list[str]:
    cfg = settings.notifications
    prefix = "RAMPART_NOTIFICATIONS__"
    problems = []
    if cfg.email_transport == "mailbox":
        problems.append(
            f"notifications: {prefix}EMAIL_TRANSPORT=mailbox writes reset links to local files; "
            "use smtp"
        )
    elif not cfg.smtp_host:
        problems.append(f"notifications: set {prefix}SMTP_HOST for the smtp transport")
    sender = parseaddr(cfg.email_from)[1]
    if "@" not in sender or sender.lower().endswith(".invalid"):
        problems.append(f"notifications: set {prefix}EMAIL_FROM to your own sender address")
    if cfg.sms_provider == "mailbox":
        problems.append(
            f"notifications: {prefix}SMS_PROVIDER=mailbox writes one-time codes to local files; "
            "use http"
        )
    else:
        if not cfg.sms_http_url:
            problems.append(f"notifications: set {prefix}SMS_HTTP_URL for the http SMS provider")
        elif not cfg.sms_http_url.startswith("https://"):
            problems.append(f"notifications: {prefix}SMS_HTTP_URL must be https://")
        if cfg.sms_http_token is None:
            problems.append(f"notifications: set {prefix}SMS_HTTP_TOKEN (or its _FILE)")
    return problems


def _file_problems(settings: Settings) -> list[str]:
    path = settings.identity.password_blocklist_path
    if path is not None and not path.is_file():
        return [f"identity: RAMPART_IDENTITY__PASSWORD_BLOCKLIST_PATH: no file at {path}"]
    return []


# --- with a connection ------------------------------------------------------------------------
_ROLE = "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
#: Tables the current role owns or may become the owner of (membership in the owning role).
_OWNED = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND pg_has_role(current_user, c.relowner, 'MEMBER')
ORDER BY c.relname LIMIT 3
"""


def connection_problems(settings: Settings) -> list[str]:
    """Connect to PostgreSQL and Redis: reachable, a role row-level security binds, a current
    schema. Only the failure's kind is printed, never its message (it may carry a URL)."""
    problems = []
    if not settings.uses_sqlite:
        problems += _database_problems(settings.effective_database_url)
    redis_url = settings.effective_redis_url
    if redis_url:
        problems += _redis_problems(redis_url)
    return problems


def _database_problems(url: str) -> list[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from rampart.platform.db import normalise_url
    from rampart.platform.migrate import NotMigratedError, assert_migrated

    url = normalise_url(url)
    if make_url(url).get_backend_name() != "postgresql":
        return []
    engine = create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    )
    problems = []
    try:
        with engine.connect() as conn:
            role = conn.execute(text(_ROLE)).one()
            owned = [] if role.rolsuper else list(conn.execute(text(_OWNED)).scalars())
        if role.rolsuper:
            problems.append(
                "database: the role in RAMPART_DATABASE_URL is a superuser; row-level security "
                "does not bind it. Serve as a role that owns nothing (see rampart.access.rls)"
            )
        elif role.rolbypassrls:  # (a superuser has it too: one line says enough)
            problems.append(
                "database: the role in RAMPART_DATABASE_URL has BYPASSRLS; serve as a role "
                "without it"
            )
        if owned:
            tables = ", ".join(owned)
            problems.append(
                f"database: the role in RAMPART_DATABASE_URL owns tables ({tables}); owners "
                "bypass row-level security. Migrate as the owner, serve as another role"
            )
        assert_migrated(engine, url)
    except NotMigratedError:
        problems.append("database: the schema is not current; run `rampart db upgrade` first")
    except SQLAlchemyError as exc:
        problems.append(f"database: cannot check the database ({type(exc).__name__})")
    finally:
        engine.dispose()
    return problems


def _redis_problems(url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(
        url,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return [f"redis: cannot reach RAMPART_REDIS_URL ({type(exc).__name__})"]
    finally:
        client.close()
    return []
