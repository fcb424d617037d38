"""Reaching the real PostgreSQL and Redis the tests need.

Under CI (`CI=true`) a missing service fails the run: a green suite must mean the storage tests
ran. On a developer's machine those tests skip with a message saying how to start the service.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "RAMPART_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RAMPART_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": (
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
    ),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}; start it with: {HOW_TO_START[name]}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


CHROMIUM = "/usr/bin/chromium"


def require_chromium() -> str:
    """Debian's Chromium, which the browser tests drive (a test tool may not fetch its own)."""
    import shutil

    if shutil.which(CHROMIUM):
        return CHROMIUM
    message = (
        f"Chromium is not installed at {CHROMIUM}; install Debian's package: "
        "apt-get install chromium"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own for one test, dropped afterwards."""
    require("PostgreSQL", "127.0.0.1", 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
