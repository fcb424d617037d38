"""The `rampart` command: version, migrations, and the demo server as a user starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rampart import __version__
from rampart.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_explains_each_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "db", "version"):
        assert command in result.output


def test_db_upgrade_then_serve_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAMPART_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rampart.db").exists()


def test_serve_refuses_an_unmigrated_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAMPART_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "rampart db upgrade" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_demo_serves_health_docs_and_problems(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "RAMPART_DATA_DIR": str(tmp_path / "var"), "RAMPART_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "rampart", "demo"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"demo did not start:\n{output[-3000:]}")
            time.sleep(0.2)
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
        assert httpx.get(f"{base}/docs").status_code == 200
        missing = httpx.get(f"{base}/definitely/not/here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
