"""Encrypted, authenticated, streamed backups of the database.

File format (`.rbk`)::

    b"RAMPART-BACKUP\\x00\\x01"            16-byte magic, format 1
    u32 header length, header JSON         backend, created_at, kek_id, wrapped file key,
                                           nonce prefix, chunk size
    chunk 0 .. chunk n                     AES-256-GCM, each `chunk_size` bytes of plaintext + tag

Each backup has its own random 256-bit file key, wrapped by the vault's key provider (so a KMS
provider protects backups too, and `rotate-kek` does not orphan them while the previous KEK is
configured). Chunks follow the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):
the nonce of chunk i is `prefix(7) || i (u32) || last-flag (1)`, and every chunk's associated
data is the SHA-256 of the whole header. So a reordered, dropped, altered or appended chunk, a
truncation at any point (including exactly at a chunk boundary) and any edit of the header are
all refused with one `BackupError`.

Restore never applies unauthenticated data: it first reads the whole file to verify it, then
streams it again into the target (PostgreSQL: `pg_restore --single-transaction`, so a file that
changes between the two passes rolls back entirely; SQLite: a temporary file renamed into place
after `PRAGMA integrity_check`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from rampart.kernel.clock import Clock
from rampart.platform.db import normalise_url
from rampart.platform.logging import get_logger
from rampart.vault.domain import BackupError, UnreadableError
from rampart.vault.providers import KeyProvider

log = get_logger("rampart.vault.backup")

MAGIC = b"RAMPART-BACKUP\x00\x01"
CHUNK_SIZE = 64 * 1024
PREFIX_BYTES = 7
MAX_HEADER_BYTES = 64 * 1024
MAX_CHUNKS = 2**32 - 1
_NAME = re.compile(r"^rampart-(\d{8}T\d{6}Z)-(sqlite|postgresql)\.rbk$")


def _file_key_context(prefix: bytes) -> bytes:
    return b"rampart.backup.file-key.v1\x00" + prefix


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter > MAX_CHUNKS:
        raise BackupError("backup too large for one file")
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    backend: str
    created_at: datetime
    kek_id: str


class EncryptingWriter:
    """Streams plaintext in, writes STREAM-encrypted chunks out. Call `close()` to finish."""

    def __init__(
        self, out: IO[bytes], provider: KeyProvider, backend: str, created_at: datetime
    ) -> None:
        self._out = out
        self._prefix = os.urandom(PREFIX_BYTES)
        file_key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(file_key)
        header = {
            "format": 1,
            "backend": backend,
            "created_at": created_at.astimezone(UTC).isoformat(),
            "kek_id": provider.kek_id,
            "wrapped_key": base64.b64encode(
                provider.wrap(file_key, _file_key_context(self._prefix))
            ).decode(),
            "nonce_prefix": base64.b64encode(self._prefix).decode(),
            "chunk_size": CHUNK_SIZE,
        }
        encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        head = MAGIC + struct.pack(">I", len(encoded)) + encoded
        self._ad = hashlib.sha256(head).digest()
        out.write(head)
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False

    def write(self, data: bytes) -> None:
        self._buffer += data
        # Hold back the last full chunk: only `close` knows which chunk is the final one.
        while len(self._buffer) > CHUNK_SIZE:
            self._emit(bytes(self._buffer[:CHUNK_SIZE]), last=False)
            del self._buffer[:CHUNK_SIZE]

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._out.write(self._aead.encrypt(nonce, chunk, self._ad))
        self._counter += 1


def _read_exact(source: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _read_header(source: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    magic = _read_exact(source, len(MAGIC))
    if magic != MAGIC:
        raise BackupError()
    raw_len = _read_exact(source, 4)
    if len(raw_len) != 4:
        raise BackupError()
    (length,) = struct.unpack(">I", raw_len)
    if length > MAX_HEADER_BYTES:
        raise BackupError()
    encoded = _read_exact(source, length)
    if len(encoded) != length:
        raise BackupError()
    try:
        header = json.loads(encoded)
        if header["format"] != 1 or header["chunk_size"] != CHUNK_SIZE:
            raise BackupError()
    except (ValueError, KeyError, TypeError):
        raise BackupError() from None
    return header, hashlib.sha256(magic + raw_len + encoded).digest()


def decrypt_stream(source: IO[bytes], provider: KeyProvider) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each authenticated; `BackupError` on any problem.

    A caller must treat what it received as unverified until the iterator ends normally: only
    then is it known that nothing was cut off the end.
    """
    header, ad = _read_header(source)
    try:
        prefix = base64.b64decode(header["nonce_prefix"], validate=True)
        wrapped = base64.b64decode(header["wrapped_key"], validate=True)
        if len(prefix) != PREFIX_BYTES:
            raise BackupError()
        aead = AESGCM(provider.unwrap(str(header["kek_id"]), wrapped, _file_key_context(prefix)))
    except (ValueError, KeyError, UnreadableError):
        raise BackupError() from None
    block = CHUNK_SIZE + 16
    counter = 0
    current = _read_exact(source, block)
    while True:
        following = _read_exact(source, block)
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), current, ad)
        except InvalidTag:
            raise BackupError() from None
        if last:
            return
        current = following
        counter += 1


def read_info(path: Path) -> BackupInfo:
    with path.open("rb") as handle:
        header, _ad = _read_header(handle)
    return BackupInfo(
        path,
        str(header["backend"]),
        datetime.fromisoformat(header["created_at"]),
        str(header["kek_id"]),
    )


def verify(path: Path, provider: KeyProvider) -> BackupInfo:
    """Read and authenticate the whole file; `BackupError` if anything is wrong."""
    with path.open("rb") as handle:
        for _chunk in decrypt_stream(handle, provider):
            pass
    return read_info(path)


# --- database adapters -------------------------------------------------------------------
def _libpq_env(url: str) -> tuple[dict[str, str], str]:
    """Connection settings for pg_dump/pg_restore as environment variables, so that the
    password never appears on a command line (visible to every local user in `ps`)."""
    parsed = make_url(normalise_url(url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    pairs = {
        "PGHOST": parsed.host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
        "PGDATABASE": parsed.database,
        "PGSSLMODE": parsed.query.get("sslmode"),
    }
    env.update({k: str(v) for k, v in pairs.items() if v})
    return env, str(parsed.database)


def _backend(url: str) -> str:
    name = make_url(normalise_url(url)).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported backend {name}")
    return name


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("backups need a file-based SQLite database")
    return Path(database)


def _private_tempdir(near: Path) -> tempfile.TemporaryDirectory[str]:
    near.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".rampart-backup-", dir=near)


def create_backup(url: str, directory: Path, provider: KeyProvider, clock: Clock) -> BackupInfo:
    """Write an encrypted backup of the database at `url` into `directory`.

    A missing SQLite file is refused (`BackupError`) before anything is written: a backup of the
    empty database that opening it would create passes for a good one, and its caller then
    prunes the real backups older than it.
    """
    backend = _backend(url)
    if backend == "sqlite" and not _sqlite_path(url).is_file():
        raise BackupError(f"database not found at {_sqlite_path(url)}; nothing was backed up")
    now = clock.now()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    final = directory / f"rampart-{now.strftime('%Y%m%dT%H%M%SZ')}-{backend}.rbk"
    partial = final.with_suffix(".rbk.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            writer = EncryptingWriter(out, provider, backend, now)
            if backend == "sqlite":
                _dump_sqlite(_sqlite_path(url), directory, writer)
            else:
                _dump_postgres(url, writer)
            writer.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    log.info("vault.backup.created", backend=backend, file=final.name)
    return BackupInfo(final, backend, now, provider.kek_id)


def _dump_sqlite(source: Path, scratch_near: Path, writer: EncryptingWriter) -> None:
    # The online backup API takes a consistent snapshot (WAL included) while others write.
    # It needs a database file to write to: a 0600 file in a private directory, removed at once.
    with _private_tempdir(scratch_near) as scratch:
        copy = Path(scratch) / "snapshot.db"
        # mode=rw: a file removed since the check above is an error, not a new empty database.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True)
        dst = sqlite3.connect(copy)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        os.chmod(copy, 0o600)
        with copy.open("rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                writer.write(chunk)


def _dump_postgres(url: str, writer: EncryptingWriter) -> None:
    env, _name = _libpq_env(url)
    pg_dump = shutil.which("pg_dump") or "/usr/bin/pg_dump"
    # stderr goes to a file, not a pipe: a chatty tool must not block on a full pipe buffer.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # noqa: S603 - fixed argv; connection settings via env
            [pg_dump, "--format=custom", "--no-owner", "--no-privileges"],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert process.stdout is not None
        while chunk := process.stdout.read(CHUNK_SIZE):
            writer.write(chunk)
        process.stdout.close()
        if process.wait() != 0:
            _log_tool_failure("pg_dump", process.returncode, errors)
            raise BackupError("pg_dump failed")


def _log_tool_failure(tool: str, code: int, errors: IO[bytes]) -> None:
    errors.seek(0)
    text = errors.read()[-2000:].decode("utf-8", "replace")
    log.error("vault.backup.tool_failed", tool=tool, code=code, stderr=text)


def restore_backup(path: Path, url: str, provider: KeyProvider) -> BackupInfo:
    """Restore `path` into the empty database at `url` (refuses a non-empty one)."""
    info = verify(path, provider)
    backend = _backend(url)
    if info.backend != backend:
        raise BackupError(f"this is a {info.backend} backup; the target is {backend}")
    if backend == "sqlite":
        _restore_sqlite(path, _sqlite_path(url), provider)
    else:
        _restore_postgres(path, url, provider)
    log.info("vault.backup.restored", backend=backend, file=path.name)
    return info


def _is_empty(url: str) -> bool:
    engine = create_engine(normalise_url(url))
    try:
        return not inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _restore_sqlite(path: Path, target: Path, provider: KeyProvider) -> None:
    if target.exists() and target.stat().st_size > 0 and not _is_empty(f"sqlite:///{target}"):
        raise BackupError("the target database is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".restoring")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            for chunk in decrypt_stream(source, provider):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        check = sqlite3.connect(staging)
        try:
            ok = check.execute("PRAGMA integrity_check").fetchone()
        finally:
            check.close()
        if not ok or ok[0] != "ok":
            raise BackupError("the restored database failed its integrity check")
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(target) + suffix).unlink()
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise


def _restore_postgres(path: Path, url: str, provider: KeyProvider) -> None:
    if not _is_empty(url):
        raise BackupError("the target database is not empty")
    env, name = _libpq_env(url)
    pg_restore = shutil.which("pg_restore") or "/usr/bin/pg_restore"
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the `with errors` below
    process = subprocess.Popen(  # noqa: S603 - fixed argv; connection settings via env
        [
            pg_restore,
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            f"--dbname={name}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        env=env,
    )
    assert process.stdin is not None
    with errors:
        try:
            with path.open("rb") as source:
                for chunk in decrypt_stream(source, provider):
                    process.stdin.write(chunk)
        except (BackupError, BrokenPipeError):
            # Kill before closing stdin: pg_restore must never see an end of input and commit.
            process.kill()
            process.wait()
            _log_tool_failure("pg_restore", process.returncode, errors)
            raise BackupError() from None
        process.stdin.close()
        if process.wait() != 0:
            _log_tool_failure("pg_restore", process.returncode, errors)
            raise BackupError("pg_restore failed")


# --- retention ---------------------------------------------------------------------------
def list_backups(directory: Path) -> list[tuple[datetime, Path]]:
    found: list[tuple[datetime, Path]] = []
    if not directory.exists():
        return found
    for item in directory.iterdir():
        match = _NAME.match(item.name)
        if match and item.is_file():
            when = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            found.append((when, item))
    return sorted(found)


def prune(directory: Path, keep_days: int, clock: Clock) -> list[Path]:
    """Delete backups older than `keep_days`, always keeping the newest one."""
    backups = list_backups(directory)
    cutoff = clock.now() - timedelta(days=keep_days)
    removed: list[Path] = []
    for when, item in backups[:-1]:
        if when < cutoff:
            item.unlink()
            removed.append(item)
    if removed:
        log.info("vault.backup.pruned", removed=len(removed))
    return removed
