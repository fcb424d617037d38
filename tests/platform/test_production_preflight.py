"""`rampart serve` in the production profile: every unsafe setting refused, all at once, one line
each, before anything starts; and a safe configuration on PostgreSQL and Redis serves.

The database is a scratch one migrated by the superuser (the tables' owner), served as roles
created here: one the pre-flight accepts (owns nothing, no BYPASSRLS), and the ones it refuses.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.services import PG_ADMIN_URL, REDIS_URL, require, scratch_postgres
from typer.testing import CliRunner

from rampart.cli import app
from rampart.config import Settings
from rampart.platform.keys import new_key_text
from rampart.platform.migrate import upgrade

runner = CliRunner()


@dataclass(frozen=True)
class Database:
    #: The superuser that migrated the tables (and so owns them).
    superuser: str
    #: A role that owns nothing and has no BYPASSRLS: what production serves as.
    app: str
    bypass_rls: str
    #: Owns one table (taken over from the migrating superuser).
    table_owner: str


#: Production refuses a password-less or well-known service credential; the local server
#: trusts loopback connections, so these passwords are checked by the pre-flight, not by it.
ROLE_PASSWORD = "a-role-password-of-its-own-" + uuid.uuid4().hex[:8]


def _as_role(url: str, role: str) -> str:
    return (
        make_url(url)
        .set(username=role, password=ROLE_PASSWORD)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    suffix = uuid.uuid4().hex[:8]
    roles = {
        "app": (f"rampart_app_{suffix}", ""),
        "bypass_rls": (f"rampart_rls_{suffix}", " BYPASSRLS"),
        "table_owner": (f"rampart_own_{suffix}", ""),
    }
    try:
        with scratch_postgres("rampart_prod") as url:
            upgrade(url)
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for role, options in roles.values():
                    conn.execute(
                        text(
                            f'CREATE ROLE "{role}" LOGIN NOSUPERUSER{options} '
                            f"PASSWORD '{ROLE_PASSWORD}'"
                        )
                    )
                    conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
                    conn.execute(
                        text(
                            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                            f'TO "{role}"'
                        )
                    )
                    conn.execute(
                        text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
                    )
                owner = roles["table_owner"][0]
                conn.execute(text(f'ALTER TABLE identity_user OWNER TO "{owner}"'))
            admin.dispose()
            yield Database(
                superuser=make_url(url)
                .set(password=ROLE_PASSWORD)
                .render_as_string(hide_password=False),
                **{name: _as_role(url, role) for name, (role, _) in roles.items()},
            )
    finally:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for role, _ in roles.values():
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.fixture(scope="module")
def redis_url_with_credential() -> Iterator[str]:
    """The test Redis reached as an ACL user of its own with a long password, as production must
    (`redis://user:password@host`); the user is removed afterwards."""
    import redis

    require("Redis", "127.0.0.1", 6379)
    user = f"rampart_prod_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin = redis.Redis.from_url(REDIS_URL)
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    parts = REDIS_URL.split("://", 1)
    try:
        yield f"{parts[0]}://{user}:{password}@{parts[1]}"
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


@pytest.fixture
def good_env(database: Database, tmp_path: Path, redis_url_with_credential: str) -> dict[str, str]:
    return {
        "RAMPART_PROFILE": "production",
        "RAMPART_DATA_DIR": str(tmp_path / "var"),
        "RAMPART_DATABASE_URL": database.app,
        "RAMPART_REDIS_URL": redis_url_with_credential,
        "RAMPART_PUBLIC_URL": "https://trade.example.com",
        "RAMPART_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "RAMPART_VAULT__KEK": new_key_text(),
        "RAMPART_AUDIT__SIGNING_KEY": new_key_text(),
        "RAMPART_IDENTITY__JWT_SIGNING_KEY": new_key_text(),
        "RAMPART_MFA__WEBAUTHN_RP_ID": "trade.example.com",
        "RAMPART_AUDIT__CHECKPOINT_SINK": "https://witness.example.net/rampart",
        "RAMPART_AUDIT__ORIGIN": "trade.example.com/audit",
        "RAMPART_NOTIFICATIONS__EMAIL_TRANSPORT": "smtp",
        "RAMPART_NOTIFICATIONS__SMTP_HOST": "smtp.example.net",
        "RAMPART_NOTIFICATIONS__EMAIL_FROM": "Rampart <no-reply@example.com>",
        "RAMPART_NOTIFICATIONS__SMS_PROVIDER": "http",
        "RAMPART_NOTIFICATIONS__SMS_HTTP_URL": "https://sms.example.net/send",
        "RAMPART_NOTIFICATIONS__SMS_HTTP_TOKEN": "sms-token-for-the-test",
    }


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("RAMPART_")}


def _serve(env: dict[str, str | None]) -> tuple[int, str]:
    """Run `rampart serve` in-process with exactly these RAMPART_ variables."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("RAMPART_")}
    result = runner.invoke(app, ["serve", "--port", "1"], env={**unset, **env})
    return result.exit_code, result.output


def _key(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


ALSO_ZERO = _key(bytes(32))
COUNTING = _key(bytes(range(32)))
SHARED = new_key_text()

# Each entry: (changes to the good environment, a text the refusal's line must hold). A value of
# None removes the variable; "<role>" names a database role from the fixture.
REFUSALS: dict[str, tuple[dict[str, str | None], str]] = {
    "pre-trade-controls": ({"RAMPART_RISK__PRE_TRADE": "controls"}, "RAMPART_RISK__PRE_TRADE"),
    "mfa-not-required": (
        {"RAMPART_MFA__REQUIRED_FOR_TRADING": "false"},
        "RAMPART_MFA__REQUIRED_FOR_TRADING must be true",
    ),
    "simulator-on": ({"RAMPART_TRADING__SIMULATOR": "true"}, "RAMPART_TRADING__SIMULATOR"),
    "kek-is-jwt-key": (
        {"RAMPART_VAULT__KEK": SHARED, "RAMPART_IDENTITY__JWT_SIGNING_KEY": SHARED},
        "RAMPART_VAULT__KEK and RAMPART_IDENTITY__JWT_SIGNING_KEY hold the same key",
    ),
    "kek-is-audit-key": (
        {"RAMPART_VAULT__KEK": SHARED, "RAMPART_AUDIT__SIGNING_KEY": SHARED},
        "RAMPART_VAULT__KEK and RAMPART_AUDIT__SIGNING_KEY hold the same key",
    ),
    "audit-key-is-jwt-key": (
        {"RAMPART_AUDIT__SIGNING_KEY": SHARED, "RAMPART_IDENTITY__JWT_SIGNING_KEY": SHARED},
        "RAMPART_AUDIT__SIGNING_KEY and RAMPART_IDENTITY__JWT_SIGNING_KEY hold the same key",
    ),
    "zero-key": ({"RAMPART_VAULT__KEK": ALSO_ZERO}, "RAMPART_VAULT__KEK is not random"),
    "counting-key": (
        {"RAMPART_AUDIT__SIGNING_KEY": COUNTING},
        "RAMPART_AUDIT__SIGNING_KEY is not random",
    ),
    "superuser-role": ({"RAMPART_DATABASE_URL": "<superuser>"}, "is a superuser"),
    "bypass-rls-role": ({"RAMPART_DATABASE_URL": "<bypass_rls>"}, "has BYPASSRLS"),
    "table-owner-role": ({"RAMPART_DATABASE_URL": "<table_owner>"}, "owns tables (identity_user)"),
    "remote-database-without-tls": (
        {"RAMPART_DATABASE_URL": "postgresql+psycopg://rampart@db.invalid/rampart"},
        "reaches db.invalid without TLS",
    ),
    "remote-database-tls-unverified": (
        {"RAMPART_DATABASE_URL": "postgresql+psycopg://rampart@db.invalid/rampart?sslmode=require"},
        "sslmode=require, which takes any certificate",
    ),
    "database-without-password": (
        {"RAMPART_DATABASE_URL": "postgresql+psycopg://rampart_app@127.0.0.1/rampart"},
        "RAMPART_DATABASE_URL carries no password",
    ),
    "database-well-known-password": (
        {"RAMPART_DATABASE_URL": "postgresql+psycopg://postgres:postgres@127.0.0.1/rampart"},
        "RAMPART_DATABASE_URL uses a default or well-known password",
    ),
    "database-short-password": (
        {"RAMPART_DATABASE_URL": "postgresql+psycopg://app:Tr0ub4dor@127.0.0.1/rampart"},
        "RAMPART_DATABASE_URL has a password shorter than 16",
    ),
    "redis-without-password": (
        {"RAMPART_REDIS_URL": "redis://127.0.0.1:6379/15"},
        "RAMPART_REDIS_URL carries no password",
    ),
    "redis-default-password": (
        {"RAMPART_REDIS_URL": "redis://default:changeme@127.0.0.1:6379/15"},
        "RAMPART_REDIS_URL uses a default or well-known password",
    ),
    "tls-ca-file-missing": (
        {"RAMPART_TLS_CA_BUNDLE": "/nonexistent/internal-ca.pem"},
        "RAMPART_TLS_CA_BUNDLE cannot be read as a PEM CA bundle",
    ),
    "remote-redis-without-tls": (
        {"RAMPART_REDIS_URL": "redis://cache.invalid:6379/0"},
        "reaches cache.invalid without TLS",
    ),
    "redis-tls-unverified": (
        {"RAMPART_REDIS_URL": "rediss://cache.invalid:6380/0?ssl_cert_reqs=none"},
        "ssl_cert_reqs=none",
    ),
    "witness-http": (
        {"RAMPART_AUDIT__CHECKPOINT_SINK": "http://witness.example.net/rampart"},
        "must be https://, not http://",
    ),
    "witness-loopback": (
        {"RAMPART_AUDIT__CHECKPOINT_SINK": "https://127.0.0.1:9000/rampart"},
        "points at this host",
    ),
    "witness-same-host-as-service": (
        {"RAMPART_AUDIT__CHECKPOINT_SINK": "https://trade.example.com/witness"},
        "points at this host",
    ),
    "witness-local-directory": (
        {"RAMPART_AUDIT__CHECKPOINT_SINK": "/var/lib/rampart/checkpoints"},
        "must be an https:// witness on another host",
    ),
    "witness-unset": (
        {"RAMPART_AUDIT__CHECKPOINT_SINK": None},
        "must be an https:// witness on another host",
    ),
    "debug-logging": ({"RAMPART_LOG_LEVEL": "debug"}, "RAMPART_LOG_LEVEL=debug"),
    "plain-text-logs": ({"RAMPART_LOG_JSON": "false"}, "RAMPART_LOG_JSON must be true"),
    "long-idle-timeout": (
        {"RAMPART_IDENTITY__SESSION_IDLE_MINUTES": "240"},
        "RAMPART_IDENTITY__SESSION_IDLE_MINUTES=240 is above the production maximum",
    ),
    "long-absolute-timeout": (
        {"RAMPART_IDENTITY__SESSION_ABSOLUTE_HOURS": "72"},
        "RAMPART_IDENTITY__SESSION_ABSOLUTE_HOURS=72 is above the production maximum",
    ),
    "long-access-tokens": (
        {"RAMPART_IDENTITY__ACCESS_TOKEN_MINUTES": "60"},
        "RAMPART_IDENTITY__ACCESS_TOKEN_MINUTES=60 is above the production maximum",
    ),
    "long-refresh-tokens": (
        {"RAMPART_IDENTITY__REFRESH_TOKEN_HOURS": "720"},
        "RAMPART_IDENTITY__REFRESH_TOKEN_HOURS=720 is above the production maximum",
    ),
    "dev-mailbox-email": (
        {"RAMPART_NOTIFICATIONS__EMAIL_TRANSPORT": "mailbox"},
        "EMAIL_TRANSPORT=mailbox",
    ),
    "dev-mailbox-sms": ({"RAMPART_NOTIFICATIONS__SMS_PROVIDER": "mailbox"}, "SMS_PROVIDER=mailbox"),
    "no-smtp-host": (
        {"RAMPART_NOTIFICATIONS__SMTP_HOST": None},
        "set RAMPART_NOTIFICATIONS__SMTP_HOST",
    ),
    "placeholder-sender": (
        {"RAMPART_NOTIFICATIONS__EMAIL_FROM": None},
        "RAMPART_NOTIFICATIONS__EMAIL_FROM",
    ),
    "no-sms-url": (
        {"RAMPART_NOTIFICATIONS__SMS_HTTP_URL": None},
        "set RAMPART_NOTIFICATIONS__SMS_HTTP_URL",
    ),
    "no-sms-token": (
        {"RAMPART_NOTIFICATIONS__SMS_HTTP_TOKEN": None},
        "set RAMPART_NOTIFICATIONS__SMS_HTTP_TOKEN",
    ),
    "sms-over-http": (
        {"RAMPART_NOTIFICATIONS__SMS_HTTP_URL": "http://sms.example.net/send"},
        "SMS_HTTP_URL must be https://",
    ),
    "missing-blocklist": (
        {"RAMPART_IDENTITY__PASSWORD_BLOCKLIST_PATH": "/nonexistent/common-passwords.txt"},
        "PASSWORD_BLOCKLIST_PATH",
    ),
    # Refused before this change too: still listed with the rest.
    "dev-debug": ({"RAMPART_DEBUG": "true"}, "RAMPART_DEBUG must be false"),
}


def _apply(
    good: dict[str, str], database: Database, changes: dict[str, str | None]
) -> dict[str, str | None]:
    env: dict[str, str | None] = dict(good)
    for name, value in changes.items():
        if value is not None and value.startswith("<"):
            value = getattr(database, value.strip("<>"))
        env[name] = value
    return env


@pytest.mark.parametrize(("changes", "complaint"), REFUSALS.values(), ids=REFUSALS.keys())
def test_production_refuses_to_serve_with_each_unsafe_setting(
    good_env: dict[str, str],
    database: Database,
    changes: dict[str, str | None],
    complaint: str,
) -> None:
    code, output = _serve(_apply(good_env, database, changes))
    assert code == 2, output
    assert "Refusing to start" in output
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("- ")]
    assert any(complaint in line for line in lines), output
    assert "Traceback" not in output


def test_the_good_configuration_passes_the_preflight(
    good_env: dict[str, str], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rampart.platform.preflight import preflight

    for name, value in good_env.items():
        monkeypatch.setenv(name, value)
    assert preflight(Settings()) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(env: dict[str, str | None], *args: str) -> subprocess.Popen[bytes]:
    full = _clean_environment()
    full.update({k: v for k, v in env.items() if v is not None})
    return subprocess.Popen(
        [sys.executable, "-m", "rampart", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_every_problem_is_listed_at_once_one_line_each(
    good_env: dict[str, str], database: Database
) -> None:
    changes: dict[str, str | None] = {}
    complaints = []
    for name in ("simulator-on", "superuser-role", "witness-http", "debug-logging", "zero-key"):
        change, complaint = REFUSALS[name]
        changes.update(change)
        complaints.append(complaint)
    process = _run(_apply(good_env, database, changes), "serve", "--port", str(_free_port()))
    output, _ = process.communicate(timeout=60)
    text_out = output.decode()
    assert process.returncode == 2, text_out
    assert "Traceback" not in text_out
    problem_lines = [line for line in text_out.splitlines() if line.startswith("  - ")]
    for complaint in complaints:
        assert sum(complaint in line for line in problem_lines) == 1, text_out
    assert len(problem_lines) == len(complaints), text_out


@pytest.mark.slow
def test_a_good_production_configuration_serves_on_postgresql_and_redis(
    good_env: dict[str, str],
) -> None:
    port = _free_port()
    process = _run(good_env, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.terminate()
                output = process.communicate(timeout=20)[0].decode()
                raise AssertionError(f"serve did not start:\n{output[-3000:]}")
            time.sleep(0.2)
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
        # The API reference is off unless switched on.
        assert httpx.get(f"{base}/docs").status_code == 404
        assert httpx.get(f"{base}/openapi.json").status_code == 404
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_docs_are_off_by_default_in_production_and_can_be_switched() -> None:
    assert Settings(profile="production").api_docs_enabled is False
    assert Settings(profile="production", api_docs=True).api_docs_enabled is True
    assert Settings(profile="dev").api_docs_enabled is True
    assert Settings(profile="dev", api_docs=False).api_docs_enabled is False
