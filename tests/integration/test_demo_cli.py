"""`rampart demo` as a person runs it: a subprocess on a free port with its own data directory.

It prints how to sign in; signing in as the demo trader with the printed password and a TOTP
code from the printed key works over HTTP; the market moves (quotes or trades change within a
few seconds, read through the API); the demo bot's orders, placed with its API key through
`rampart.client`, appear in its order history and get cancelled; Ctrl-C stops everything cleanly,
leaving none of the bot's orders resting; and the printed password is in no log line.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pyotp
import pytest
from sqlalchemy import create_engine, select

from rampart.apikeys.db import ApiKeyRow
from rampart.simulator.demo import BOT_KEY_LABEL, TRADER_EMAIL
from rampart.trading.db import OrderRow
from tests.support.services import require_chromium

pytestmark = pytest.mark.slow

START_SECONDS = 25
MOVE_SECONDS = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


class Demo:
    def __init__(self, process: subprocess.Popen[str], base: str, data_dir: Path) -> None:
        self.process = process
        self.base = base
        self.data_dir = data_dir
        self.stdout: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        threading.Thread(target=_lines, args=(process.stdout, self.stdout), daemon=True).start()

    def printed_value(self, label: str, deadline: float) -> str:
        pattern = re.compile(rf"^\s*{label}\s+(\S+)")
        while True:
            for line in self.printed:
                match = pattern.match(line)
                if match:
                    return match.group(1)
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"`rampart demo` printed no {label!r}: {self.printed}"
            try:
                self.printed.append(self.stdout.get(timeout=remaining))
            except queue.Empty:
                continue


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = _free_port()
    data_dir = tmp_path / "var"
    env = {
        **os.environ,
        "RAMPART_DATA_DIR": str(data_dir),
        "RAMPART_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAMPART_DATABASE_URL", None)
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "rampart", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    running = Demo(process, f"http://127.0.0.1:{port}", data_dir)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def _wait_healthy(http: httpx.Client, demo: Demo, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert demo.process.poll() is None, "`rampart demo` exited"
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("`rampart demo` did not become healthy")


def _market(http: httpx.Client, symbols: list[str]) -> dict[str, Any]:
    state = {}
    for symbol in symbols:
        book = http.get(f"/v1/market/{symbol}/book", params={"depth": 3}).json()
        state[symbol] = (book["last_price"], book["bids"], book["asks"])
    return state


def _bot_orders(data_dir: Path) -> list[OrderRow]:
    engine = create_engine(f"sqlite:///{data_dir / 'rampart.db'}")
    try:
        with engine.connect() as conn:
            # Addresses are sealed at rest: the bot is the owner of the demo bot's API key.
            bot = conn.scalar(
                select(ApiKeyRow.user_id).where(
                    ApiKeyRow.label == BOT_KEY_LABEL, ApiKeyRow.revoked_at.is_(None)
                )
            )
            assert bot is not None, "no demo bot user"
            return list(conn.execute(select(OrderRow).where(OrderRow.user_id == bot)).all())
    finally:
        engine.dispose()


def test_demo_shows_a_moving_market_and_a_bot_placing_and_cancelling(
    demo: Demo, tmp_path: Path
) -> None:
    deadline = time.monotonic() + START_SECONDS
    email = demo.printed_value("email", deadline)
    password = demo.printed_value("password", deadline)
    totp_key = demo.printed_value("TOTP key", deadline)
    assert email == TRADER_EMAIL

    with httpx.Client(base_url=demo.base, timeout=10) as http:
        _wait_healthy(http, demo, deadline)

        # Sign in as the demo trader: password, then the code the printed authenticator key
        # shows now (enrolment spent the step before it).
        first = http.post("/v1/auth/login", json={"email": email, "password": password})
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "second_factor_required"
        code = pyotp.TOTP(totp_key).at(int(time.time()))
        done = http.post(
            "/v1/auth/login/mfa",
            json={"pending_token": first.json()["pending_login"], "kind": "totp", "code": code},
        )
        assert done.status_code == 200, done.text
        http.headers["Authorization"] = f"Bearer {done.json()['access_token']}"
        assert http.get("/v1/account").json()["cash"] == "100000"

        symbols = [i["symbol"] for i in http.get("/v1/instruments").json()]
        assert {"ACME", "GLOBX", "INTK"} <= set(symbols)

        # The market moves: quotes change, and trades happen, within a few seconds.
        before = _market(http, symbols)
        moved = traded = False
        until = time.monotonic() + MOVE_SECONDS
        while not (moved and traded) and time.monotonic() < until:
            time.sleep(0.5)
            now = _market(http, symbols)
            moved = moved or now != before
            traded = any(now[s][0] is not None and now[s][0] != before[s][0] for s in symbols)
        assert moved, "the market did not move"
        assert traded, "nothing traded"

        # The bot's orders appear in its history, and some are cancelled by the bot.
        until = time.monotonic() + MOVE_SECONDS
        orders = _bot_orders(demo.data_dir)
        while time.monotonic() < until and not any(o.status == "cancelled" for o in orders):
            time.sleep(0.5)
            orders = _bot_orders(demo.data_dir)
        assert any(o.type == "limit" for o in orders), "the bot placed no order"
        assert any(o.status == "cancelled" and o.reason == "user-cancelled" for o in orders)

    # Ctrl-C: the server, the simulator and the bot stop cleanly.
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(20) == 0
    resting = [
        o for o in _bot_orders(demo.data_dir) if o.status in ("accepted", "partially_filled")
    ]
    assert resting == []
    logs = (tmp_path / "demo.log").read_text()
    assert password not in logs
    assert totp_key not in logs
    # Human-friendly log lines, not JSON, and no per-request access lines.
    assert not any(line.startswith("{") for line in logs.splitlines())
    assert "path=/v1/orders" not in logs


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.mark.browser
def test_a_person_signs_in_watches_the_live_market_and_trades_in_a_browser(demo: Demo) -> None:
    """Headless Chromium at the printed address: sign in with the printed password and a TOTP
    code, watch the market page go live over the stream, place a limit order and cancel it.
    Leaves a screenshot in artifacts/market.png."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from tests.mfa.test_browser import CHROMIUM_ARGS

    deadline = time.monotonic() + START_SECONDS
    password = demo.printed_value("password", deadline)
    totp_key = demo.printed_value("TOTP key", deadline)
    with httpx.Client(base_url=demo.base, timeout=10) as http:
        _wait_healthy(http, demo, deadline)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{demo.base}/login")
            page.fill('input[name="email"]', TRADER_EMAIL)
            page.fill('input[name="password"]', password)
            page.click('button[type="submit"]')
            page.wait_for_url(re.compile(r".*/login/second-factor.*"))
            page.fill('input[name="code"]', pyotp.TOTP(totp_key).at(int(time.time())))
            page.click('form:has(input[name="kind"][value="totp"]) button[type="submit"]')
            page.wait_for_url(re.compile(r".*/security.*"))

            page.goto(f"{demo.base}/market")
            expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=10_000)
            expect(page.locator(".trades li:not(.hint)").first).to_be_visible(timeout=15_000)

            page.select_option('select[name="symbol"]', "ACME")
            last = page.locator('section[data-symbol="ACME"] [data-field="last"]').inner_text()
            page.fill('input[name="quantity"]', "5")
            # A dollar below the last trade: it rests in the book.
            page.fill('input[name="limit_price"]', f"{float(last) - 1:.2f}")
            page.click('form.order-form button[type="submit"]')
            page.wait_for_url(re.compile(r".*/market\?order=.*"))
            expect(page.locator("p.notice")).to_contain_text("accepted")
            rows = page.locator("#open-orders tbody tr")
            expect(rows).to_have_count(1)
            expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=10_000)
            expect(page.locator(".trades li:not(.hint)").first).to_be_visible(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "market.png"), full_page=True)

            rows.first.locator("button").click()
            page.wait_for_url(re.compile(r".*/market\?order=.*"))
            expect(page.locator("p.notice")).to_contain_text("cancelled")
            expect(page.locator("#open-orders tbody tr")).to_have_count(0)
        finally:
            browser.close()
