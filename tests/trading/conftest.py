from __future__ import annotations

from collections.abc import Iterator

import pytest

from rampart.bootstrap import Container
from tests.trading.support import HeaderAuthenticator, seed


@pytest.fixture
def engine(container: Container) -> Iterator[Container]:
    """The container with its order engine running and the test instruments defined."""
    seed(container)
    container.orders.engine.start()
    try:
        yield container
    finally:
        container.orders.engine.stop()


@pytest.fixture
def trader_client(container: Container):  # type: ignore[no-untyped-def]
    container.authenticators.insert(0, HeaderAuthenticator())
    seed(container)
    from fastapi.testclient import TestClient

    from rampart.web.app import create_app

    with TestClient(create_app(container), base_url="https://testserver") as client:
        yield client
