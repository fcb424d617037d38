"""Checkpoints, immutability and verification: tampering, truncation and rollback are caught."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from rampart.audit.checkpoints import InconsistentLogError, SinkConflictError
from rampart.audit.domain import canonical_json
from rampart.audit.merkle import CompactRange, leaf_hash
from rampart.audit.notes import parse_checkpoint, parse_verifier_key, verify_checkpoint
from rampart.bootstrap import Container
from rampart.cli import app as cli
from rampart.kernel.events import AuditEvent

runner = CliRunner()


def fill(container: Container, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        container.audit_log.append(
            AuditEvent("order.placed", subject=f"order:{i}", actor="user:u1", details={"i": i})
        )


def cli_env(container: Container) -> dict[str, str]:
    return {
        "RAMPART_DATABASE_URL": container.settings.effective_database_url,
        "RAMPART_DATA_DIR": str(container.settings.data_dir),
        "RAMPART_PROFILE": "dev",
    }


def verify(container: Container, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["audit", "verify", *args], env=cli_env(container))
    return result.exit_code, result.output


def blob(container: Container, data: bytes) -> str:
    return f"decode('{data.hex()}', 'hex')" if container.db.is_postgres else f"X'{data.hex()}'"


def behind_the_apps_back(container: Container, *statements: str) -> None:
    """Run SQL as a superuser would: with the append-only triggers out of the way."""
    url = container.settings.effective_database_url
    if container.db.is_postgres:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                conn.execute(text(statement))
        engine.dispose()
        return
    path = url.removeprefix("sqlite:///")
    raw = sqlite3.connect(path, isolation_level=None)
    triggers = raw.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'audit_%'"
    ).fetchall()
    raw.execute("BEGIN IMMEDIATE")
    for name, _ in triggers:
        raw.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        raw.execute(statement)
    for _, sql in triggers:
        raw.execute(sql)
    raw.execute("COMMIT")
    raw.close()


def test_checkpoint_is_a_signed_c2sp_note_shipped_to_the_sink(container: Container) -> None:
    fill(container, 5)
    signed = container.audit_checkpointer.checkpoint()
    assert signed is not None
    assert signed.size == 5
    assert container.audit_checkpointer.checkpoint() is None  # nothing new, nothing signed
    signer = container.audit_checkpointer.signer
    text_part, _, sig_block = signed.note.partition("\n\n")
    lines = text_part.split("\n")
    assert lines[0] == signer.name
    assert lines[1] == "5"
    assert lines[3] == f"timestamp {container.clock.time_ns()}"
    assert sig_block.startswith(f"\u2014 {signer.name} ")
    assert sig_block.endswith("\n")
    name, public_key = parse_verifier_key(signer.verifier_key)
    checkpoint = verify_checkpoint(signed.note, [(name, public_key)], signer.name)
    assert checkpoint is not None
    assert checkpoint.root == container.audit.state()[1]
    shipped = container.audit_checkpointer.sink.latest()
    assert shipped == signed.note
    assert parse_checkpoint(text_part + "\n").size == 5
    # The public key is published with its id.
    keys = container.audit.signing_keys()
    assert [k["verifier_key"] for k in keys] == [signer.verifier_key]
    # A second checkpoint extends the first, proven consistent before signing.
    fill(container, 3, start=5)
    second = container.audit_checkpointer.checkpoint()
    assert second is not None
    assert second.size == 8


def test_sink_refuses_a_different_checkpoint_of_the_same_size(container: Container) -> None:
    fill(container, 2)
    signed = container.audit_checkpointer.checkpoint()
    assert signed is not None
    sink = container.audit_checkpointer.sink
    sink.put(signed.size, signed.ts_ns, signed.note)  # the same note again is fine
    with pytest.raises(SinkConflictError):
        sink.put(signed.size, signed.ts_ns, signed.note.replace("timestamp", "timestamp 1"))


@pytest.mark.parametrize("verb", ["UPDATE audit_entry SET actor = 'x'", "DELETE FROM audit_entry"])
def test_triggers_refuse_update_and_delete(container: Container, verb: str) -> None:
    fill(container, 2)
    container.audit_checkpointer.checkpoint()
    for statement in (
        verb,
        verb.replace("audit_entry", "audit_checkpoint").replace("actor", "key_id"),
    ):
        with pytest.raises(DBAPIError, match="append-only"), container.db.engine.begin() as conn:
            conn.execute(text(statement))
    if container.db.is_postgres:
        with pytest.raises(DBAPIError, match="append-only"), container.db.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_entry"))
    assert container.audit.state()[0] == 2
    assert (
        len(
            container.audit.search(
                __import__("rampart.audit.service", fromlist=["x"]).SearchQuery()
            )[0]
        )
        == 2
    )


def test_verify_passes_on_an_intact_log(container: Container) -> None:
    fill(container, 12)
    container.audit_checkpointer.checkpoint()
    fill(container, 3, start=12)
    code, output = verify(container)
    assert code == 0, output
    assert "15 entries" in output


def test_verify_names_an_entry_edited_behind_the_apps_back(container: Container) -> None:
    fill(container, 10)
    container.audit_checkpointer.checkpoint()
    forged = canonical_json(
        {
            "v": 1,
            "ts": "1",
            "actor": "user:u2",
            "action": "order.placed",
            "outcome": "success",
            "subject": "order:4",
            "request_id": None,
            "client_ip": None,
            "details": {"i": 4},
        }
    )
    behind_the_apps_back(
        container,
        f"UPDATE audit_entry SET entry = {blob(container, forged)}, actor = 'user:u2' "
        "WHERE seq = 4",
    )
    code, output = verify(container)
    assert code == 1
    assert "first entry that does not match: 4" in output
    assert "entry 4" in output


def test_verify_catches_a_forger_who_also_rewrote_the_hashes(container: Container) -> None:
    fill(container, 10)
    container.audit_checkpointer.checkpoint()
    forged = canonical_json(
        {
            "v": 1,
            "ts": "1",
            "actor": "user:u1",
            "action": "order.cancelled",
            "outcome": "success",
            "subject": "order:6",
            "request_id": None,
            "client_ip": None,
            "details": {"i": 6},
        }
    )
    leaves = [bytes.fromhex(e.leaf.hex()) for e in container.audit.stored_entries()]
    leaves[6] = leaf_hash(forged)
    rng = CompactRange()
    rng.extend(leaves)
    behind_the_apps_back(
        container,
        f"UPDATE audit_entry SET entry = {blob(container, forged)}, action = 'order.cancelled', "
        f"leaf_hash = {blob(container, leaves[6])} WHERE seq = 6",
        f"UPDATE audit_tree_state SET border = {blob(container, rng.pack())}, "
        f"root = {blob(container, rng.root())}",
    )
    code, output = verify(container)
    assert code == 1
    assert "differ from what checkpoint 10 signed" in output
    # And the log refuses to sign anything that does not extend what it signed before.
    fill(container, 1, start=10)
    with pytest.raises(InconsistentLogError):
        container.audit_checkpointer.checkpoint()
    with pytest.raises(InconsistentLogError):
        container.audit_checkpointer.checkpoint()


def test_truncation_of_the_newest_rows_is_caught_by_the_shipped_checkpoint(
    container: Container,
) -> None:
    fill(container, 10)
    container.audit_checkpointer.checkpoint()
    rng = CompactRange()
    rng.extend([e.leaf for e in container.audit.stored_entries()][:7])
    # A thorough attacker removes the rows, the checkpoints that counted them, and fixes the state:
    # the database alone is consistent again. The sink outside it is not.
    behind_the_apps_back(
        container,
        "DELETE FROM audit_entry WHERE seq >= 7",
        "DELETE FROM audit_checkpoint",
        f"UPDATE audit_tree_state SET size = 7, border = {blob(container, rng.pack())}, "
        f"root = {blob(container, rng.root())}",
    )
    code, output = verify(container, "--no-sink")
    assert code == 0, output
    code, output = verify(container)
    assert code == 1
    assert "shipped checkpoint covers 10 entries but the log holds 7" in output


def test_export_verifies_offline_and_an_edited_export_does_not(
    container: Container, tmp_path: Path
) -> None:
    fill(container, 9)
    container.audit_checkpointer.checkpoint()
    target = tmp_path / "audit.jsonl"
    result = runner.invoke(cli, ["audit", "export", str(target)], env=cli_env(container))
    assert result.exit_code == 0, result.output
    vkey = container.audit_checkpointer.signer.verifier_key
    ok = runner.invoke(cli, ["audit", "verify", "--export", str(target), "--key", vkey], env={})
    assert ok.exit_code == 0, ok.output
    lines = target.read_bytes().splitlines(keepends=True)
    entry_lines = [i for i, line in enumerate(lines) if line.startswith(b'{"type":"entry"')]
    import base64

    import orjson

    victim = orjson.loads(lines[entry_lines[3]])
    data = base64.b64decode(victim["entry"]).replace(b'"i":3', b'"i":33')
    victim["entry"] = base64.b64encode(data).decode()
    victim["leaf_hash"] = leaf_hash(data).hex()
    lines[entry_lines[3]] = orjson.dumps(victim) + b"\n"
    target.write_bytes(b"".join(lines))
    bad = runner.invoke(cli, ["audit", "verify", "--export", str(target), "--key", vkey], env={})
    assert bad.exit_code == 1
    assert "checkpoint 9 signed" in bad.output
    # A forged checkpoint signed with another key is refused when the auditor pins the key.
    other = "other.example/audit+00000000+" + base64.b64encode(b"\x01" + b"\x00" * 32).decode()
    assert (
        runner.invoke(cli, ["audit", "verify", "--export", str(target), "--key", other]).exit_code
        == 2
    )


def test_checkpointer_thread_signs_while_entries_arrive(container: Container) -> None:
    import threading

    container.start()
    try:
        signed = threading.Event()
        container.audit_writer.listeners.append(lambda size: None)  # type: ignore[union-attr]
        fill(container, 3)
        for _ in range(100):
            if container.audit_checkpointer.sink.latest() is not None:
                signed.set()
                break
            threading.Event().wait(0.05)
    finally:
        container.close()
    assert signed.is_set()
    note = container.audit_checkpointer.sink.latest()
    assert note is not None
    assert note.split("\n")[1] == "3"
