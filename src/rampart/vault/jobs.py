"""Background work of the vault: scheduled rotation and the resumable re-encryption job.

The job re-seals, batch by batch, every ciphertext that is not on its purpose's current key
version. Each batch is its own short transaction, so the service keeps serving while it runs
(on SQLite a batch holds the write lock only for the time of one batch). It needs no saved cursor
to resume: what is left to do is exactly the set of ciphertexts whose header names an older
version, so a stopped or crashed run simply starts again and finds the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.vault.columns import EncryptedColumn
from rampart.vault.domain import Purpose
from rampart.vault.rotation import BatchResult
from rampart.vault.service import VaultService

log = get_logger("rampart.vault.jobs")


@dataclass
class ReencryptReport:
    reencrypted: int = 0
    shredded: int = 0
    unreadable: int = 0
    skipped: int = 0
    batches: int = 0
    columns: list[str] = field(default_factory=list)


ProgressCallback = Callable[[EncryptedColumn, BatchResult, int], None]


def pending_count(
    vault: VaultService, uow_factory: Callable[[], UnitOfWork], purpose: Purpose | None = None
) -> int:
    """How many ciphertexts are not on their purpose's current version."""
    total = 0
    with uow_factory() as uow:
        for item in [purpose] if purpose else list(Purpose):
            current = vault.rotation.current_version(uow, item)
            counts = vault.rotation.count_by_version(uow, item)
            total += sum(n for version, n in counts.items() if version != current)
    return total


def reencrypt(
    vault: VaultService,
    uow_factory: Callable[[], UnitOfWork],
    purpose: Purpose | None = None,
    *,
    batch_size: int | None = None,
    on_batch: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ReencryptReport:
    """Move every ciphertext of `purpose` (or all) to the current key version, batch by batch."""
    report = ReencryptReport()
    rotation = vault.rotation
    for target in vault.columns(purpose):
        report.columns.append(f"{target.table}.{target.column}")
        after: str | None = None
        while not should_stop():
            with uow_factory() as uow:
                result = rotation.reencrypt_batch(uow, target, after_id=after, limit=batch_size)
                uow.commit()
            report.batches += 1
            report.reencrypted += result.reencrypted
            report.shredded += result.shredded
            report.unreadable += result.unreadable
            report.skipped += result.skipped
            if on_batch is not None:
                on_batch(target, result, report.reencrypted)
            if result.scanned == 0 or result.last_id is None:
                break
            after = result.last_id
    log.info(
        "vault.reencrypt.finished",
        reencrypted=report.reencrypted,
        shredded=report.shredded,
        unreadable=report.unreadable,
        skipped=report.skipped,
    )
    return report


class VaultMaintenance:
    """Every `interval` seconds: rotate keys that are due, then re-encrypt what is left behind.

    Started and stopped with the application (it sits in `container.closers`). The first run is
    one interval after start, so short-lived processes and tests are not disturbed.
    """

    def __init__(
        self, vault: VaultService, uow_factory: Callable[[], UnitOfWork], interval: float
    ) -> None:
        self._vault = vault
        self._uow_factory = uow_factory
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="vault-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def run_once(self) -> ReencryptReport:
        with self._uow_factory() as uow:
            rotated = self._vault.rotation.rotate_due(uow)
            uow.commit()
        if rotated:
            log.info("vault.maintenance.rotated", versions=len(rotated))
        return reencrypt(self._vault, self._uow_factory, should_stop=self._stop.is_set)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:  # the worker must outlive one failed pass
                log.exception("vault.maintenance.failed")
