"""In-process fan-out of order updates, fills, quotes and trades to WebSocket subscribers.

The order engine publishes after each committed batch, from its own thread; a subscriber lives on
an asyncio loop. Each subscriber has a bounded queue: one that cannot keep up is dropped (its
connection closed with a reason), so a slow consumer can never hold up the engine or the others.
Delivery to a loop is one `call_soon_threadsafe` per batch, not one per event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_SYMBOLS_PER_SUBSCRIPTION = 50


@dataclass(frozen=True, slots=True)
class StreamEvent:
    #: `order`, `fill`, `quote` or `trade`.
    type: str
    data: dict[str, Any]
    #: Private events go to this user only.
    user_id: str | None = None
    #: Market data goes to subscribers of this symbol.
    symbol: str | None = None

    def message(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data}


@dataclass(eq=False)
class Subscription:
    user_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any]]
    symbols: set[str] = field(default_factory=set)
    dropped: bool = False
    #: Set when dropped, so the connection's sender wakes up and closes.
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: StreamEvent) -> bool:
        if event.user_id is not None:
            return event.user_id == self.user_id
        return event.symbol is not None and event.symbol in self.symbols

    def offer(self, message: dict[str, Any]) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True
            self.closed.set()


class StreamHub:
    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []

    def subscribe(self, user_id: str) -> Subscription:
        """Register a subscriber on the running loop (call from that loop)."""
        sub = Subscription(
            user_id=user_id,
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(maxsize=self._queue_size),
        )
        with self._lock:
            self._subscriptions = [*self._subscriptions, sub]
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s is not sub]

    def __len__(self) -> int:
        return len(self._subscriptions)

    def publish(self, events: Iterable[StreamEvent]) -> None:
        """Deliver events to interested subscribers; safe from any thread, never blocks."""
        subscriptions = self._subscriptions
        if not subscriptions:
            return
        events = list(events)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscription, dict[str, Any]]]] = {}
        for sub in subscriptions:
            if sub.dropped:
                continue
            for event in events:
                if sub.wants(event):
                    by_loop.setdefault(sub.loop, []).append((sub, event.message()))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:
                # The loop has closed: its subscribers are gone with it.
                continue


def _deliver(items: list[tuple[Subscription, dict[str, Any]]]) -> None:
    for sub, message in items:
        sub.offer(message)
