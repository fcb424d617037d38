"""Rampart: a security-first trading platform core."""

__version__ = "0.1.0"
