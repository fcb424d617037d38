"""Builds the vault from settings (called by the composition root, `bootstrap.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rampart.config import Settings
from rampart.kernel.clock import Clock, SystemClock
from rampart.kernel.secret import Secret
from rampart.platform.keys import RootKeys, decode_key
from rampart.vault.providers import LocalKeyProvider
from rampart.vault.register import ShredRegister
from rampart.vault.service import VaultService


def shred_register_path(settings: Settings) -> Path:
    return settings.vault.shred_register or settings.data_dir / "vault" / "shredded-users"


def backup_dir(settings: Settings) -> Path:
    return settings.vault.backup_dir or settings.data_dir / "backups"


def build_vault(settings: Settings, keys: RootKeys, clock: Clock) -> VaultService:
    previous = [
        Secret(decode_key(item.get_secret_value(), "RAMPART_VAULT__PREVIOUS_KEKS"))
        for item in settings.vault.previous_keks
    ]
    provider = LocalKeyProvider(keys.get("vault_kek", settings.vault.kek), previous)
    vault = VaultService(provider, clock, settings.vault)
    vault.shredding.on_shred(ShredRegister(shred_register_path(settings)).add)
    return vault


#: Where migrations find the vault in `context.config.attributes` (see `migration_attributes`).
MIGRATION_VAULT_ATTRIBUTE = "rampart.vault"


def migration_attributes(settings: Settings) -> dict[str, Any]:
    """What data migrations need from the configuration: the vault, to seal rows that a new
    revision stops keeping in clear (`rampart.platform.migrate.upgrade(..., attributes=...)`)."""
    return {MIGRATION_VAULT_ATTRIBUTE: build_vault(settings, RootKeys(settings), SystemClock())}
