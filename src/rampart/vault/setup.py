"""Builds the vault from settings (called by `rampart.bootstrap`)."""

from __future__ import annotations

from pathlib import Path

from rampart.config import Settings
from rampart.kernel.clock import Clock
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
    vault.on_shred(ShredRegister(shred_register_path(settings)).add)
    return vault
