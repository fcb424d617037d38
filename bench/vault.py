"""Vault: seal/open cost per field, and re-encryption throughput after a rotation.

Baselines, measured in the same process: a raw AES-256-GCM encrypt/decrypt of the same payload
with a fresh nonce (the floor any envelope scheme sits on), and the same batched select+update
loop over the same rows without any cryptography (the floor of the re-encryption job).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, insert, select, update

from rampart.config import VaultSettings
from rampart.kernel.clock import SystemClock
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.db import Database
from rampart.platform.uow import UnitOfWork
from rampart.vault import EncryptedColumn, VaultService
from rampart.vault.db import DataKeyRow, ShreddedUserRow, UserKeyRow
from rampart.vault.domain import Purpose, SealContext
from rampart.vault.jobs import reencrypt
from rampart.vault.providers import LocalKeyProvider

PAYLOAD = b"api-secret:" + os.urandom(21).hex().encode()  # 53 bytes, a typical credential
FIELD_ITERATIONS = 20_000
REENCRYPT_ROWS = 5_000


def _per_call_us(fn, iterations: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    started = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - started) / iterations * 1e6


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        return _run(Path(tmp))


def _run(tmp: Path) -> list[dict[str, object]]:
    db = Database(f"sqlite:///{tmp / 'bench.db'}", create=True)
    clock = SystemClock()
    meta = MetaData()
    table = Table(
        "bench_secret",
        meta,
        Column("id", String(36), primary_key=True),
        Column("secret", LargeBinary),
    )
    DataKeyRow.metadata.create_all(
        db.engine,
        tables=[DataKeyRow.__table__, UserKeyRow.__table__, ShreddedUserRow.__table__],
    )
    meta.create_all(db.engine)
    vault = VaultService(
        LocalKeyProvider(Secret(os.urandom(32))), clock, VaultSettings(reencrypt_batch=500)
    )
    vault.register(EncryptedColumn("bench_secret", "secret", Purpose.BROKER_CREDENTIAL))

    def uow() -> UnitOfWork:
        return UnitOfWork(db, clock, None)

    rows: list[dict[str, object]] = []
    ctx = SealContext("bench_secret", "secret", new_id())
    raw = AESGCM(AESGCM.generate_key(bit_length=256))
    raw_ct = {"v": b""}

    def raw_encrypt() -> None:
        nonce = os.urandom(12)
        raw_ct["v"] = nonce + raw.encrypt(nonce, PAYLOAD, b"ad")

    def raw_decrypt() -> None:
        raw.decrypt(raw_ct["v"][:12], raw_ct["v"][12:], b"ad")

    with uow() as work:
        sealed = vault.seal(work, Purpose.BROKER_CREDENTIAL, PAYLOAD, ctx)
        personal = vault.seal(work, Purpose.BROKER_CREDENTIAL, PAYLOAD, ctx, user_id="u1")
        vault.blind_index(work, "bench.index", b"warm-up")  # creates the key, committed below
        work.commit()
    with uow() as work:
        base_enc = _per_call_us(raw_encrypt, FIELD_ITERATIONS)
        raw_encrypt()
        base_dec = _per_call_us(raw_decrypt, FIELD_ITERATIONS)
        seal_us = _per_call_us(
            lambda: vault.seal(work, Purpose.BROKER_CREDENTIAL, PAYLOAD, ctx), FIELD_ITERATIONS
        )
        open_us = _per_call_us(
            lambda: vault.open(work, Purpose.BROKER_CREDENTIAL, sealed, ctx), FIELD_ITERATIONS
        )
        seal_user_us = _per_call_us(
            lambda: vault.seal(work, Purpose.BROKER_CREDENTIAL, PAYLOAD, ctx, user_id="u1"),
            FIELD_ITERATIONS,
        )
        open_user_us = _per_call_us(
            lambda: vault.open(work, Purpose.BROKER_CREDENTIAL, personal, ctx, user_id="u1"),
            FIELD_ITERATIONS,
        )
        index_us = _per_call_us(
            lambda: vault.blind_index(work, "bench.index", PAYLOAD), FIELD_ITERATIONS
        )
    note = f"{len(PAYLOAD)}-byte field, keys cached"
    rows += [
        {
            "name": "seal per field",
            "value": seal_us,
            "unit": "µs",
            "baseline": f"{base_enc:.2f} µs raw AESGCM encrypt",
            "note": note,
        },
        {
            "name": "open per field",
            "value": open_us,
            "unit": "µs",
            "baseline": f"{base_dec:.2f} µs raw AESGCM decrypt",
            "note": note,
        },
        {
            "name": "seal per field, per-user key",
            "value": seal_user_us,
            "unit": "µs",
            "baseline": f"{base_enc:.2f} µs raw AESGCM encrypt",
            "note": note,
        },
        {
            "name": "open per field, per-user key",
            "value": open_user_us,
            "unit": "µs",
            "baseline": f"{base_dec:.2f} µs raw AESGCM decrypt",
            "note": note,
        },
        {"name": "blind index per value", "value": index_us, "unit": "µs", "note": "HMAC-SHA256"},
    ]

    # Re-encryption: REENCRYPT_ROWS rows on version 1, rotate, move them all to version 2.
    with uow() as work:
        values = []
        for _ in range(REENCRYPT_ROWS):
            row_id = new_id()
            row_ctx = SealContext("bench_secret", "secret", row_id)
            values.append(
                {
                    "id": row_id,
                    "secret": vault.seal(work, Purpose.BROKER_CREDENTIAL, PAYLOAD, row_ctx),
                }
            )
        work.session.execute(insert(table), values)
        work.commit()

    # Baseline: the same batched keyset walk and per-row conditional update, without crypto.
    started = time.perf_counter()
    after = ""
    while True:
        with uow() as work:
            batch = work.session.execute(
                select(table.c.id, table.c.secret)
                .where(table.c.id > after)
                .order_by(table.c.id)
                .limit(500)
            ).all()
            for row_id, blob in batch:
                work.session.execute(
                    update(table)
                    .where(table.c.id == row_id, table.c.secret == blob)
                    .values(secret=blob)
                )
            work.commit()
        if not batch:
            break
        after = batch[-1][0]
    baseline_rps = REENCRYPT_ROWS / (time.perf_counter() - started)

    with uow() as work:
        vault.rotation.rotate(work.session, Purpose.BROKER_CREDENTIAL)  # no audit log in the bench
        work.commit()
    started = time.perf_counter()
    report = reencrypt(vault, uow, Purpose.BROKER_CREDENTIAL)
    elapsed = time.perf_counter() - started
    assert report.reencrypted == REENCRYPT_ROWS
    rows.append(
        {
            "name": "re-encryption",
            "value": REENCRYPT_ROWS / elapsed,
            "unit": "rows/s",
            "baseline": f"{baseline_rps:,.0f} rows/s same loop without crypto",
            "note": f"SQLite, {REENCRYPT_ROWS} rows, batches of 500",
        }
    )
    db.dispose()
    return rows
