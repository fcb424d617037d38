"""`AuditAppender` and `AuditEntries`: the database log and the in-memory one behave the same."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import pytest

from rampart.audit.domain import AuditEntryError
from rampart.audit.memory import InMemoryAuditLog
from rampart.audit.ports import AuditAppender, AuditEntries
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from tests.support.ports import PortBackend


@dataclass
class Log:
    appender: AuditAppender
    entries: AuditEntries


@pytest.fixture
def log(port_backend: PortBackend) -> Log:
    if port_backend.in_memory:
        memory = InMemoryAuditLog(port_backend.clock)
        return Log(memory, memory)
    return Log(port_backend.app.audit_log, port_backend.app.audit)


def test_an_appended_event_reads_back_as_written(log: Log) -> None:
    seq = log.appender.append(
        AuditEvent(
            action="contract.checked",
            subject="user:u-1",
            outcome="denied",
            actor="user:u-2",
            details={"amount": Decimal("1.50"), "why": ["a", "b"]},
        )
    )
    entry = log.entries.entry(seq)
    assert entry["seq"] == seq
    assert (entry["action"], entry["subject"], entry["outcome"], entry["actor"]) == (
        "contract.checked",
        "user:u-1",
        "denied",
        "user:u-2",
    )
    assert entry["details"] == {"amount": "1.50", "why": ["a", "b"]}
    assert entry["leaf_hash"]


def test_sequence_numbers_follow_the_order_of_appends(log: Log) -> None:
    first = log.appender.append(AuditEvent(action="contract.one"))
    second = asyncio.run(log.appender.append_async(AuditEvent(action="contract.two")))
    third = log.appender.append(AuditEvent(action="contract.three"))
    assert first < second < third
    assert [log.entries.entry(s)["action"] for s in (first, second, third)] == [
        "contract.one",
        "contract.two",
        "contract.three",
    ]


def test_an_event_that_cannot_be_kept_is_refused_not_truncated(log: Log) -> None:
    with pytest.raises(AuditEntryError):
        log.appender.append(AuditEvent(action="contract.float", details={"price": 1.5}))
    with pytest.raises(AuditEntryError):
        log.appender.append(AuditEvent(action="x" * 1000))


def test_a_sequence_number_never_given_out_is_not_found(log: Log) -> None:
    last = log.appender.append(AuditEvent(action="contract.last"))
    with pytest.raises(NotFoundError):
        log.entries.entry(last + 1)
