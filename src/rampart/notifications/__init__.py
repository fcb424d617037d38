"""Notifications: email and SMS delivered from the outbox, with retries and a dev mailbox."""
