"""The one place that chooses implementations and wires the platform together.

`bootstrap(settings)` returns a `Container` holding every service, built from the settings: the
embedded default (SQLite, in-process caches) or PostgreSQL and Redis. Tests call it with their own
settings and clock; nothing else constructs services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rampart.access.api import AccessDecisionRecorder
from rampart.access.recorder import AuditLogAccessRecorder
from rampart.access.rls import system_by_default
from rampart.access.service import AccessService
from rampart.apikeys.auth import SignatureAuthenticator
from rampart.apikeys.changes import FileKeyChanges, RedisKeyChanges
from rampart.apikeys.expiry import ExpiryNotices
from rampart.apikeys.jobs import OldKeySweeper
from rampart.apikeys.nonces import MemoryNonceStore, NonceStore, RedisNonceStore
from rampart.apikeys.service import ApiKeyService
from rampart.apikeys.verification import KeyVerification
from rampart.audit.checkpoints import Checkpointer
from rampart.audit.log import AuditLog
from rampart.audit.service import AuditReader
from rampart.audit.setup import build_audit
from rampart.config import Settings, load_settings
from rampart.identity.authn import BearerAuthenticator, SessionAuthenticator
from rampart.identity.mfa.service import MfaService
from rampart.identity.mfa.setup import build_mfa
from rampart.identity.password_changes import TOPIC_PASSWORD_RESET
from rampart.identity.service import IdentityService, build_identity, password_reset_job
from rampart.kernel.clock import Clock, SystemClock
from rampart.ledger.service import LedgerService
from rampart.notifications.service import NotificationService
from rampart.notifications.setup import build_notifications
from rampart.notifications.worker import OutboxWorker
from rampart.platform.db import Database
from rampart.platform.keys import RootKeys
from rampart.platform.uow import AuditWriter, UnitOfWork
from rampart.ratelimit.backends import MemoryBackend, RedisBackend
from rampart.ratelimit.ports import RateLimitBackend
from rampart.ratelimit.service import RateLimits
from rampart.risk.gate import RiskGate
from rampart.risk.service import RiskService
from rampart.risk.setup import build_risk, open_orders_from_engine
from rampart.trading.engine import OrderEngine
from rampart.trading.ports import PreTradeCheck
from rampart.trading.service import OrderService
from rampart.trading.stream import StreamHub
from rampart.vault.jobs import VaultMaintenance
from rampart.vault.service import VaultService
from rampart.vault.setup import build_vault
from rampart.venue.service import InstrumentService


@dataclass
class Container:
    settings: Settings
    clock: Clock
    db: Database
    keys: RootKeys
    redis: Any | None = None
    audit_writer: AuditWriter | None = None
    #: Credential checkers tried in order by `rampart.access.api.authenticate`.
    authenticators: list[Any] = field(default_factory=list)
    #: Writes every permission check, allowed or denied, to the audit log.
    access_recorder: AccessDecisionRecorder | None = None
    #: Things to stop on shutdown (background workers), in reverse order of start.
    closers: list[Any] = field(default_factory=list)
    #: Roles and permissions of users (rampart.access).
    access: AccessService = field(init=False)
    #: Named rate limiters (rampart.ratelimit): Redis-backed when Redis is configured.
    ratelimits: RateLimits = field(init=False)
    #: API keys and signed requests (rampart.apikeys).
    apikeys: ApiKeyService = field(init=False)
    #: The audit log (rampart.audit): `append`/`append_async` for events with no transaction.
    audit_log: AuditLog = field(init=False)
    #: Signs and ships the audit log's checkpoints (a background thread).
    audit_checkpointer: Checkpointer = field(init=False)
    #: Search, proofs, checkpoints and verification of the audit log.
    audit: AuditReader = field(init=False)
    #: Encryption at rest (rampart.vault): seal/open, blind indexes, rotation, shredding.
    vault: VaultService = field(init=False)
    #: Second factors and step-up (rampart.identity.mfa).
    mfa: MfaService = field(init=False)
    #: Queues email and SMS in the outbox (rampart.notifications).
    notifications: NotificationService = field(init=False)
    #: Delivers queued email and SMS, with retries (a background thread).
    outbox_worker: OutboxWorker = field(init=False)
    #: Accounts, sign-in, sessions, tokens and devices (rampart.identity).
    identity: IdentityService = field(init=False)
    #: Cash accounts, journal and positions (rampart.ledger).
    ledger: LedgerService = field(init=False)
    #: Instruments (rampart.venue).
    instruments: InstrumentService = field(init=False)
    #: Orders: the engine (single writer, group commit), reads, streams (rampart.trading).
    orders: OrderService = field(init=False)
    #: Pre-trade checks run on every new and modified order after the built-in ones; the risk
    #: engine appends here. The order engine holds this very list.
    pre_trade_checks: list[PreTradeCheck] = field(default_factory=list)
    #: Limits, trading states, halts and the four-eyes resume, locates, risk events
    #: (rampart.risk).
    risk: RiskService = field(init=False)
    #: The pre-trade risk pipeline, registered in `pre_trade_checks`.
    risk_gate: RiskGate = field(init=False)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db, self.clock, self.audit_writer)

    def start(self) -> None:
        """Start background work (audit sequencer, outbox worker, market simulator)."""
        for component in self.closers:
            start = getattr(component, "start", None)
            if start is not None:
                start()

    def close(self) -> None:
        for component in reversed(self.closers):
            stop = getattr(component, "stop", None)
            if stop is not None:
                stop()
        if self.redis is not None:
            self.redis.close()
        self.db.dispose()


def _redis_client(url: str) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries with backoff: a limiter that fails closed must answer at once when Redis is
    # down, not after seconds of reconnect attempts holding the request.
    return redis.Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def _wire_identity(container: Container) -> None:
    container.identity = build_identity(
        container.settings,
        container.clock,
        container.db,
        container.keys,
        roles=container.access,
        notifier=container.notifications,
        vault=container.vault,
    )
    # Forgotten-password requests are answered in the background (same cost for every address).
    container.outbox_worker.handle(
        TOPIC_PASSWORD_RESET, password_reset_job(container.identity.accounts, container.uow)
    )
    # A user with a second factor finishes signing in only through it.
    container.identity.login.second_factors.append(container.mfa)
    # A support-assisted factor reset ends a staff member's sessions (their key proof is void).
    container.mfa.reset_listeners.append(container.identity.sessions.end_after_factor_reset)
    # A reset by email of an account whose only second factor is that mailbox starts a hold.
    container.identity.accounts.reset_listeners.append(container.mfa.after_password_reset)
    container.closers.append(container.identity)
    container.authenticators.extend(
        [
            BearerAuthenticator(container.identity, container.clock),
            SessionAuthenticator(
                container.identity, container.clock, container.settings, container.uow
            ),
        ]
    )


def _wire_apikeys(container: Container) -> None:
    settings = container.settings
    verification = KeyVerification(
        container.clock,
        settings.apikeys,
        container.vault,
        container.access,
        # Read on every signed request: a closed or locked owner's keys stop at once.
        owner_active=container.identity.accounts.is_active,
        changes=(
            RedisKeyChanges(container.redis)
            if container.redis is not None
            else FileKeyChanges(settings.data_dir / "apikeys.changed")
        ),
    )
    container.apikeys = ApiKeyService(
        container.clock,
        settings.apikeys,
        container.vault,
        verification,
        container.mfa,
        environment="live" if settings.profile == "production" else "test",
        notifier=container.notifications,
        owner_email=container.identity.accounts.contact_email,
    )
    # Cached API keys are re-read once their owner's account is locked, unlocked or closed.
    container.identity.accounts.status_listeners.append(verification.owner_changed)
    expiry = ExpiryNotices(
        container.clock,
        settings.apikeys,
        notifier=container.notifications,
        owner_email=container.identity.accounts.contact_email,
    )
    container.closers.append(
        OldKeySweeper(
            container.apikeys,
            container.uow,
            settings.apikeys.old_key_check_seconds,
            expiry=expiry,
        )
    )
    nonces: NonceStore = (
        RedisNonceStore(container.redis)
        if container.redis is not None
        else MemoryNonceStore(container.clock)
    )
    container.authenticators.append(
        SignatureAuthenticator(
            verification,
            container.db,
            container.uow,
            nonces,
            container.clock,
            settings.apikeys,
            public_url=settings.public_url,
            ratelimits=container.ratelimits,
            inline=container.redis is None,
        )
    )


def _wire_shredding(container: Container) -> None:
    """Shredding a person ends their credentials in the same transaction.

    The vault sits below identity and apikeys, so it cannot revoke anything itself; it calls
    back (`on_shredding`) inside every shred, whoever performs it (`rampart keys shred-user`, or
    `rampart backup restore` re-applying the shred register to an older copy that still holds
    live sessions and keys). Each domain revokes through its own service."""

    def end_credentials(db: object, user_id: str) -> None:
        if not isinstance(db, UnitOfWork):
            raise TypeError("shred a user in a unit of work: their credentials end with it")
        container.identity.accounts.erase(db, user_id)
        container.apikeys.revoke_all_of_user(db, user_id, reason="owner's data erased")

    container.vault.shredding.on_shredding(end_credentials)


def _wire_trading(container: Container) -> None:
    trading = container.settings.trading
    container.ledger = LedgerService()
    container.instruments = InstrumentService()
    engine = OrderEngine(
        container.uow,
        container.ledger,
        StreamHub(trading.stream_queue_size),
        instruments=container.instruments,
        checks=container.pre_trade_checks,
        batch_max=trading.engine_batch_max,
        queue_max=trading.engine_queue_max,
        # Order events and the requests' access decisions go into each batch's transaction.
        write_audit=getattr(container.audit_writer, "write_prepared", None),
        # The same Regulation T rate the risk gate's buying-power check applies.
        short_initial_margin=container.settings.risk.short_initial_margin,
    )
    container.orders = OrderService(container.db, engine, container.ledger, container.instruments)
    # After the audit log in `closers`: started after it, stopped (drained) before it.
    container.closers.append(engine)
    if trading.simulator:
        from rampart.simulator.agents import SimulatorAgents
        from rampart.simulator.service import MarketSimulator

        # The agents are provisioned on start, once risk is wired (their limits and locates).
        container.closers.append(
            MarketSimulator(
                container.orders,
                container.ledger,
                container.uow,
                trading,
                SimulatorAgents(container),
            )
        )


def _wire_risk(container: Container) -> None:
    orders = container.orders
    risk = build_risk(
        container.settings,
        container.clock,
        container.db,
        container.uow,
        ledger=container.ledger,
        users=container.identity.accounts,
        factors=container.mfa,
        marks=orders.mark,
        open_orders=open_orders_from_engine(orders.engine.open_orders_of),
        day_activity=orders.day_activity,
    )
    container.risk, container.risk_gate = risk.service, risk.gate
    # A recovery hold (factor reset, email-only password reset) blocks orders from the next one.
    container.mfa.hold_listeners.append(lambda _uow, user_id: risk.gate.forget(user_id))
    container.pre_trade_checks.append(risk.gate)
    # Halts and cancel-on-disconnect cancel through the engine; fills feed the gate's
    # repeated-execution throttle and trade counts once their batch has committed.
    risk.service.canceller = orders
    orders.engine.execution_listeners.append(risk.gate.record_execution)
    # Every change the engine makes to an order reaches the gate's view of the account at once.
    orders.engine.order_listeners.append(risk.gate.order_changed)
    # Started before the engine, so that halts are loaded before the first order is checked.
    container.closers.insert(container.closers.index(orders.engine), risk.worker)


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    settings = settings or load_settings()
    clock = clock or SystemClock()
    db = Database(settings.effective_database_url)
    # Row-level security: transactions see all rows until a service narrows one to its user.
    system_by_default(db.engine)
    container = Container(
        settings=settings,
        clock=clock,
        db=db,
        keys=RootKeys(settings),
        redis=_redis_client(settings.effective_redis_url) if settings.effective_redis_url else None,
    )
    audit = build_audit(settings, container.keys, clock, db)
    container.audit_writer = audit.writer
    container.audit_log = audit.log
    container.audit_checkpointer = audit.checkpointer
    container.audit = audit.reader
    # Stopped in reverse: the log flushes its queue, then a last checkpoint covers it.
    container.closers.extend([audit.checkpointer, audit.log])
    container.access = AccessService(clock)
    limiter_backend: RateLimitBackend = (
        RedisBackend(container.redis) if container.redis is not None else MemoryBackend(clock)
    )
    container.ratelimits = RateLimits(limiter_backend, clock, settings.ratelimit)
    container.vault = build_vault(settings, container.keys, clock)
    container.closers.append(
        VaultMaintenance(container.vault, container.uow, settings.vault.maintenance_seconds)
    )
    container.access_recorder = AuditLogAccessRecorder(
        lambda: getattr(container, "audit_log", None)
    )
    container.notifications, container.outbox_worker = build_notifications(
        settings, clock, db, container.vault
    )
    container.closers.append(container.outbox_worker)
    container.mfa = build_mfa(
        settings,
        clock,
        container.vault,
        getattr(container, "notifications", None),
        # Identity is wired next; the address is read through it when a code is sent.
        email_of=lambda session, user_id: container.identity.accounts.contact_email(
            session, user_id
        ),
    )
    _wire_identity(container)
    _wire_apikeys(container)
    _wire_shredding(container)
    _wire_trading(container)
    _wire_risk(container)
    return container
