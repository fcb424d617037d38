"""The identity domain, assembled: accounts, sign-in, sessions, tokens and password hashing.

`IdentityService` holds the parts; `build_identity` makes them from settings (called by
the composition root, `bootstrap.py`). The parts are use cases that take a unit of work and
never commit; the callers that commit are the routes, the pages, the CLI and
`rampart.identity.flows`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rampart.access.ports import RoleDirectory
from rampart.config import Settings
from rampart.identity.accounts import AccountService
from rampart.identity.domain import PasswordPolicy, load_blocklist
from rampart.identity.emails import AccountAddresses, SealedEmails
from rampart.identity.links import EmailLinks
from rampart.identity.login import LoginService
from rampart.identity.password_changes import PasswordChanges
from rampart.identity.passwords import HashingPool, PasswordHasher
from rampart.identity.sessions import SessionStore
from rampart.identity.staff_enrolment import StaffEnrolment
from rampart.identity.throttle import LoginThrottle
from rampart.identity.tokens import AccessTokens, KeyRotator, SigningKeys
from rampart.kernel.clock import Clock
from rampart.kernel.secret import Secret
from rampart.notifications.ports import Notifier
from rampart.platform.db import Database
from rampart.platform.keys import RootKeys
from rampart.platform.uow import UnitOfWork
from rampart.vault import VaultService

#: The shipped blocklist: package data (`rampart/identity/data/`), so an installed wheel has it.
#: Sources and licences: `rampart/identity/data/README.md` and `data/SOURCES.md`.
BLOCKLIST_RESOURCE = "data/common-passwords.txt"


class BlocklistMissingError(RuntimeError):
    pass


def _read_blocklist(source: Traversable | Path) -> frozenset[str]:
    # Without its blocklist the policy would quietly accept "password123": refuse to start.
    if not source.is_file():
        raise BlocklistMissingError(f"password blocklist not found at {source}")
    with source.open(encoding="utf-8") as handle:
        return load_blocklist(handle)


def shipped_blocklist() -> Traversable:
    """The blocklist inside the installed package (a file, or a member of a zip import)."""
    return resources.files("rampart.identity").joinpath(*BLOCKLIST_RESOURCE.split("/"))


def load_password_policy(settings: Settings, path: Path | None = None) -> PasswordPolicy:
    """The password policy with its blocklist: `path` (or the configured
    `identity.password_blocklist_path`) when given, else the list shipped in the package."""
    source = path or settings.identity.password_blocklist_path or shipped_blocklist()
    return PasswordPolicy(
        min_length=settings.identity.password_min_length,
        max_length=settings.identity.password_max_length,
        blocklist=_read_blocklist(source),
        context_words=frozenset(
            w.strip().lower() for w in settings.identity.password_context_words if w.strip()
        ),
    )


_POLICY_CACHE: dict[tuple[int, int, str, str], PasswordPolicy] = {}


def _policy(settings: Settings) -> PasswordPolicy:
    # The list is 50,000 entries; parse it once per process, not once per container.
    path = settings.identity.password_blocklist_path
    key = (
        settings.identity.password_min_length,
        settings.identity.password_max_length,
        str(path) if path is not None else "<package>",
        ",".join(sorted(settings.identity.password_context_words)),
    )
    if key not in _POLICY_CACHE:
        _POLICY_CACHE[key] = load_password_policy(settings, path)
    return _POLICY_CACHE[key]


@dataclass
class IdentityService:
    settings: Settings
    policy: PasswordPolicy
    hashing: HashingPool
    keys: SigningKeys
    tokens: AccessTokens
    sessions: SessionStore
    throttle: LoginThrottle
    accounts: AccountService
    login: LoginService
    pseudonym_key: Secret[bytes]

    def email_key(self, email: str) -> str:
        """A keyed hash of an address: a stable pseudonym that a dictionary of addresses cannot
        reverse without the key."""
        return hmac.new(self.pseudonym_key.reveal(), email.encode(), hashlib.sha256).hexdigest()

    rotator: KeyRotator | None = None

    def start(self) -> None:
        self.rotator = self.rotator or KeyRotator(self.keys)
        self.rotator.start()
        self.hashing.start()

    def stop(self) -> None:
        if self.rotator is not None:
            self.rotator.stop()
        self.hashing.stop()


def password_reset_job(
    accounts: AccountService, uow: Callable[[], UnitOfWork]
) -> Callable[[str], None]:
    """The background half of a forgotten-password request (`AccountService.forgot_password`
    queues it; `OutboxWorker.handle` runs it): look the address up and send the link, in a
    transaction of its own."""

    def run(email: str) -> None:
        with uow() as work:
            accounts.send_password_reset(work, email)
            work.commit()

    return run


def _subkey(root: Secret[bytes], purpose: bytes) -> Secret[bytes]:
    return Secret(
        HKDF(algorithm=hashes.SHA256(), length=32, salt=b"rampart-identity", info=purpose).derive(
            root.reveal()
        )
    )


def build_identity(
    settings: Settings,
    clock: Clock,
    db: Database,
    keys: RootKeys,
    *,
    roles: RoleDirectory,
    notifier: Notifier,
    vault: VaultService,
) -> IdentityService:
    cfg = settings.identity
    root = keys.get("jwt", cfg.jwt_signing_key)
    hasher = PasswordHasher(
        memory_kib=cfg.argon2_memory_kib,
        time_cost=cfg.argon2_time_cost,
        parallelism=cfg.argon2_parallelism,
    )
    hashing = HashingPool(
        hasher, concurrency=cfg.hashing_concurrency, queue_max=cfg.hashing_queue_max
    )
    signing = SigningKeys(db, clock, _subkey(root, b"jwt-signing"), cfg)
    tokens = AccessTokens(signing, clock, cfg, cache_entries=cfg.verified_token_cache_entries)
    sessions = SessionStore(db, clock, cfg, roles, tokens)
    throttle = LoginThrottle(clock, cfg)
    pseudonym = _subkey(root, b"email-pseudonym")

    def email_key(email: str) -> str:
        return hmac.new(pseudonym.reveal(), email.encode(), hashlib.sha256).hexdigest()

    emails = SealedEmails(vault)
    addresses = AccountAddresses(emails)
    links = EmailLinks(clock, emails)
    public_url = settings.effective_public_url
    passwords = PasswordChanges(
        clock,
        cfg,
        public_url=public_url,
        notifier=notifier,
        sessions=sessions.ending,
        throttle=throttle,
        email_key=email_key,
        addresses=addresses,
        links=links,
    )
    staff = StaffEnrolment(
        clock,
        cfg,
        public_url=public_url,
        sessions=sessions.ending,
        throttle=throttle,
        email_key=email_key,
        addresses=addresses,
        links=links,
    )
    accounts = AccountService(
        clock,
        cfg,
        public_url=public_url,
        roles=roles,
        notifier=notifier,
        sessions=sessions.ending,
        addresses=addresses,
        links=links,
        passwords=passwords,
        staff=staff,
    )
    login = LoginService(
        clock=clock,
        settings=cfg,
        sessions=sessions,
        tokens=tokens,
        throttle=throttle,
        notifier=notifier,
        email_key=email_key,
        email_of=addresses.email_of,
        by_email=addresses.by_email,
    )
    return IdentityService(
        settings=settings,
        policy=_policy(settings),
        hashing=hashing,
        keys=signing,
        tokens=tokens,
        sessions=sessions,
        throttle=throttle,
        accounts=accounts,
        login=login,
        pseudonym_key=pseudonym,
    )
