from __future__ import annotations

from pathlib import Path

import pytest

from rampart.config import Settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The isolation tests create API keys for their users, who have no second factor enrolled.
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        mfa={"required_for_trading": False},  # type: ignore[arg-type]
    )
