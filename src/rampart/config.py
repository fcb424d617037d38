"""Configuration: pydantic-settings, read once at start-up, frozen afterwards.

Every setting comes from a `RAMPART_` environment variable (nested sections with `__`, e.g.
`RAMPART_AUDIT__CHECKPOINT_EVERY`). A secret may instead be given as `RAMPART_<NAME>_FILE`, the path
of a file holding it, so that secrets can come from mounted files rather than the environment.

Two profiles: `dev`, the embedded default (SQLite and keys under `./var`, generated on first run),
and `production`, which refuses to start on anything unsafe and lists every problem it finds.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    #: The log's name in its checkpoints and the signing key's name: a URL-like string, no
    #: spaces or '+'. Never change it for an existing log. Default: `<public_url host>/audit`.
    origin: str | None = Field(default=None, pattern=r"^[^\s+\u2014]{1,200}$")
    #: Largest page of the audit search API (and of each CSV/JSON export request).
    max_page_size: int = Field(default=500, ge=1, le=10_000)


class VaultSettings(Section):
    #: The key-encryption key (base64 of 32 bytes). Dev generates `<data_dir>/keys/vault_kek.key`.
    kek: SecretStr | None = None
    #: Earlier KEKs, kept only while `rampart keys rotate-kek` re-wraps the data keys they wrapped.
    previous_keks: list[SecretStr] = Field(default_factory=list, max_length=8)
    rotation_days: int = Field(default=90, ge=1, le=365)
    # A batch takes one PostgreSQL advisory lock per user key: keep it well inside the lock table.
    reencrypt_batch: int = Field(default=500, ge=1, le=2_000)
    #: How long unwrapped keys and "current version" answers are kept in memory. Another process's
    #: rotation or shred takes effect here within this time (in this process: at once).
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    #: A superseded version may be destroyed only this long after it was superseded.
    destroy_grace_minutes: int = Field(default=15, ge=0, le=7 * 24 * 60)
    max_plaintext_bytes: int = Field(default=16 * 1_048_576, ge=1024, le=256 * 1_048_576)
    #: Rotate due keys and re-encrypt in the background this often (0 turns the worker off).
    maintenance_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    #: Encrypted backups; default `<data_dir>/backups`.
    backup_dir: Path | None = None
    backup_keep_days: int = Field(default=30, ge=1, le=3650)
    #: Users whose keys were shredded, kept outside the database so that a restore forgets them
    #: too; default `<data_dir>/vault/shredded-users`. Keep it beside the backups' off-site copy.
    shred_register: Path | None = None


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
    #: The idle timeout of a browser session whose user holds a staff role (never longer than
    #: `session_idle_minutes`): an unattended staff console is a halted market waiting to happen.
    staff_session_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    #: How long the enrolment link of a staff account created by an operator stays usable.
    staff_enrolment_hours: int = Field(default=24, ge=1, le=24 * 7)
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30)
    jwt_issuer: str = "rampart"
    jwt_audience: str = "rampart-api"
    #: Root key (32 bytes, base64) from which each Ed25519 signing key is derived by its `kid`.
    jwt_signing_key: SecretStr | None = None
    #: A signing key older than this is replaced at the next signing; its public half stays
    #: published until the last token it signed has expired.
    jwt_key_rotation_days: int = Field(default=30, ge=1, le=365)
    #: Logins waiting for a hashing slot beyond this are refused at once (503), not queued.
    hashing_queue_max: int = Field(default=64, ge=1, le=10_000)
    email_verification_hours: int = Field(default=24, ge=1, le=24 * 7)
    password_reset_minutes: int = Field(default=60, ge=5, le=24 * 60)
    pending_login_minutes: int = Field(default=5, ge=1, le=30)
    #: Failures of one account (by email) before each further attempt waits, doubling from
    #: `throttle_base_seconds` up to `throttle_max_seconds`; at `account_lock_after` the account
    #: is locked for `lock_minutes` (or until a password reset).
    account_free_failures: int = Field(default=3, ge=1, le=100)
    account_lock_after: int = Field(default=10, ge=2, le=1000)
    #: The same per client IP, looser, since many people may share an address.
    ip_free_failures: int = Field(default=20, ge=1, le=10_000)
    ip_lock_after: int = Field(default=100, ge=2, le=100_000)
    throttle_base_seconds: float = Field(default=1.0, gt=0, le=60)
    throttle_max_seconds: float = Field(default=60.0, gt=0, le=3600)
    lock_minutes: int = Field(default=15, ge=1, le=24 * 60)
    #: Failures older than this are forgotten.
    failure_window_minutes: int = Field(default=60, ge=1, le=24 * 60)
    #: How long one process may trust its cached view of a session's revocation state; another
    #: process's logout reaches this one within this bound (this process's own at once).
    revocation_cache_seconds: float = Field(default=1.0, ge=0, le=30)
    verified_token_cache_entries: int = Field(default=100_000, ge=1, le=10_000_000)
    max_sessions_listed: int = Field(default=100, ge=1, le=1000)
    #: Live sessions one account may hold at once (browser sessions and API sign-ins together;
    #: API keys are not sessions). A sign-in at the cap ends the session used least recently and
    #: tells the owner by email (docs/security/authentication.md, "Concurrent sessions").
    max_concurrent_sessions: int = Field(default=10, ge=1, le=100)
    #: The same for an account holding a staff role (never more than `max_concurrent_sessions`):
    #: a staff member has a console and perhaps a script, not a fleet of bots.
    staff_max_concurrent_sessions: int = Field(default=3, ge=1, le=100)
    #: Ending another session, or every session, needs a sign-in or a second-factor step-up at
    #: most this many minutes old (ASVS 7.5.2: "having authenticated again").
    reauthentication_minutes: int = Field(default=5, ge=1, le=60)
    #: The common-password blocklist; defaults to the list shipped in the package
    #: (`rampart/identity/data/common-passwords.txt`). The service refuses to start without it.
    password_blocklist_path: Path | None = None
    #: Words refused inside any password (case-insensitive), besides the parts of the user's own
    #: email address: the product's name, which people reach for first (SP 800-63B 5.1.1.2).
    password_context_words: list[str] = Field(default_factory=lambda: ["rampart"], max_length=50)
    #: Every person must enrol a second factor before reaching anything behind a permission
    #: (account data, orders, API keys, market data): until then a signed-in user reaches only
    #: their own profile, factor enrolment and sign-out. Unset: on in production, off in dev
    #: (`Settings.second_factor_required`).
    require_second_factor: bool | None = None


class NotificationSettings(Section):
    #: `mailbox` writes each message to `<data_dir>/outbox` (dev); `smtp` sends it.
    email_transport: Literal["mailbox", "smtp"] = "mailbox"
    email_from: str = "Rampart <no-reply@rampart.invalid>"
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: `mailbox` (dev) or `http`: a JSON POST to `sms_http_url` with a bearer token.
    sms_provider: Literal["mailbox", "http"] = "mailbox"
    sms_http_url: str | None = None
    sms_http_token: SecretStr | None = None
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    backoff_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    batch_size: int = Field(default=50, ge=1, le=1000)


class MfaSettings(Section):
    required_for_trading: bool = True
    step_up_minutes: int = Field(default=5, ge=1, le=60)
    #: Sensitive staff actions (halts, limits, roles, unlocks, factor resets, key rotation) need
    #: a WebAuthn step-up at most this old.
    staff_step_up_minutes: int = Field(default=5, ge=1, le=60)
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str = "Rampart"
    webauthn_origin: str | None = None
    #: Codes sent by email as a second factor. Off in production (ASVS 6.3.6): whoever reads
    #: the mailbox can already reset the password, so a code sent there adds no second factor.
    #: Unset: off in production, on in dev (`Settings.email_factor_allowed`); production refuses
    #: to serve with it switched on.
    email_factor_enabled: bool | None = None
    #: How many 30-second steps late an authenticator-app code is still accepted (ASVS 6.5.5):
    #: 1 (the default) lets a code typed across a step boundary through, so a code lives at
    #: most 60 s; 0 accepts the current step's code only (30 s).
    totp_late_steps: int = Field(default=1, ge=0, le=1)


class ApiKeySettings(Section):
    #: How old a signature's `created` may be; a nonce is remembered for as long.
    signature_max_age_seconds: int = Field(default=30, ge=1, le=600)
    #: How far ahead of our clock `created` may be (the client's clock runs fast).
    signature_future_skew_seconds: int = Field(default=5, ge=0, le=60)
    rotation_grace_hours: int = Field(default=24, ge=0, le=24 * 30)
    #: Keys older than this are flagged and their owners told to rotate them.
    max_age_days: int = Field(default=90, ge=1)
    #: How often the app looks for such keys (`OldKeySweeper`); 0 turns the sweeper off
    #: (`rampart apikeys flag-old` still works, e.g. from cron).
    old_key_check_seconds: float = Field(default=3600.0, ge=0, le=7 * 86_400)
    #: Owners of a key with an expiry are told this many days before it expires, with how to
    #: rotate it (`rampart.apikeys.expiry`, run by the sweeper); 0 sends no notice.
    expiry_notice_days: int = Field(default=7, ge=0, le=90)
    max_keys_per_user: int = Field(default=20, ge=1, le=1000)
    max_allowed_cidrs: int = Field(default=32, ge=1, le=1000)
    #: Last use (time, IP) is written at most this often per key, and at most once a second
    #: when the key's IP changes: never a database write per request.
    last_use_write_seconds: int = Field(default=60, ge=0, le=3600)
    #: How long a verified key and its owner's permissions are trusted in memory (0: read them on
    #: every request). Revocation, rotation and owner lock/close take effect at once anyway (see
    #: `rampart.apikeys.changes`); this bounds role changes and processes without a shared marker.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)


class RateLimitSettings(Section):
    enabled: bool = True
    #: Per-limiter overrides, `name: "<count>/<period>[ burst <n>]"`, e.g.
    #: `{"ip.login": "10/minute burst 5"}` (RAMPART_RATELIMIT__LIMITS='{"ip.login": "..."}').
    limits: dict[str, str] = Field(default_factory=dict)
    #: Adaptive mode: after this many auth failures within `penalty_window_seconds`, an IP's or
    #: a key's limits are divided by `penalty_factor` for the rest of the window.
    penalty_failures: int = Field(default=5, ge=1, le=1000)
    penalty_window_seconds: int = Field(default=900, ge=1, le=86_400)
    penalty_factor: int = Field(default=4, ge=1, le=100)


class TradingSettings(Section):
    """The order engine, streams and the demo market simulator (rampart.trading, .simulator)."""

    #: Most commands the engine commits in one transaction (one fsync).
    engine_batch_max: int = Field(default=256, ge=1, le=10_000)
    #: Commands waiting for the engine beyond this are refused with 503 (back-pressure).
    engine_queue_max: int = Field(default=10_000, ge=10, le=1_000_000)
    #: Messages a stream subscriber may have waiting before it is dropped as too slow.
    stream_queue_size: int = Field(default=1000, ge=10, le=100_000)
    #: How often a stream asks whether its credential was revoked (logout, lock, password
    #: reset); a revoked one's stream is closed (1008) within about this time.
    stream_recheck_seconds: float = Field(default=1.0, gt=0, le=30)
    #: Start the market simulator with the app (`rampart demo` turns it on).
    simulator: bool = False
    #: Orders per second the whole simulator places, at most.
    simulator_rate: float = Field(default=20.0, gt=0, le=1000)


class RiskSettings(Section):
    """Pre-trade risk: platform-wide parameters and the default limits of every account.

    The limits here are the platform defaults; administrators override them per account (and
    may override the platform defaults) through `rampart risk limits`, every change audited.
    """

    #: Default price collar, in percent of the reference price (instruments may set their own).
    price_collar_percent: Decimal = Field(default=Decimal(10), gt=0, le=100)
    #: Price bands (limit-up/limit-down style): orders priced more than this percent from the
    #: instrument's average price over the window are refused (`price-band`); 0 turns the
    #: platform default off. Instruments may have their own (`rampart risk band`).
    price_band_percent: Decimal = Field(default=Decimal(10), ge=0, le=100)
    price_band_window_seconds: int = Field(default=300, ge=1, le=86_400)
    max_orders_per_second: int = Field(default=50, ge=1, le=100_000)
    #: `intraday`: amended FINRA Rule 4210 intraday margin. `legacy-pdt`: the pattern-day-trader
    #: rule (4+ day trades in 5 business days under $25,000), kept for the phase-in.
    margin_mode: Literal["intraday", "legacy-pdt"] = "intraday"
    max_order_quantity: Decimal = Field(default=Decimal(100_000), ge=0)
    max_order_notional: Decimal = Field(default=Decimal(1_000_000), ge=0)
    max_position_quantity: Decimal = Field(default=Decimal(500_000), ge=0)
    max_gross_exposure: Decimal = Field(default=Decimal(5_000_000), ge=0)
    daily_loss_limit: Decimal = Field(default=Decimal(50_000), ge=0)
    max_orders_per_day: int = Field(default=20_000, ge=0)
    max_trades_per_day: int = Field(default=20_000, ge=0)
    max_window_notional: Decimal = Field(default=Decimal(5_000_000), ge=0)
    max_collar_strikes: int = Field(default=5, ge=1)
    max_executions_in_window: int = Field(default=200, ge=1)
    duplicate_window_seconds: Decimal = Field(default=Decimal(1), ge=0, le=60)
    erroneous_window_seconds: int = Field(default=60, ge=1, le=3600)
    execution_window_seconds: int = Field(default=10, ge=1, le=3600)
    #: Fees the buying-power check holds back: a rate of the notional, with a minimum.
    fee_rate: Decimal = Field(default=Decimal("0.0005"), ge=0, le=Decimal("0.1"))
    fee_minimum: Decimal = Field(default=Decimal(0), ge=0)
    long_margin_rate: Decimal = Field(default=Decimal("0.25"), gt=0, le=1)
    short_margin_rate: Decimal = Field(default=Decimal("0.30"), gt=0, le=2)
    short_initial_margin: Decimal = Field(default=Decimal("0.50"), gt=0, le=2)
    pdt_min_equity: Decimal = Field(default=Decimal(25_000), ge=0)
    #: Seconds between reloads of halts and states from the database, so that every process
    #: sees a halt made by another (the process that made it sees it at once).
    controls_refresh_seconds: float = Field(default=1.0, gt=0, le=60)
    #: How long the risk gate trusts its cached view of an account (positions, open orders) and
    #: of its owner (status, verified email, MFA) before reloading them.
    facts_ttl_seconds: float = Field(default=1.0, gt=0, le=60)
    profile_ttl_seconds: float = Field(default=10.0, gt=0, le=600)
    #: How often an account's activity of the day (orders, trades, short sales, realised P&L,
    #: day trades) is re-read from the database: a read whose cost grows with the day's volume.
    #: In between, the gate counts on from the orders and fills it sees and from each reload's
    #: ledger totals; the re-read reconciles what another process did.
    activity_ttl_seconds: float = Field(default=30.0, gt=0, le=600)
    #: What the order engine runs before the venue: `full`, every check of the pipeline (the
    #: default: every trading account is an identity user, so status, verified email and MFA
    #: are checked on every order); or `controls`, only halts, trading states and the
    #: restricted list, for measuring the pipeline's cost and nothing else.
    pre_trade: Literal["full", "controls"] = "full"


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
    #: Connection URLs may carry a password: kept out of the settings' repr (and so out of logs).
    database_url: str | None = Field(default=None, repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    #: A PEM bundle of the CA(s) that sign the internal services' certificates (PostgreSQL,
    #: Redis over rediss://, the audit witness): those connections trust it, and only it, instead
    #: of the public roots, so an internally issued certificate is verified, never waved through.
    tls_ca_bundle: Path | None = None
    #: The URL users reach the service at; links in emails and the WebAuthn origin derive from it.
    public_url: str | None = None
    #: Proxies whose X-Forwarded-For is believed (IPs or CIDRs). Anyone else's is ignored.
    trusted_proxies: list[str] = Field(default_factory=list)
    cookie_secure: bool = True
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    #: Serve the API reference (`/docs`, `/openapi.json`). Unset: on in dev, off in production,
    #: where the map of every route and parameter helps an attacker more than a user.
    api_docs: bool | None = None

    audit: AuditSettings = AuditSettings()
    vault: VaultSettings = VaultSettings()
    identity: IdentitySettings = IdentitySettings()
    notifications: NotificationSettings = NotificationSettings()
    mfa: MfaSettings = MfaSettings()
    apikeys: ApiKeySettings = ApiKeySettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    risk: RiskSettings = RiskSettings()
    trading: TradingSettings = TradingSettings()

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
        return (
            init_settings,
            WithoutFileVariants(settings_cls, env_settings),
            SecretFileSource(settings_cls),
        )

    # --- derived values -------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return with_ca_file(self.database_url, "sslrootcert", self.tls_ca_bundle, "postgresql")
        return f"sqlite:///{(self.data_dir / 'rampart.db').as_posix()}"

    @property
    def effective_redis_url(self) -> str | None:
        if not self.redis_url:
            return None
        return with_ca_file(self.redis_url, "ssl_ca_certs", self.tls_ca_bundle, "rediss")

    @property
    def uses_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def api_docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.profile != "production"

    @property
    def second_factor_required(self) -> bool:
        """`identity.require_second_factor`, defaulting to on in production and off in dev."""
        chosen = self.identity.require_second_factor
        return chosen if chosen is not None else self.profile == "production"

    @property
    def email_factor_allowed(self) -> bool:
        """`mfa.email_factor_enabled`, defaulting to off in production and on in dev."""
        chosen = self.mfa.email_factor_enabled
        return chosen if chosen is not None else self.profile != "production"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def with_ca_file(url: str, parameter: str, ca_file: Path | None, scheme: str) -> str:
    """`url` with `parameter=<ca_file>` added when its scheme starts with `scheme` and it names no
    CA of its own (an explicit `sslrootcert`/`ssl_ca_certs` in the URL wins)."""
    parts = urlsplit(url)
    if ca_file is None or not parts.scheme.lower().startswith(scheme):
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == parameter for name, _ in query):
        return url
    query.append((parameter, str(ca_file)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _drop_file_keys(values: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _drop_file_keys(value) if isinstance(value, dict) else value
        for key, value in values.items()
        if not key.lower().endswith("_file")
    }


class WithoutFileVariants(PydanticBaseSettingsSource):
    """The environment source, minus `*_FILE` variables (those are read by SecretFileSource)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _drop_file_keys(self._inner())


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
            try:
                content = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError([f"{key}: cannot read {path} ({type(exc).__name__})"]) from None
            target = values
            parts = name.split("__")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            # The explicit environment variable wins over its _FILE variant.
            if f"{ENV_PREFIX}{name.upper()}" not in {k.upper() for k in os.environ}:
                target[parts[-1]] = (
                    [line.strip() for line in content.splitlines() if line.strip()]
                    if _is_list_field(self.settings_cls, parts)
                    else content
                )
        return values


def _is_list_field(model: Any, parts: list[str]) -> bool:
    """Whether `a__b` names a list setting: its _FILE holds one item per line (previous KEKs)."""
    annotation: Any = model
    for part in parts:
        fields = getattr(annotation, "model_fields", None)
        if not fields or part not in fields:
            return False
        annotation = fields[part].annotation
    return get_origin(annotation) is list


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


def _key_problems(name: str, value: SecretStr) -> list[str]:
    # Mirrors `rampart.platform.keys.decode_key`, which strips whitespace before the dev marker:
    # checking the raw text would let " rampart-dev-key:..." through.
    text = value.get_secret_value().strip()
    if text.startswith(DEV_KEY_MARKER):
        return [f"keys: {name} holds a generated dev key; give a production key"]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        return [f"keys: {name} must be the base64 of 32 random bytes"]
    return []


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
    for network in settings.trusted_proxies:
        net = ipaddress.ip_network(network, strict=False)
        # Trusting (nearly) every address lets any client write its own X-Forwarded-For.
        if net.prefixlen < (8 if net.version == 4 else 16):
            problems.append(
                f"trusted_proxies: RAMPART_TRUSTED_PROXIES entry {network} trusts far too many "
                "addresses; list the proxies' own addresses or subnets"
            )
    for name, value in _secret_fields(settings).items():
        if value is None:
            problems.append(f"keys: {name} (or {name}_FILE) is not set; dev keys are refused")
        else:
            problems += _key_problems(name, value)
    for value in settings.vault.previous_keks:
        problems += _key_problems("RAMPART_VAULT__PREVIOUS_KEKS", value)
    if not settings.ratelimit.enabled:
        problems.append("ratelimit: RAMPART_RATELIMIT__ENABLED must be true in production")
    if settings.mfa.webauthn_rp_id is None:
        problems.append("mfa: set RAMPART_MFA__WEBAUTHN_RP_ID to the relying-party domain")
    if settings.audit.origin is None:
        # Derived from the public URL otherwise: a changed URL would rename the log.
        problems.append(
            "audit: set RAMPART_AUDIT__ORIGIN to the audit log's name (e.g. example.com/audit); "
            "it never changes for an existing log"
        )
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
