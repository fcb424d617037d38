"""`rampart halt` and `rampart risk`: the kill switch from a shell, with the same checks."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.risk.cli import mount
from tests.access.support import new_account
from tests.trading.support import ACME, seed


def cli(settings: Settings, clock: FrozenClock) -> typer.Typer:
    app = typer.Typer()
    mount(app, lambda: bootstrap(settings, clock=clock))
    return app


def output_json(text: str) -> dict[str, object]:
    # Log lines may precede the JSON document on stdout.
    return dict(json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text))


def test_halt_and_four_eyes_resume_from_the_cli(
    container: Container, settings: Settings, clock: FrozenClock
) -> None:
    alice, bob = new_account(container, "COMPLIANCE"), new_account(container, "COMPLIANCE")
    trader = new_account(container, "TRADER")
    seed(container, ACME)  # a halt names a defined instrument (a typo is refused)
    app, runner = cli(settings, clock), CliRunner()
    refused = runner.invoke(app, ["halt", "symbol", "ACME", "--as", trader, "--reason", "x"])
    assert refused.exit_code == 1
    assert "permission-denied" in refused.output
    done = runner.invoke(app, ["halt", "symbol", "acme", "--as", alice, "--reason", "bad print"])
    assert done.exit_code == 0, done.output
    halt_id = str(output_json(done.stdout)["id"])
    with container.db.read() as session:
        assert container.risk.load(session).halted_symbols == {"ACME"}
    asked = runner.invoke(app, ["halt", "request-resume", halt_id, "--as", alice, "--reason", "ok"])
    assert asked.exit_code == 0, asked.output
    alone = runner.invoke(app, ["halt", "approve-resume", halt_id, "--as", alice])
    assert alone.exit_code == 1
    assert "four-eyes-required" in alone.output
    approved = runner.invoke(app, ["halt", "approve-resume", halt_id, "--as", bob])
    assert approved.exit_code == 0, approved.output
    with container.db.read() as session:
        assert container.risk.load(session).halted_symbols == frozenset()


def test_limits_from_the_cli_need_an_admin(
    container: Container, settings: Settings, clock: FrozenClock
) -> None:
    admin, officer = new_account(container, "ADMIN"), new_account(container, "COMPLIANCE")
    client = new_account(container, "TRADER")  # a real account: an unknown id is refused
    app, runner = cli(settings, clock), CliRunner()
    args = ["risk", "set-limit", "max_order_quantity", "7", "--account", client, "--reason", "r"]
    assert runner.invoke(app, [*args, "--as", officer]).exit_code == 1
    changed = runner.invoke(app, [*args, "--as", admin])
    assert changed.exit_code == 0, changed.output
    shown = runner.invoke(app, ["risk", "limits", "--account", client])
    effective = output_json(shown.stdout)["effective"]
    assert isinstance(effective, dict)
    assert effective["max_order_quantity"] == "7"
