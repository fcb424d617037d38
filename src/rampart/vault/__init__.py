"""Vault: envelope encryption at rest, per-purpose keys, rotation, crypto-shredding, backups.

Other domains use `container.vault` (`rampart.vault.service.VaultService`) with the names below;
see the docstring of `rampart.vault.service` for the calling conventions.
"""

from rampart.vault.columns import EncryptedColumn, PlaintextRefusedError, Sealed
from rampart.vault.domain import (
    Purpose,
    SealContext,
    ShreddedError,
    UnreadableError,
    VaultError,
)
from rampart.vault.service import VaultService

__all__ = [
    "EncryptedColumn",
    "PlaintextRefusedError",
    "Purpose",
    "SealContext",
    "Sealed",
    "ShreddedError",
    "UnreadableError",
    "VaultError",
    "VaultService",
]
