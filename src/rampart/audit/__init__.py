"""Audit: the append-only, tamper-evident log (RFC 6962 Merkle tree, signed checkpoints)."""
