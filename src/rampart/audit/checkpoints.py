"""Signed checkpoints, and shipping them out of the database.

The `Checkpointer` signs a C2SP checkpoint (origin, tree size, root hash, timestamp) at least every
`checkpoint_seconds` while entries arrive, and sooner once `checkpoint_every` new entries are in.
Before it signs, it proves the new tree consistent with the last checkpoint signed (an RFC 9162
consistency proof built from that checkpoint's compact range and the newer leaves, checked with
`merkle.verify_consistency`); if the proof fails, someone rewrote history under it and it refuses
to sign, ever, so the log never signs two inconsistent checkpoints.

Every signed checkpoint is also shipped to a sink outside the database: a directory of write-once
files (fsynced) or an HTTP witness. A rewrite of the database, even with the triggers disabled,
cannot reach back into the sink, so verification against the newest shipped checkpoint catches
truncated and rolled-back entries.

Guarantees of shipping. A checkpoint is committed to the database before it is shipped. Shipping
the newest stored checkpoint is retried every round (`checkpoint_seconds`) until the sink accepts
it (at least once; the sink takes the same note again as a no-op), so a sink that was down catches
up with the newest checkpoint when it returns; checkpoints signed during the outage and superseded
before it ended stay in the database only (each is consistent with the next, which is what the
sink then holds). Appends do not wait for the sink: while it is down, the entries since the newest
shipped checkpoint are protected by the database alone, and the log says so (a warning every
round). A sink that answers with a different checkpoint of the same size is a fork: reported as
critical, never overwritten.

The origin. A log's name is fixed by its first signed checkpoint and recorded with its signing
key (`audit_signing_key.name`); from then on the log's own record is what signs and verifies, not
the current settings. A default origin is derived from the public URL, which a shell with another
port or URL derives differently: that must not make an intact log look forged. An explicit
`audit.origin` (required in production) that disagrees with the record is a misconfiguration,
reported as "origin mismatch", and nothing is signed under the wrong name.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import urlparse

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rampart.audit.db import AuditCheckpointRow, AuditEntryRow, AuditSigningKeyRow
from rampart.audit.merkle import (
    CompactRange,
    extension_consistency_proof,
    root_hash,
    verify_consistency,
)
from rampart.audit.notes import TIMESTAMP_EXTENSION, Checkpoint, NoteSigner
from rampart.audit.writer import load_state
from rampart.config import Settings
from rampart.kernel.clock import Clock
from rampart.kernel.errors import ConflictError
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)

_ENTRY = cast(Table, AuditEntryRow.__table__)
#: One HTTP witness request may not hold up the checkpointer for longer than this.
HTTP_TIMEOUT_SECONDS = 5.0


def default_origin(settings: Settings) -> str:
    if settings.audit.origin:
        return settings.audit.origin
    host = urlparse(settings.effective_public_url).netloc or "rampart"
    return f"{host}/audit"


class OriginMismatchError(ConflictError):
    """The configured origin is not the one the log signs under (its recorded origin)."""

    code = "audit-origin-mismatch"
    title = "The audit log's origin differs from the configured one"

    def __init__(self, recorded: str, configured: str) -> None:
        self.recorded, self.configured = recorded, configured
        super().__init__(f"origin mismatch: log says {recorded}, settings say {configured}")


def log_origin(session: Session) -> str | None:
    """The origin the log signs under, from its own signing records: the name of its newest
    signing key (None before the first checkpoint)."""
    table = cast(Table, AuditSigningKeyRow.__table__)
    return session.scalar(select(table.c.name).order_by(table.c.valid_from_ns.desc()).limit(1))


class InconsistentLogError(RuntimeError):
    """The tree in the database does not extend the last signed checkpoint."""


class SinkConflictError(RuntimeError):
    """The sink already holds a different checkpoint of the same size: a fork."""


class SinkUnavailableError(RuntimeError):
    """The sink could not take the checkpoint now; it stays in the database and is shipped again
    on the next round (every `checkpoint_seconds`) until the sink takes it."""


class CheckpointSink(Protocol):
    """An append-only home for signed checkpoints, outside the database."""

    def put(self, size: int, ts_ns: int, note: str) -> None: ...

    def latest(self) -> str | None: ...

    def describe(self) -> str: ...


class DirectorySink:
    """Write-once files `<dir>/<UTC day>/<size>.checkpoint`, fsynced with their directories.

    The directory may sit on another volume or a WORM mount; the application never rewrites or
    removes a file in it. One folder per day keeps each folder's listing small.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def put(self, size: int, ts_ns: int, note: str) -> None:
        day = datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%d")
        folder = self.path / day
        new_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{size:020d}.checkpoint"
        data = note.encode()
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            if target.read_bytes() != data:
                raise SinkConflictError(f"a different checkpoint of size {size} exists") from None
            return
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(folder)
        if new_folder:
            _fsync_dir(self.path)

    def latest(self) -> str | None:
        if not self.path.is_dir():
            return None
        days = sorted((p for p in self.path.iterdir() if p.is_dir()), reverse=True)
        best: tuple[int, Path] | None = None
        # Sizes only grow, but a clock step back could file a bigger one under an older day.
        for day in days[:2]:
            for file in day.glob("*.checkpoint"):
                stem = file.stem
                if stem.isdigit() and (best is None or int(stem) > best[0]):
                    best = (int(stem), file)
        return best[1].read_text(encoding="utf-8") if best else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HttpWitnessSink:
    """POSTs each checkpoint (text/plain) to a witness URL; GET on it returns the newest."""

    def __init__(self, url: str, *, ca_file: Path | None = None) -> None:
        self.url = url
        #: An internal witness's CA (`RAMPART_TLS_CA_BUNDLE`): trusted instead of the public roots.
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
        )

    def describe(self) -> str:
        parsed = urlparse(self.url)
        return f"{parsed.scheme}://{parsed.hostname}{parsed.path}"

    def put(self, size: int, ts_ns: int, note: str) -> None:
        import httpx

        response = httpx.post(
            self.url,
            content=note.encode(),
            headers={"content-type": "text/plain; charset=utf-8"},
            timeout=HTTP_TIMEOUT_SECONDS,
            verify=self._verify,
        )
        if response.status_code == 409:
            raise SinkConflictError(f"the witness holds a different checkpoint of size {size}")
        response.raise_for_status()

    def latest(self) -> str | None:
        import httpx

        response = httpx.get(self.url, timeout=HTTP_TIMEOUT_SECONDS, verify=self._verify)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.text


def build_sink(settings: Settings) -> CheckpointSink:
    target = settings.audit.checkpoint_sink
    if target and target.startswith(("http://", "https://")):
        return HttpWitnessSink(target, ca_file=settings.tls_ca_bundle)
    return DirectorySink(Path(target) if target else settings.data_dir / "checkpoints")


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    root: bytes
    ts_ns: int
    border: bytes
    note: str


def register_signing_key(session: Session, signer: NoteSigner, now_ns: int) -> None:
    """Record the signing key's public half; the key it replaces is marked retired.

    Old keys stay in the table: they verify the checkpoints they signed, forever.
    """
    table = cast(Table, AuditSigningKeyRow.__table__)
    vkey = signer.verifier_key
    exists = session.execute(select(table.c.verifier_key).where(table.c.verifier_key == vkey))
    if exists.first() is not None:
        return
    session.execute(
        table.insert().values(
            verifier_key=vkey,
            name=signer.name,
            key_id=signer.key_id.hex(),
            public_key=signer.public_key,
            valid_from_ns=now_ns,
            retired_at_ns=None,
        )
    )
    session.execute(
        update(table)
        .where(table.c.verifier_key != vkey, table.c.retired_at_ns.is_(None))
        .values(retired_at_ns=now_ns)
    )


def newest_checkpoint(session: Session) -> SignedCheckpoint | None:
    row = session.scalars(
        select(AuditCheckpointRow).order_by(AuditCheckpointRow.size.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return SignedCheckpoint(row.size, bytes(row.root), row.ts_ns, bytes(row.border), row.note)


class Checkpointer:
    """Signs, stores and ships checkpoints; a background thread with start()/stop()."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        signer: NoteSigner,
        sink: CheckpointSink,
        *,
        every: int,
        seconds: float,
        origin_configured: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        #: Whether the signer's name is an explicit `audit.origin` (else derived from the URL).
        self._origin_configured = origin_configured
        self._origin_settled = False
        self.signer = signer
        self.sink = sink
        self.origin = signer.name
        self._every = every
        self._seconds = seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._signing = threading.Lock()
        self._last: SignedCheckpoint | None = None
        self._shipped_size = -1
        self._key_registered = False
        #: Set once a consistency check failed: from then on nothing is signed.
        self.refused: str | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="rampart-audit-checkpointer", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join()

    def notify(self, size: int) -> None:
        """Called after each commit that appended entries: wake early at `checkpoint_every`."""
        last = self._last.size if self._last else 0
        if size - last >= self._every:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._seconds)
            self._wake.clear()
            self._round()
        # One last checkpoint, so that what was written before shutdown is covered.
        self._round()

    def _round(self) -> None:
        try:
            self.checkpoint()
        except InconsistentLogError:
            pass  # logged where detected; nothing is signed any more
        except SinkUnavailableError as exc:
            log.warning(
                "audit checkpoint not shipped yet; retrying",
                sink=self.sink.describe(),
                error=type(exc.__cause__).__name__,
            )
        except SinkConflictError:
            log.critical(
                "audit checkpoint sink holds a different checkpoint of the same size",
                sink=self.sink.describe(),
            )
        except OriginMismatchError as exc:
            log.critical(
                "audit checkpoints not signed: the configured origin is not the log's",
                log_origin=exc.recorded,
                configured=exc.configured,
            )
        except Exception as exc:  # noqa: BLE001 - the thread must survive a database outage
            log.error("audit checkpoint failed", error=type(exc).__name__)

    # --- signing -------------------------------------------------------------------------
    def checkpoint(self) -> SignedCheckpoint | None:
        """Sign and ship a checkpoint if the tree grew since the last one; returns it."""
        with self._signing:
            if self.refused is not None:
                raise InconsistentLogError(self.refused)
            signed = self._sign_if_grown()
            self._ship_newest()
            return signed

    def _sign_if_grown(self) -> SignedCheckpoint | None:
        with self._db.read() as session:
            self._adopt_log_origin(session)
            rng = load_state(session, lock=False)
            stored = newest_checkpoint(session)
            base = max(
                (c for c in (self._last, stored) if c is not None),
                key=lambda c: c.size,
                default=None,
            )
            if rng.size == 0 or (base is not None and rng.size == base.size):
                if base is not None and rng.root() != base.root:
                    self._refuse(f"the tree of size {rng.size} no longer has its signed root")
                return None
            if base is not None and rng.size < base.size:
                self._refuse(f"the tree shrank from {base.size} to {rng.size} entries")
            self._check_extends(session, base, rng)
        now = self._clock.time_ns()
        checkpoint = Checkpoint(self.origin, rng.size, rng.root(), (f"{TIMESTAMP_EXTENSION}{now}",))
        note = self.signer.sign_checkpoint(checkpoint)
        signed = SignedCheckpoint(rng.size, rng.root(), now, rng.pack(), note)
        session = self._db.write_session()
        try:
            if not self._key_registered:
                register_signing_key(session, self.signer, now)
            session.add(
                AuditCheckpointRow(
                    size=signed.size,
                    root=signed.root,
                    ts_ns=signed.ts_ns,
                    border=signed.border,
                    key_id=self.signer.key_id.hex(),
                    note=note,
                )
            )
            session.commit()
            self._key_registered = True
        except IntegrityError:
            # Another process signed this very size first: same tree, same root.
            session.rollback()
            return None
        finally:
            session.close()
        self._last = signed
        log.info("audit checkpoint signed", size=signed.size)
        return signed

    def _adopt_log_origin(self, session: Session) -> None:
        """Sign under the log's recorded origin; an explicit, different one is refused."""
        if self._origin_settled:
            return
        recorded = log_origin(session)
        if recorded is None:
            return  # the first checkpoint records the signer's name
        if recorded != self.signer.name:
            if self._origin_configured:
                raise OriginMismatchError(recorded, self.signer.name)
            self.signer = self.signer.renamed(recorded)
            self.origin = recorded
            self._key_registered = False
        # A recorded origin never changes: no need to read it again every round.
        self._origin_settled = True

    def _check_extends(
        self, session: Session, base: SignedCheckpoint | None, rng: CompactRange
    ) -> None:
        if base is None:
            leaves = self._leaves(session, 0, rng.size)
            if root_hash(leaves) != rng.root():
                self._refuse("the tree state does not match the entries")
            return
        old = CompactRange.unpack(base.size, base.border)
        if old.root() != base.root:
            self._refuse(f"the stored border of checkpoint {base.size} does not match its root")
        new_leaves = self._leaves(session, base.size, rng.size)
        proof = extension_consistency_proof(old, new_leaves)
        if not verify_consistency(base.size, rng.size, base.root, rng.root(), proof):
            self._refuse(
                f"the tree of size {rng.size} is not consistent with checkpoint {base.size}"
            )

    def _leaves(self, session: Session, lo: int, hi: int) -> list[bytes]:
        rows = session.execute(
            select(_ENTRY.c.seq, _ENTRY.c.leaf_hash)
            .where(_ENTRY.c.seq >= lo, _ENTRY.c.seq < hi)
            .order_by(_ENTRY.c.seq)
        ).all()
        if [r.seq for r in rows] != list(range(lo, hi)):
            self._refuse(f"entries {lo}..{hi - 1} are not all present")
        return [bytes(r.leaf_hash) for r in rows]

    def _refuse(self, reason: str) -> None:
        self.refused = reason
        log.critical("audit log tampering detected; checkpoint signing stopped", reason=reason)
        raise InconsistentLogError(reason)

    def _ship_newest(self) -> None:
        with self._db.read() as session:
            newest = newest_checkpoint(session)
        if newest is None or newest.size <= self._shipped_size:
            return
        try:
            self.sink.put(newest.size, newest.ts_ns, newest.note)
        except SinkConflictError:
            raise
        except Exception as exc:
            raise SinkUnavailableError(
                f"checkpoint {newest.size} not shipped to {self.sink.describe()}"
            ) from exc
        self._shipped_size = newest.size

    @property
    def shipped_size(self) -> int | None:
        """The size of the newest checkpoint this process shipped (None: none yet)."""
        return None if self._shipped_size < 0 else self._shipped_size
