"""The HTTP witness sink against a real HTTP server on 127.0.0.1: shipping, forks, outages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rampart.audit.checkpoints import (
    Checkpointer,
    HttpWitnessSink,
    SinkConflictError,
    SinkUnavailableError,
    newest_checkpoint,
)
from rampart.bootstrap import Container
from rampart.kernel.events import AuditEvent
from tests.audit.test_integrity import behind_the_apps_back, verify


class Witness:
    """A minimal append-only witness: POST a checkpoint note, GET the newest one.

    It keeps one note per tree size and refuses (409) a different note for a size it holds.
    """

    def __init__(self, port: int = 0) -> None:
        self.notes: dict[int, str] = {}
        self.posts = 0
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                note = self.rfile.read(length).decode()
                witness.posts += 1
                size = int(note.split("\n")[1])
                held = witness.notes.get(size)
                if held is not None and held != note:
                    self._answer(409, b"a different checkpoint of this size is held")
                    return
                witness.notes[size] = note
                self._answer(201, b"")

            def do_GET(self) -> None:
                if not witness.notes:
                    self._answer(404, b"")
                    return
                self._answer(200, witness.notes[max(witness.notes)].encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/witness"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def witness() -> Iterator[Witness]:
    server = Witness()
    try:
        yield server
    finally:
        server.stop()


def checkpointer(container: Container, url: str) -> Checkpointer:
    base = container.audit_checkpointer
    return Checkpointer(
        container.db,
        container.clock,
        base.signer,
        HttpWitnessSink(url),
        every=1000,
        seconds=1.0,
    )


def fill(container: Container, n: int) -> None:
    for i in range(n):
        container.audit_log.append(AuditEvent("order.placed", subject=f"order:{i}"))


def test_checkpoints_reach_the_witness_and_verify_against_it(
    container: Container, witness: Witness
) -> None:
    cp = checkpointer(container, witness.url)
    fill(container, 5)
    signed = cp.checkpoint()
    assert signed is not None
    assert witness.notes == {5: signed.note}
    assert cp.sink.latest() == signed.note
    fill(container, 2)
    assert cp.checkpoint().size == 7  # type: ignore[union-attr]
    assert sorted(witness.notes) == [5, 7]
    code, output = verify(container, "--sink", witness.url)
    assert code == 0, output
    assert "shipped checkpoint of size 7" in output


def test_the_witness_refuses_a_different_checkpoint_of_the_same_size(
    container: Container, witness: Witness
) -> None:
    cp = checkpointer(container, witness.url)
    fill(container, 3)
    signed = cp.checkpoint()
    assert signed is not None
    cp.sink.put(signed.size, signed.ts_ns, signed.note)  # the same note again: accepted
    forged = signed.note.replace("timestamp ", "timestamp 9")
    with pytest.raises(SinkConflictError):
        cp.sink.put(signed.size, signed.ts_ns, forged)
    assert witness.notes[3] == signed.note


def test_a_witness_outage_keeps_the_checkpoint_and_ships_it_when_back(
    container: Container, witness: Witness
) -> None:
    port = witness.port
    witness.stop()
    cp = checkpointer(container, f"http://127.0.0.1:{port}/witness")
    fill(container, 4)
    with pytest.raises(SinkUnavailableError):
        cp.checkpoint()
    # Signed and stored in the database all the same; appends go on meanwhile.
    with container.db.read() as session:
        stored = newest_checkpoint(session)
    assert stored is not None
    assert stored.size == 4
    assert cp.shipped_size is None
    fill(container, 2)
    with pytest.raises(SinkUnavailableError):
        cp.checkpoint()  # signs 6, still cannot ship
    back = Witness(port)
    try:
        assert cp.checkpoint() is None  # nothing new to sign: ships what is waiting
        assert sorted(back.notes) == [6]
        assert cp.shipped_size == 6
        # Rolling the database back behind what the witness holds is caught.
        behind_the_apps_back(container, "DELETE FROM audit_entry WHERE seq >= 5")
        code, output = verify(container, "--sink", back.url)
        assert code == 1
        assert "shipped checkpoint covers 6 entries but the log holds 5" in output
    finally:
        back.stop()


def test_the_checkpointer_thread_survives_an_outage(container: Container, witness: Witness) -> None:
    port = witness.port
    witness.stop()
    cp = checkpointer(container, f"http://127.0.0.1:{port}/witness")
    fill(container, 2)
    cp._round()  # what the thread does every second: logs, does not die
    assert cp.refused is None
    back = Witness(port)
    try:
        cp._round()
        assert sorted(back.notes) == [2]
    finally:
        back.stop()
