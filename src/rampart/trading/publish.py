"""The books as others see them: a snapshot per symbol for readers and the pre-trade checks,
and a quote event whenever a batch moved a symbol's top of book."""

from __future__ import annotations

from decimal import Decimal

from rampart.trading.batch import Batch
from rampart.trading.domain import fmt
from rampart.trading.stream import StreamEvent
from rampart.venue.domain import BookSnapshot, MatchingVenue


class MarketPublisher:
    def __init__(self, venue: MatchingVenue) -> None:
        self.venue = venue
        self._snapshots: dict[str, BookSnapshot] = {}
        self._quotes: dict[str, tuple[Decimal | None, ...]] = {}

    def snapshot(self, symbol: str) -> BookSnapshot | None:
        """The symbol's book as of the last committed batch (None before its first order)."""
        return self._snapshots.get(symbol)

    def refresh(self) -> None:
        """Snapshot every book afresh (after a rebuild)."""
        self._snapshots = {s: self.venue.snapshot(s) for s in self.venue.symbols()}

    def publish(self, batch: Batch) -> None:
        """After a commit: snapshot the symbols the batch moved, and quote the changed tops."""
        for symbol in batch.symbols:
            snapshot = self.venue.snapshot(symbol)
            self._snapshots[symbol] = snapshot
            bid = snapshot.bids[0] if snapshot.bids else None
            ask = snapshot.asks[0] if snapshot.asks else None
            quote: tuple[Decimal | None, ...] = (
                bid.price if bid else None,
                bid.quantity if bid else None,
                ask.price if ask else None,
                ask.quantity if ask else None,
            )
            if self._quotes.get(symbol) == quote:
                continue
            self._quotes[symbol] = quote
            batch.events.append(
                StreamEvent(
                    "quote",
                    {
                        "symbol": symbol,
                        "bid": fmt(quote[0]),
                        "bid_size": fmt(quote[1]),
                        "ask": fmt(quote[2]),
                        "ask_size": fmt(quote[3]),
                        "at": batch.now.isoformat(),
                    },
                    symbol=symbol,
                )
            )
