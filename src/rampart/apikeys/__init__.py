"""API keys: scoped keys for bots, signed requests (RFC 9421), replay protection."""
