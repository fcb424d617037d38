"""Pure building blocks: secrets stay hidden, amounts stay exact, ids sort, clocks obey."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rampart.kernel.clock import FrozenClock, utc
from rampart.kernel.ids import is_id, new_id, random_token
from rampart.kernel.money import MoneyError, round_cash, to_decimal
from rampart.kernel.secret import Secret


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,)):  # noqa: UP031
        assert "hunter2" not in shown
    assert secret.reveal() == "hunter2"
    with pytest.raises(TypeError):
        json.dumps(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)


def test_secrets_compare_by_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret(b"k") == Secret("k")


def test_amounts_refuse_floats_and_garbage() -> None:
    assert to_decimal("0.1") + to_decimal("0.2") == Decimal("0.3")
    for bad in (0.1, True, "1e", "NaN", "Infinity", None):
        with pytest.raises(MoneyError):
            to_decimal(bad)
    assert round_cash(Decimal("2.675")) == Decimal("2.68")
    assert round_cash(Decimal("2.665")) == Decimal("2.66")  # banker's rounding


def test_ids_are_unique_uuid7_and_sort_by_creation() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(is_id(i) for i in ids[:10])
    assert not is_id("not-an-id")


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    assert clock.now() == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    clock.advance(timedelta(minutes=15))
    assert clock.now() == datetime(2026, 6, 1, 12, 15, tzinfo=UTC)
    assert clock.time_ns() == int(clock.now().timestamp()) * 1_000_000_000
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(datetime(2026, 6, 1))


def test_naive_times_are_taken_as_utc() -> None:
    assert utc(datetime(2026, 1, 1)).tzinfo == UTC


def test_a_forked_child_never_hands_out_the_parents_random_bytes() -> None:
    # Ids and tokens draw on a pool of CSPRNG bytes; a child forked with the pool half used
    # must refill its own, or parent and child would produce the same ids and nonces.
    new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, f"{new_id()} {random_token()}".encode())
        os._exit(0)
    os.close(write)
    child_id, child_token = os.read(read, 200).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    parent_id, parent_token = new_id(), random_token()
    assert child_id[-12:] != parent_id[-12:]
    assert child_token != parent_token
    assert len(parent_token) == 22
    assert set(parent_token) <= set(_URLSAFE)


_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
