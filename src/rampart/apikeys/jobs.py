"""Background work of API keys: flagging keys older than `apikeys.max_age_days`, and telling
owners of keys that expire soon (`rampart.apikeys.expiry`).

`OldKeySweeper` is a thread started and stopped with the app (`container.closers`). Each pass is
one short transaction per batch; running it in several processes at once is safe, since a key is
flagged (and its owner told) by exactly one conditional update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rampart.apikeys.expiry import ExpiryNotices
from rampart.apikeys.service import ApiKeyService
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork

log = get_logger("rampart.apikeys.jobs")

#: Keys flagged per transaction; a pass repeats until a batch comes back short.
BATCH = 500


def flag_old_keys(keys: ApiKeyService, uow_factory: Callable[[], UnitOfWork]) -> int:
    """One full pass: flag every old key and queue its owner's notice; returns how many."""
    total = 0
    while True:
        with uow_factory() as uow:
            flagged = keys.flag_old_keys(uow, limit=BATCH)
            uow.commit()
        total += flagged
        if flagged < BATCH:
            return total


class OldKeySweeper:
    """Runs `flag_old_keys` every `interval` seconds (0 turns it off).

    The first pass waits `first_delay` seconds, so that start-up (and a test's app) is not
    competing with it for the database.
    """

    def __init__(
        self,
        keys: ApiKeyService,
        uow_factory: Callable[[], UnitOfWork],
        interval: float,
        *,
        first_delay: float = 60.0,
        expiry: ExpiryNotices | None = None,
    ) -> None:
        self._keys = keys
        self._expiry = expiry
        self._uow = uow_factory
        self.interval = interval
        self._first_delay = min(first_delay, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Passes completed since start (for operators and tests).
        self.passes = 0

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rampart-apikeys-old", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def run_once(self) -> int:
        """One pass: flag old keys, then send expiry notices; returns the keys flagged old."""
        flagged = flag_old_keys(self._keys, self._uow)
        noticed = self._expiry.run(self._uow) if self._expiry is not None else 0
        self.passes += 1
        if flagged:
            log.info("apikeys.old_keys_flagged", flagged=flagged)
        if noticed:
            log.info("apikeys.expiry_notices", keys=noticed)
        return flagged

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the sweeper outlives a failed pass
                log.error("apikeys.old_key_sweep_failed", error=type(exc).__name__)
            delay = self.interval
