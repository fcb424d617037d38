"""Configuration: pydantic-settings, read once at start-up, frozen afterwards.

Every setting comes from a `RAMPART_` environment variable (nested sections with `__`, e.g.
`RAMPART_AUDIT__CHECKPOINT_EVERY`). A secret may instead be given as `RAMPART_<NAME>_FILE`, the path
of a file holding it, so that secrets can come from mounted files rather than the environment.

Two profiles: `dev`, the embedded default (SQLite and keys under `./var`, generated on first run),
and `production`, which refuses to start on anything unsafe and lists every problem it finds.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "RAMPART_"
DEV_KEY_MARKER = "rampart-dev-key:"


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuditSettings(Section):
    #: Sign a checkpoint after this many new entries, and at least every `checkpoint_seconds`.
    checkpoint_every: int = Field(default=1000, ge=1)
    checkpoint_seconds: float = Field(default=1.0, gt=0, le=60)
    #: Where signed checkpoints are shipped, outside the database: a directory path, or an
    #: http(s) URL of a witness endpoint. Defaults to `<data_dir>/checkpoints`.
    checkpoint_sink: str | None = None
    retention_years: int = Field(default=7, ge=7)
    signing_key: SecretStr | None = None
    batch_max: int = Field(default=512, ge=1, le=100_000)


class VaultSettings(Section):
    kek: SecretStr | None = None
    rotation_days: int = Field(default=90, ge=1, le=365)
    reencrypt_batch: int = Field(default=500, ge=1, le=100_000)


class IdentitySettings(Section):
    password_min_length: int = Field(default=8, ge=8, le=64)
    password_max_length: int = Field(default=256, ge=64, le=4096)
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)
    hashing_concurrency: int = Field(default=2, ge=1, le=64)
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    refresh_token_hours: int = Field(default=24, ge=1, le=24 * 30)
    session_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30)
    jwt_issuer: str = "rampart"
    jwt_audience: str = "rampart-api"
    jwt_signing_key: SecretStr | None = None


class MfaSettings(Section):
    required_for_trading: bool = True
    step_up_minutes: int = Field(default=5, ge=1, le=60)
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str = "Rampart"
    webauthn_origin: str | None = None


class ApiKeySettings(Section):
    signature_max_age_seconds: int = Field(default=30, ge=1, le=600)
    rotation_grace_hours: int = Field(default=24, ge=0, le=24 * 30)
    max_age_days: int = Field(default=90, ge=1)


class RiskSettings(Section):
    price_collar_percent: float = Field(default=10.0, gt=0, le=100)
    max_orders_per_second: int = Field(default=50, ge=1)
    margin_mode: Literal["intraday", "legacy-pdt"] = "intraday"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    profile: Literal["dev", "production"] = "dev"
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: Everything the embedded default keeps on disk: database, dev keys, mailbox, checkpoints.
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    #: The URL users reach the service at; links in emails and the WebAuthn origin derive from it.
    public_url: str | None = None
    #: Proxies whose X-Forwarded-For is believed (IPs or CIDRs). Anyone else's is ignored.
    trusted_proxies: list[str] = Field(default_factory=list)
    cookie_secure: bool = True
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True

    audit: AuditSettings = AuditSettings()
    vault: VaultSettings = VaultSettings()
    identity: IdentitySettings = IdentitySettings()
    mfa: MfaSettings = MfaSettings()
    apikeys: ApiKeySettings = ApiKeySettings()
    risk: RiskSettings = RiskSettings()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SecretFileSource(settings_cls))

    # --- derived values -------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rampart.db').as_posix()}"

    @property
    def uses_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class SecretFileSource(PydanticBaseSettingsSource):
    """`RAMPART_X_FILE=/path` sets `x` to the file's content (trailing newline stripped)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, path in os.environ.items():
            upper = key.upper()
            if not (upper.startswith(ENV_PREFIX) and upper.endswith("_FILE")):
                continue
            name = upper[len(ENV_PREFIX) : -len("_FILE")].lower()
            if not name or name == "env":
                continue
            content = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            target = values
            parts = name.split("__")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            # The explicit environment variable wins over its _FILE variant.
            if f"{ENV_PREFIX}{name.upper()}" not in {k.upper() for k in os.environ}:
                target[parts[-1]] = content
        return values


class ConfigError(Exception):
    """The configuration is unsafe or invalid; `problems` lists every reason, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _secret_fields(settings: Settings) -> dict[str, SecretStr | None]:
    return {
        "RAMPART_VAULT__KEK": settings.vault.kek,
        "RAMPART_AUDIT__SIGNING_KEY": settings.audit.signing_key,
        "RAMPART_IDENTITY__JWT_SIGNING_KEY": settings.identity.jwt_signing_key,
    }


def production_problems(settings: Settings) -> list[str]:
    """Every reason the settings are unsafe for production (empty when they are fine)."""
    problems: list[str] = []
    if settings.uses_sqlite:
        problems.append(
            "database: SQLite is the embedded default; set RAMPART_DATABASE_URL to PostgreSQL"
        )
    if settings.debug:
        problems.append("debug: RAMPART_DEBUG must be false in production")
    if not settings.cookie_secure:
        problems.append("cookies: RAMPART_COOKIE_SECURE must be true in production")
    if not settings.public_url:
        problems.append("public_url: set RAMPART_PUBLIC_URL to the URL users reach the service at")
    elif not settings.public_url.startswith("https://"):
        problems.append("public_url: RAMPART_PUBLIC_URL must be an https:// URL in production")
    if not settings.trusted_proxies:
        problems.append(
            "trusted_proxies: set RAMPART_TRUSTED_PROXIES to the proxies in front of the service"
        )
    for name, value in _secret_fields(settings).items():
        if value is None:
            problems.append(f"keys: {name} (or {name}_FILE) is not set; dev keys are refused")
        elif value.get_secret_value().startswith(DEV_KEY_MARKER):
            problems.append(f"keys: {name} holds a generated dev key; give a production key")
    if settings.mfa.webauthn_rp_id is None:
        problems.append("mfa: set RAMPART_MFA__WEBAUTHN_RP_ID to the relying-party domain")
    return problems


def check_settings(settings: Settings) -> None:
    if settings.profile == "production":
        problems = production_problems(settings)
        if problems:
            raise ConfigError(problems)


def load_settings(**overrides: Any) -> Settings:
    settings = Settings(**overrides)
    check_settings(settings)
    return settings
