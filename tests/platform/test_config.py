"""The production profile refuses every unsafe setting, and says all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from rampart.config import DEV_KEY_MARKER, ConfigError, Settings, load_settings
from rampart.platform.keys import KeyMaterialError, RootKeys, new_key_text

SAFE = {
    "profile": "production",
    "database_url": "postgresql://rampart@db.internal/rampart",
    "public_url": "https://trade.example.com",
    "trusted_proxies": ["10.0.0.0/8"],
    "cookie_secure": True,
    "debug": False,
    "vault": {"kek": new_key_text()},
    "audit": {"signing_key": new_key_text(), "origin": "trade.example.com/audit"},
    "identity": {"jwt_signing_key": new_key_text()},
    "mfa": {"webauthn_rp_id": "trade.example.com"},
}


def production(**changes: object) -> dict[str, object]:
    settings = dict(SAFE)
    settings.update(changes)
    return settings


def test_a_safe_production_configuration_starts() -> None:
    assert load_settings(**production()).profile == "production"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"database_url": None}, "SQLite"),
        ({"database_url": "sqlite:///prod.db"}, "SQLite"),
        ({"debug": True}, "RAMPART_DEBUG"),
        ({"cookie_secure": False}, "RAMPART_COOKIE_SECURE"),
        ({"public_url": None}, "RAMPART_PUBLIC_URL"),
        ({"public_url": "http://trade.example.com"}, "https://"),
        ({"trusted_proxies": []}, "RAMPART_TRUSTED_PROXIES"),
        ({"vault": {}}, "RAMPART_VAULT__KEK"),
        ({"audit": {}}, "RAMPART_AUDIT__SIGNING_KEY"),
        ({"identity": {"jwt_signing_key": DEV_KEY_MARKER + new_key_text()}}, "dev key"),
        ({"mfa": {}}, "WEBAUTHN_RP_ID"),
        ({"audit": {"signing_key": new_key_text()}}, "RAMPART_AUDIT__ORIGIN"),
    ],
)
def test_production_refuses_each_unsafe_setting(change: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(**production(**change))
    assert any(complaint in problem for problem in refused.value.problems)


def test_production_lists_every_problem_not_just_the_first() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(profile="production", debug=True, cookie_secure=False)
    problems = " ".join(refused.value.problems)
    for expected in (
        "SQLite",
        "RAMPART_DEBUG",
        "COOKIE_SECURE",
        "PUBLIC_URL",
        "TRUSTED_PROXIES",
        "VAULT__KEK",
        "AUDIT__SIGNING_KEY",
        "JWT_SIGNING_KEY",
    ):
        assert expected in problems
    assert len(refused.value.problems) >= 8


def test_the_cli_prints_every_problem_and_exits_non_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rampart.cli import app

    monkeypatch.setenv("RAMPART_PROFILE", "production")
    monkeypatch.setenv("RAMPART_DEBUG", "true")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "RAMPART_DEBUG" in result.output
    assert "RAMPART_PUBLIC_URL" in result.output


def test_environment_variables_and_file_variants(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = new_key_text()
    key_file = tmp_path / "kek"
    key_file.write_text(key + "\n")
    monkeypatch.setenv("RAMPART_PORT", "9123")
    monkeypatch.setenv("RAMPART_AUDIT__CHECKPOINT_EVERY", "77")
    monkeypatch.setenv("RAMPART_VAULT__KEK_FILE", str(key_file))
    settings = Settings()
    assert settings.port == 9123
    assert settings.audit.checkpoint_every == 77
    assert settings.vault.kek is not None
    assert settings.vault.kek.get_secret_value() == key
    # The secret never shows in the settings' representation.
    assert key not in repr(settings)


def test_dev_keys_are_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    keys = RootKeys(settings)
    first = keys.get("vault_kek", None)
    again = RootKeys(settings).get("vault_kek", None)
    assert first == again
    assert len(first.reveal()) == 32
    path = tmp_path / "keys" / "vault_kek.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert path.read_text().startswith(DEV_KEY_MARKER)


def test_production_never_generates_keys(tmp_path: Path) -> None:
    settings = Settings.model_construct(profile="production", data_dir=tmp_path)
    with pytest.raises(KeyMaterialError):
        RootKeys(settings).get("vault_kek", None)
    assert not (tmp_path / "keys").exists()


def test_malformed_keys_are_refused() -> None:
    from pydantic import SecretStr

    keys = RootKeys(Settings())
    with pytest.raises(KeyMaterialError):
        keys.get("vault_kek", SecretStr("not base64!"))
    with pytest.raises(KeyMaterialError):
        keys.get("vault_kek", SecretStr("c2hvcnQ="))


# --- review findings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        # decode_key strips whitespace before it strips the marker: so must the check.
        ({"vault": {"kek": "  " + DEV_KEY_MARKER + new_key_text()}}, "dev key"),
        ({"vault": {"kek": "\n" + DEV_KEY_MARKER + new_key_text()}}, "dev key"),
        (
            {"vault": {"kek": new_key_text(), "previous_keks": [DEV_KEY_MARKER + new_key_text()]}},
            "PREVIOUS_KEKS",
        ),
        # Trusting every address lets any client choose its own X-Forwarded-For.
        ({"trusted_proxies": ["0.0.0.0/0"]}, "RAMPART_TRUSTED_PROXIES"),
        ({"trusted_proxies": ["10.0.0.0/8", "::/0"]}, "RAMPART_TRUSTED_PROXIES"),
        # A key that is set but unusable is a problem to list, not a crash at start-up.
        ({"audit": {"signing_key": ""}}, "RAMPART_AUDIT__SIGNING_KEY"),
        ({"audit": {"signing_key": "c2hvcnQ="}}, "RAMPART_AUDIT__SIGNING_KEY"),
        ({"ratelimit": {"enabled": False}}, "RAMPART_RATELIMIT__ENABLED"),
    ],
)
def test_production_refuses_more_unsafe_settings(change: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(**production(**change))
    assert any(complaint in problem for problem in refused.value.problems)


def test_connection_url_passwords_stay_out_of_the_settings_repr() -> None:
    settings = Settings(
        database_url="postgresql://rampart:Pg-Passw0rd-1@db/rampart",
        redis_url="redis://:R3dis-Passw0rd@cache:6379/0",
    )
    for text in (repr(settings), str(settings)):
        assert "Pg-Passw0rd-1" not in text
        assert "R3dis-Passw0rd" not in text


def test_a_missing_secret_file_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAMPART_VAULT__KEK_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError) as refused:
        Settings()
    assert "RAMPART_VAULT__KEK_FILE" in str(refused.value)


def test_dev_key_creation_never_hands_out_an_empty_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two processes starting together: the loser of the O_EXCL race used to read the file before
    # the winner had written it, and crashed on an empty key. Simulate the winner's half-done file.
    import os

    settings = Settings(data_dir=tmp_path)
    keys_dir = tmp_path / "keys"
    real_open = os.open

    def racing_open(path: object, flags: int, *args: object) -> int:
        if str(path).endswith("vault_kek.key") and flags & os.O_EXCL:
            keys_dir.mkdir(parents=True, exist_ok=True)
            (keys_dir / "vault_kek.key").touch()  # created, not yet written
            monkeypatch.setattr(os, "open", real_open)
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", racing_open)
    key = RootKeys(settings).get("vault_kek", None)
    assert len(key.reveal()) == 32


def test_a_list_setting_reads_its_file_one_item_per_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # KEK rotation with file-mounted secrets: the previous KEKs come from a file too.
    old_keys = [new_key_text(), new_key_text()]
    path = tmp_path / "previous-keks"
    path.write_text("\n".join(old_keys) + "\n")
    monkeypatch.setenv("RAMPART_VAULT__PREVIOUS_KEKS_FILE", str(path))
    settings = Settings()
    assert [k.get_secret_value() for k in settings.vault.previous_keks] == old_keys
    assert old_keys[0] not in repr(settings)
