"""Reading the dev mailbox that `MailboxSink` writes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_FILE = re.compile(r"^\d{8}T\d{12}-[0-9a-f-]{36}\.json$")
_ID = re.compile(r"^[0-9a-f-]{36}$")


@dataclass(frozen=True, slots=True)
class MailboxEntry:
    id: str
    channel: str
    kind: str
    to: str
    subject: str
    text: str
    at: str


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            (p for p in self.directory.iterdir() if _FILE.match(p.name)),
            key=lambda p: p.name,
            reverse=True,
        )

    @staticmethod
    def _read(path: Path) -> MailboxEntry:
        data = json.loads(path.read_text(encoding="utf-8"))
        return MailboxEntry(
            id=str(data["id"]),
            channel=str(data["channel"]),
            kind=str(data["kind"]),
            to=str(data["to"]),
            subject=str(data.get("subject", "")),
            text=str(data["text"]),
            at=str(data["at"]),
        )

    def messages(self, *, to: str | None = None, limit: int = 100) -> list[MailboxEntry]:
        """Newest first, optionally only those addressed to `to`."""
        found: list[MailboxEntry] = []
        for path in self._files():
            entry = self._read(path)
            if to is None or entry.to == to:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    def get(self, message_id: str) -> MailboxEntry | None:
        if not _ID.match(message_id):
            return None
        for path in self._files():
            if path.name.endswith(f"-{message_id}.json"):
                return self._read(path)
        return None
