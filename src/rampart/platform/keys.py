"""Root key material: from configuration in production, generated under `./var/keys` in dev.

Every root key is 32 random bytes, given as base64. Dev keys are written with mode 0600 and carry
the marker `rampart-dev-key:` so that the production profile recognises and refuses them even when
someone copies one into a production setting.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from pydantic import SecretStr

from rampart.config import DEV_KEY_MARKER, Settings
from rampart.kernel.secret import Secret

KEY_BYTES = 32


class KeyMaterialError(Exception):
    pass


def decode_key(text: str, name: str) -> bytes:
    body = text.strip()
    if body.startswith(DEV_KEY_MARKER):
        body = body[len(DEV_KEY_MARKER) :]
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyMaterialError(f"{name}: not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise KeyMaterialError(f"{name}: must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def new_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


class RootKeys:
    """Each named root key, from settings or, in dev, from `<data_dir>/keys/<name>.key`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._dir = settings.data_dir / "keys"

    def get(self, name: str, configured: SecretStr | None) -> Secret[bytes]:
        if configured is not None:
            return Secret(decode_key(configured.get_secret_value(), name))
        if self._settings.profile != "dev":
            raise KeyMaterialError(f"{name}: no key configured")
        return Secret(decode_key(self._dev_key_text(name), name))

    def _dev_key_text(self, name: str) -> str:
        path = self._dir / f"{name}.key"
        if path.exists():
            return path.read_text(encoding="utf-8")
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        text = DEV_KEY_MARKER + new_key_text()
        # Written in full under a private name, then linked into place: two processes starting
        # together must neither each write a different key nor read the other's half-written
        # (empty) file. `link` fails if the name exists, so exactly one key wins.
        staging = self._dir / f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(staging, path)
            except FileExistsError:
                return path.read_text(encoding="utf-8")
        finally:
            staging.unlink(missing_ok=True)
        return text
