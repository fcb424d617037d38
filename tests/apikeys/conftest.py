from __future__ import annotations

from pathlib import Path

import pytest

from rampart.bootstrap import Container
from rampart.config import Settings
from tests.access.support import install


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Step-up is exercised in its own tests; elsewhere users have no second factor enrolled.
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        mfa={"required_for_trading": False},  # type: ignore[arg-type]
    )


@pytest.fixture
def app(container: Container):  # type: ignore[no-untyped-def]
    # The header authenticator only stands in for the owner managing keys (not what these tests
    # are about); every signed request is verified for real, for real accounts (`new_account`).
    # Step-up and the bot's whole onboarding use real sign-in: test_step_up.py and
    # tests/integration/test_bot_onboarding.py.
    from fastapi import APIRouter, Depends

    from rampart.access.api import requires
    from rampart.access.domain import Permission, Principal
    from rampart.web.app import create_app

    install(container)
    app = create_app(container)
    # A stand-in for the order entry route (trading's own lands separately): needs order:place.
    probe = APIRouter()
    place = requires(Permission.ORDER_PLACE)

    @probe.post("/test/orders")
    def place_order(body: dict, principal: Principal = Depends(place)) -> dict:  # type: ignore[type-arg]
        return {"placed": body, "by": principal.actor}

    app.include_router(probe)
    return app
