"""Building the audit log's parts from the settings (called by the composition root,
`bootstrap.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from rampart.audit.checkpoints import Checkpointer, build_sink, default_origin
from rampart.audit.log import AuditLog
from rampart.audit.notes import NoteSigner
from rampart.audit.service import AuditReader
from rampart.audit.writer import SqlAuditWriter
from rampart.config import Settings
from rampart.kernel.clock import Clock
from rampart.platform.db import Database
from rampart.platform.keys import RootKeys


@dataclass
class AuditComponents:
    writer: SqlAuditWriter
    log: AuditLog
    checkpointer: Checkpointer
    reader: AuditReader


def build_signer(settings: Settings, keys: RootKeys) -> NoteSigner:
    """The checkpoint signer: the `audit_signing` root key is the Ed25519 private seed."""
    seed = keys.get("audit_signing", settings.audit.signing_key)
    return NoteSigner(default_origin(settings), seed.reveal())


def build_audit(settings: Settings, keys: RootKeys, clock: Clock, db: Database) -> AuditComponents:
    writer = SqlAuditWriter(clock)
    audit_log = AuditLog(db, writer, clock, batch_max=settings.audit.batch_max)
    checkpointer = Checkpointer(
        db,
        clock,
        build_signer(settings, keys),
        build_sink(settings),
        every=settings.audit.checkpoint_every,
        seconds=settings.audit.checkpoint_seconds,
        origin_configured=settings.audit.origin is not None,
    )
    writer.listeners.append(checkpointer.notify)
    reader = AuditReader(
        db,
        origin=default_origin(settings),
        max_page_size=settings.audit.max_page_size,
        origin_configured=settings.audit.origin is not None,
    )
    return AuditComponents(writer, audit_log, checkpointer, reader)
