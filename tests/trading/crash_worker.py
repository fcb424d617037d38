"""Run by test_crash: trade as fast as possible until killed. Prints a line per committed batch."""

from __future__ import annotations

import random
import sys
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path

from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.trading.domain import OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Place
from rampart.venue.domain import TimeInForce


def main(database_url: str, data_dir: str) -> None:
    container = bootstrap(
        Settings(profile="dev", data_dir=Path(data_dir), database_url=database_url)
    )
    container.start()
    engine = container.orders.engine
    rng = random.Random(7)
    users = ["u1", "u2", "u3", "u4"]
    while True:
        futures: list[Future[object]] = []
        for _ in range(40):
            user = rng.choice(users)
            if rng.random() < 0.15 and futures:
                continue
            side = rng.choice([OrderSide.BUY, OrderSide.SELL_SHORT])
            price = Decimal(rng.randint(95, 105))
            futures.append(
                engine.submit(
                    Place(
                        user,
                        f"user:{user}",
                        OrderTicket(
                            "ACME",
                            side,
                            OrderType.LIMIT,
                            Decimal(rng.randint(1, 5)),
                            rng.choice([TimeInForce.DAY, TimeInForce.IOC]),
                            price,
                        ),
                    )
                )
            )
        results = [f.result(30) for f in futures]
        for result in results[:3]:
            order = result.order  # type: ignore[attr-defined]
            if order["status"] == "accepted":
                pass
        print("batch", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
