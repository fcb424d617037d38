"""Vault: envelope encryption at rest, per-purpose keys, rotation, crypto-shredding, backups."""
