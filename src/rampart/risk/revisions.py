"""The stored version of the trading controls: one counter every change of a halt, state, limit,
price band or the restricted list moves in its own transaction, so that each process can tell
with one cheap read, before each batch of orders, whether it must reload them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rampart.risk.db import ControlsVersionRow

_ROW = 1
_READ = select(ControlsVersionRow.version).where(ControlsVersionRow.id == _ROW)


def read_version(session: Session) -> int:
    """The current version (0 before the first change)."""
    return int(session.scalar(_READ) or 0)


def bump_version(session: Session, now: datetime) -> None:
    """Count one change, in the caller's transaction (it commits with the change or not at all).
    On PostgreSQL the row lock also orders concurrent changes."""
    bump = (
        update(ControlsVersionRow)
        .where(ControlsVersionRow.id == _ROW)
        .values(version=ControlsVersionRow.version + 1, changed_at=now)
    )
    if session.execute(bump).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.add(ControlsVersionRow(id=_ROW, version=1, changed_at=now))
    except IntegrityError:
        # Another transaction created the row first: count on it.
        session.execute(bump)
