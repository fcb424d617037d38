"""`rampart demo`'s people: a demo trader a person signs in as, and a demo bot with an API key.

Both are ordinary verified user accounts made through the identity, MFA, ledger and API-key
services, under the platform's real policy (nothing is switched off for the demo):

- With `mfa.required_for_trading` (the default), creating an API key needs a second factor, and
  passed recently (step-up). So each demo user enrols an authenticator app (TOTP) through the MFA
  service, and the bot user signs in with its password and a TOTP code, computed with pyotp as an
  authenticator app would, before its key is created with that session.
- Enrolment confirms the factor with the code of the step *before* now (the server accepts one
  step of drift): the code an authenticator app shows now, and the code printed on the console,
  were never used, so they sign in at once (TOTP codes are single use: confirming with the
  current step's code would make the app's current code a refused replay).
- The trader's password, TOTP key, current code and backup codes are generated on every start
  and handed to the caller once, to print on the console; they are stored nowhere but as the
  services store them (hashed, sealed). A restart makes new ones, so the account is created once
  and then re-keyed.
- The bot's API key (hmac-sha256) lives in this process's memory only; the previous run's key is
  revoked when a new one is made.
- A demo administrator and a demo compliance officer show the staff side (halts, limits, roles).
  Staff need a security key (WebAuthn), which no script can hold for a person, so each start
  prints a fresh single-use enrolment link for each (`AccountService.staff_enrolment_link`): the
  person sets a password and registers a key or passkey there, then signs in with both.

`DemoBotRunner` runs `rampart.simulator.bot.DemoBot` in a thread against the running server over
HTTP, and is a `closer` of the platform: it starts with the app and stops before the engine, then
cancels anything the bot left resting.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import pyotp

from rampart.access.domain import Principal
from rampart.apikeys.service import ApiKeyService
from rampart.identity.authn import principal_of
from rampart.identity.domain import InvalidCredentialsError
from rampart.identity.mfa.domain import TOTP_PERIOD, FactorKind
from rampart.identity.mfa.login_api import pending_purpose
from rampart.identity.mfa.service import FactorResponse, MfaService
from rampart.identity.service import IdentityService
from rampart.identity.sessions import KIND_BROWSER, ClientInfo
from rampart.kernel.clock import Clock
from rampart.kernel.errors import RampartError
from rampart.kernel.secret import Secret
from rampart.ledger.service import LedgerService
from rampart.platform.db import Database
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.trading.engine import CancelAll
from rampart.trading.service import OrderService

log = get_logger(__name__)

TRADER_EMAIL = "demo-trader@example.com"
BOT_EMAIL = "demo-bot@example.com"
#: Staff accounts of the demo, by role: enrolled by a person from the printed links.
STAFF_EMAILS = {"ADMIN": "demo-admin@example.com", "COMPLIANCE": "demo-compliance@example.com"}
#: Demo cash each demo account is topped up to on start.
TRADER_CASH = Decimal("100000")
BOT_CASH = Decimal("250000")
ACTOR = "system:demo"
BOT_KEY_LABEL = "demo bot"
BOT_SCOPES = ["trade", "data"]
#: The bot's pace: a person watching the market page sees it act, the engine hardly notices.
BOT_RATE = 2.0


class DemoServices(Protocol):
    """The services the demo's accounts are made with (the bootstrap's container has them)."""

    clock: Clock
    db: Database
    identity: IdentityService
    mfa: MfaService
    ledger: LedgerService
    apikeys: ApiKeyService

    def uow(self) -> UnitOfWork: ...


@dataclass(frozen=True)
class DemoTrader:
    """What a person needs to sign in as the demo trader; shown once, on the console."""

    user_id: str
    email: str
    password: Secret[str]
    totp_secret: Secret[str]
    totp_uri: Secret[str]
    #: The code of the TOTP step at provisioning (unused: see `_enrol_totp`); printed so that
    #: the first sign-in works without an app, typed in within the minute.
    totp_code_now: Secret[str]
    backup_codes: list[Secret[str]]


@dataclass(frozen=True)
class DemoBotKey:
    user_id: str
    email: str
    key_id: str
    secret: Secret[str]


@dataclass(frozen=True)
class DemoStaff:
    """A demo staff account and its enrolment link (shown once, on the console)."""

    role: str
    email: str
    enrolment_url: Secret[str]


@dataclass(frozen=True)
class DemoAccounts:
    trader: DemoTrader
    bot: DemoBotKey
    staff: tuple[DemoStaff, ...] = ()


def _new_password() -> str:
    # 96 bits, in four groups a person can type from the console.
    raw = secrets.token_hex(12)
    return "-".join(raw[i : i + 6] for i in range(0, len(raw), 6))


def _ensure_user(services: DemoServices, email: str, password: str) -> str:
    """The user with `email`, created verified as a TRADER if missing; its password becomes
    `password` either way (the previous one was never kept anywhere)."""
    identity = services.identity
    password_hash = identity.hashing.hasher.hash(identity.policy.check(password, email))
    with services.uow() as uow:
        row = identity.accounts.by_email(uow.session, email)
        if row is None:
            user_id = identity.accounts.create_user(
                uow, email, password_hash, role="TRADER", verified=True, created_by=ACTOR
            )
        else:
            user_id = str(row.id)
            identity.accounts.change_password(uow, user_id, password_hash, keep_session_id=None)
        uow.commit()
    return user_id


def _ensure_staff(services: DemoServices, role: str, email: str) -> DemoStaff:
    """The staff account (created without a password if missing) and a new enrolment link;
    earlier links of the account stop working."""
    accounts = services.identity.accounts
    with services.uow() as uow:
        row = accounts.by_email(uow.session, email)
        if row is None:
            user_id = accounts.create_user(
                uow, email, None, role=role, verified=True, created_by=ACTOR
            )
        else:
            user_id = str(row.id)
        link = accounts.staff_enrolment_link(uow, user_id, issued_by=ACTOR)
        uow.commit()
    return DemoStaff(role=role, email=email, enrolment_url=Secret(link))


def _enrol_totp(services: DemoServices, user_id: str, email: str) -> tuple[str, str]:
    """A fresh authenticator-app factor, confirmed with the previous step's code:
    (base32 key, otpauth URI). The current step's code stays unused for the person signing in.

    A factor from an earlier run is removed first: its key was shown once and not kept."""
    mfa = services.mfa
    with services.uow() as uow:
        if mfa.summary(uow.session, user_id).totp:
            mfa.remove_totp(uow, user_id)
        enrolment = mfa.begin_totp(uow, user_id, email)
        now = int(services.clock.now().timestamp())
        previous = pyotp.TOTP(enrolment.secret).at(now - TOTP_PERIOD)
        check = mfa.confirm_totp(uow, user_id, previous)
        check.raise_for_failure()
        uow.commit()
    return enrolment.secret, enrolment.uri


def _fund(services: DemoServices, user_id: str, target: Decimal) -> None:
    with services.uow() as uow:
        account = services.ledger.account(uow.session, user_id)
        if account.balance < target:
            services.ledger.deposit(uow, user_id, target - account.balance, "demo cash")
            uow.commit()


def _code_now(services: DemoServices, secret: str) -> str:
    """The code an authenticator app shows now (never spent by `_enrol_totp`)."""
    return pyotp.TOTP(secret).at(int(services.clock.now().timestamp()))


def _sign_in(services: DemoServices, email: str, password: str, totp_secret: str) -> Principal:
    """Sign in as a person would (password, then the second factor) and return the principal
    of the new session, whose second factor was passed just now. (A browser-kind session: an
    API sign-in would also mint a JWT, whose signing key is read in a second transaction.)"""
    identity, login = services.identity, services.identity.login
    client = ClientInfo(device_key="rampart-demo", user_agent="rampart demo", ip=None)
    with services.db.read() as session:
        check = login.check_throttle(session, email, None)
    if check.user_id is None or not identity.hashing.hasher.verify(
        check.stored_hash or identity.hashing.hasher.dummy_hash(), password
    ):
        raise InvalidCredentialsError
    with services.uow() as uow:
        outcome = login.password_verified(uow, check, KIND_BROWSER, client, new_hash=None)
        uow.commit()
    if outcome.pending is None:
        raise InvalidCredentialsError("The demo bot has no second factor.")
    token = outcome.pending.token
    with services.uow() as uow:
        response = FactorResponse(FactorKind.TOTP, code=_code_now(services, totp_secret))
        factor = services.mfa.verify(uow, check.user_id, pending_purpose(token), response)
        if not factor.ok:
            login.record_factor_failure(uow, token)
            uow.commit()
            factor.raise_for_failure()
        issued = login.complete_pending_login(uow, token, factor=factor.kind.value)
        uow.commit()
    state = identity.sessions.state_by_id(issued.session_id, fresh=True)
    if state is None or not state.active:
        raise InvalidCredentialsError
    return principal_of(state, "session")


def _bot_key(services: DemoServices, principal: Principal) -> tuple[str, Secret[str]]:
    """Revoke the previous run's demo key and create a new one with the signed-in session."""
    keys = services.apikeys
    with services.uow() as uow:
        for key in keys.list(uow.session, principal):
            if key.label == BOT_KEY_LABEL and key.revoked_at is None:
                keys.revoke(uow, principal, key.id, reason="replaced by a new demo run")
        created = keys.create(
            uow, principal, algorithm="hmac-sha256", scopes=BOT_SCOPES, label=BOT_KEY_LABEL
        )
        assert created.secret is not None
        # The session was only needed to create the key: end it.
        services.identity.login.logout(
            uow, principal.user_id or "", principal.credential_id, everywhere=False
        )
        uow.commit()
    return created.key.id, created.secret


def provision_demo(services: DemoServices) -> DemoAccounts:
    """Create (or re-key) the demo trader and the demo bot; fund both with demo cash."""
    password = _new_password()
    trader_id = _ensure_user(services, TRADER_EMAIL, password)
    totp_secret, totp_uri = _enrol_totp(services, trader_id, TRADER_EMAIL)
    with services.uow() as uow:
        codes = services.mfa.regenerate_backup_codes(uow, trader_id)
        uow.commit()
    _fund(services, trader_id, TRADER_CASH)

    # The bot's password and TOTP key exist only for the length of this function.
    bot_password = _new_password()
    bot_id = _ensure_user(services, BOT_EMAIL, bot_password)
    bot_totp, _ = _enrol_totp(services, bot_id, BOT_EMAIL)
    _fund(services, bot_id, BOT_CASH)
    principal = _sign_in(services, BOT_EMAIL, bot_password, bot_totp)
    key_id, secret = _bot_key(services, principal)
    staff = tuple(_ensure_staff(services, role, email) for role, email in STAFF_EMAILS.items())
    log.info("demo accounts ready", trader=trader_id, bot=bot_id, bot_key=key_id)
    return DemoAccounts(
        trader=DemoTrader(
            user_id=trader_id,
            email=TRADER_EMAIL,
            password=Secret(password),
            totp_secret=Secret(totp_secret),
            totp_uri=Secret(totp_uri),
            totp_code_now=Secret(_code_now(services, totp_secret)),
            backup_codes=codes,
        ),
        bot=DemoBotKey(user_id=bot_id, email=BOT_EMAIL, key_id=key_id, secret=secret),
        staff=staff,
    )


class DemoBotRunner:
    """Runs the demo bot in a thread with start()/stop() (a services closer).

    The bot reaches the server over HTTP at `base_url`, like any client; it waits until the
    server answers. On stop, whatever the bot could not cancel itself (the server may already
    have stopped listening) is cancelled through the order engine.
    """

    def __init__(
        self,
        orders: OrderService,
        base_url: str,
        key: DemoBotKey,
        *,
        rate: float = BOT_RATE,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        self._orders = orders
        self._base_url = base_url
        self._key = key
        self._rate = rate
        self._client_factory = client_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bot: Any = None

    def start(self) -> None:
        if self._thread is not None:
            return
        from rampart.client import RampartClient
        from rampart.simulator.bot import DemoBot

        factory = self._client_factory or RampartClient
        client = factory(self._base_url, key_id=self._key.key_id, secret=self._key.secret.reveal())
        self.bot = DemoBot(client, rate=self._rate)
        self._stop.clear()

        def run() -> None:
            try:
                self.bot.run(self._stop)
            except Exception as exc:  # noqa: BLE001 - the demo keeps serving; the error is logged
                log.error("demo bot stopped", error=type(exc).__name__)
            finally:
                client.close()

        self._thread = threading.Thread(target=run, name="demo-bot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(15)
        engine = self._orders.engine
        if engine.running:
            try:
                engine.call(CancelAll(self._key.user_id, ACTOR), timeout=5)
            except (RampartError, TimeoutError):
                log.info("demo bot orders left resting")


def banner(accounts: DemoAccounts, base_url: str, data_dir: str) -> list[str]:
    """What `rampart demo` prints at start (Rich markup): where to go and how to sign in.

    The only place the trader's secrets are revealed; the console is the one place they go."""
    trader = accounts.trader
    codes = " ".join(c.reveal() for c in trader.backup_codes)
    return [
        "",
        f"[bold]Rampart demo[/]  (embedded default: SQLite under {data_dir}/)",
        "",
        f"  open          {base_url}/   then   {base_url}/market",
        f"  API docs      {base_url}/docs",
        f"  health        {base_url}/healthz   readiness {base_url}/readyz",
        "",
        "  [bold]Sign in as the demo trader[/] (new credentials on every start, shown only here):",
        f"    email       {trader.email}",
        f"    password    {trader.password.reveal()}",
        "    second factor: add this key to an authenticator app (TOTP, 6 digits, 30 s);",
        "                 the code it shows works straight away",
        f"    TOTP key    {trader.totp_secret.reveal()}",
        f"    code now    {trader.totp_code_now.reveal()}   (for a sign-in within the next"
        " minute; after that, your app's code)",
        f"    or use one of these one-time backup codes: {codes}",
        "",
        *_staff_lines(accounts.staff),
        f"  demo bot      {accounts.bot.email} trades through rampart.client with API key "
        f"{accounts.bot.key_id} (places and cancels limit orders near the touch)",
        "  simulator     market makers and noise traders keep the market moving",
        "  stop with Ctrl-C",
        "",
    ]


def _staff_lines(staff: tuple[DemoStaff, ...]) -> list[str]:
    if not staff:
        return []
    lines = [
        "  [bold]Staff[/] (halts, limits, roles) need a security key or passkey: open the link, "
        "set a password, register the key, then sign in with both (single-use links, new on "
        "every start):"
    ]
    for member in staff:
        lines.append(f"    {member.role.lower():<11} {member.email}")
        lines.append(f"    enrol       {member.enrolment_url.reveal()}")
    lines.append("")
    return lines
