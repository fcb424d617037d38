"""Ledger: cash accounts, double-entry journal, reservations and positions."""
