"""The shred register: user ids whose keys were destroyed, kept outside the database.

A backup taken before a shred still holds that user's wrapped keys. `rampart backup restore`
therefore re-applies this register to the restored database before it is used, so a restore can
never bring a shredded user's data back. The file is append-only, one user id per line, written
with fsync; keep it with the off-site copy of the backups (it holds pseudonymous ids only).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class ShredRegister:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def add(self, user_id: str) -> None:
        if "\n" in user_id or "\r" in user_id:
            raise ValueError("user ids never contain line breaks")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (user_id + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)

    def user_ids(self) -> list[str]:
        if not self.path.exists():
            return []
        seen: dict[str, None] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen[line.strip()] = None
        return list(seen)
