"""The multi-step identity use cases, as async functions that routes and pages await.

Each flow hashes or verifies the password in the hashing pool (off the event loop, bounded) and
does its database work in short transactions on a worker thread, committing them itself: it is
the caller of the services, like a route. No transaction stays open while a hash is computed.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from rampart.identity import reauth
from rampart.identity.domain import (
    InvalidCredentialsError,
    LoginThrottledError,
    PasswordChangeNotRequiredError,
    WeakPasswordError,
    normalise_email,
    normalise_password,
)
from rampart.identity.login import LoginOutcome, PasswordCheck
from rampart.identity.sessions import ClientInfo
from rampart.kernel.events import AuditEvent
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork

if TYPE_CHECKING:
    from rampart.access.domain import Principal
    from rampart.bootstrap import Container

T = TypeVar("T")
log = get_logger(__name__)


#: Worker threads the credential flows (sign-in, sign-up, reset) may hold at once for database
#: work. Those flows are what an attacker can flood; without a bound, fifty sign-ins queued on the
#: database write lock would hold the shared thread pool that every other request's reads need.
CREDENTIAL_DB_SLOTS = 2
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(CREDENTIAL_DB_SLOTS)
    return gate


async def _bounded(fn: Callable[..., T], *args: Any) -> T:
    async with _gate():
        return await run_in_threadpool(fn, *args)


def _in_uow(container: Container, work: Callable[[UnitOfWork], T]) -> T:
    with container.uow() as uow:
        result = work(uow)
        uow.commit()
        return result


async def in_transaction(container: Container, work: Callable[[UnitOfWork], T]) -> T:
    """Run `work` in a unit of work on a worker thread and commit it."""
    return await run_in_threadpool(_in_uow, container, work)


async def _credential_transaction(container: Container, work: Callable[[UnitOfWork], T]) -> T:
    return await _bounded(_in_uow, container, work)


async def audit_outside_transaction(container: Container, event: AuditEvent) -> None:
    """An audit entry that belongs to no business change (a refused attempt)."""
    audit_log: Any = getattr(container, "audit_log", None)
    if audit_log is not None and hasattr(audit_log, "append_async"):
        await audit_log.append_async(event)
        return

    def record(uow: UnitOfWork) -> None:
        uow.audit(event)

    await in_transaction(container, record)


async def login_with_password(
    container: Container, raw_email: str, password: str, kind: str, client: ClientInfo
) -> LoginOutcome:
    """The password step of a sign-in, with throttling and enumeration resistance."""
    identity = container.identity
    login = identity.login

    def read() -> PasswordCheck:
        with container.db.read() as session:
            return login.check_throttle(session, raw_email, client.ip)

    try:
        check = await _bounded(read)
    except LoginThrottledError as exc:
        await audit_outside_transaction(
            container,
            AuditEvent(
                action="auth.login.throttled",
                outcome="denied",
                details={"ip": client.ip, "retry_after_seconds": math.ceil(exc.retry_after)},
            ),
        )
        raise
    hasher = identity.hashing.hasher
    stored = check.stored_hash or hasher.dummy_hash()
    matched = await identity.hashing.verify(stored, password)
    if not matched or check.user_id is None:
        await _credential_transaction(
            container, lambda uow: login.record_failure(uow, check, client.ip)
        )
        raise InvalidCredentialsError
    new_hash = await identity.hashing.hash(password) if hasher.needs_rehash(stored) else None
    return await _credential_transaction(
        container,
        lambda uow: login.password_verified(uow, check, kind, client, new_hash=new_hash),
    )


async def replace_operator_password(
    container: Container, raw_email: str, current: str, new: str, client_ip: str | None
) -> None:
    """The first step of an account whose password an operator set: prove that password (as a
    sign-in would, throttled on the same counters) and choose one's own. The account then signs
    in as usual; any other account is refused (it changes its password when signed in, after
    its second factor)."""
    identity = container.identity
    login = identity.login
    ip = client_ip

    def read() -> PasswordCheck:
        with container.db.read() as session:
            return login.check_throttle(session, raw_email, ip)

    check = await _bounded(read)
    stored = check.stored_hash or identity.hashing.hasher.dummy_hash()
    matched = await identity.hashing.verify(stored, current)
    user_id = check.user_id
    if not matched or user_id is None:
        await _credential_transaction(container, lambda uow: login.record_failure(uow, check, ip))
        raise InvalidCredentialsError

    def required() -> bool:
        with container.db.read() as session:
            return identity.accounts.password_change_required(session, user_id)

    if not await _bounded(required):
        raise PasswordChangeNotRequiredError
    normal = identity.policy.check(new, normalise_email(raw_email))
    if normal == normalise_password(current):
        same = "Choose a password of your own, not the one you were given."
        raise WeakPasswordError(same, problems=[same])
    password_hash = await identity.hashing.hash(normal)

    def write(uow: UnitOfWork) -> None:
        login.throttle.clear_account(uow, check.email_key)
        identity.accounts.set_required_password(uow, user_id, password_hash)

    await _credential_transaction(container, write)


async def register(container: Container, raw_email: str, password: str) -> None:
    """Sign up; answers the same whether or not the address had an account."""
    identity = container.identity
    email = normalise_email(raw_email)
    normal = identity.policy.check(password, email)
    password_hash = await identity.hashing.hash(normal)
    try:
        await _credential_transaction(
            container, lambda uow: identity.accounts.register(uow, email, password_hash)
        )
    except IntegrityError:
        # Two sign-ups for one address raced; the loser is told nothing different.
        log.info("concurrent sign-up for one address")


async def reset_password(container: Container, token: str, password: str) -> str:
    identity = container.identity

    def target() -> str:
        with container.db.read() as session:
            return identity.accounts.reset_target(session, token)

    email = await _bounded(target)
    normal = identity.policy.check(password, email)
    password_hash = await identity.hashing.hash(normal)
    return await in_transaction(
        container, lambda uow: identity.accounts.reset_password(uow, token, password_hash)
    )


async def verify_current_password(container: Container, user_id: str, password: str) -> str:
    """The account's email when `password` is its current password; `InvalidCredentialsError`
    otherwise (for changing the password or the email, and closing the account).

    Throttled like a sign-in, on the same counters (the account and the client IP): a stolen
    session or access token must not become an unthrottled oracle for the password itself.
    """
    from rampart.identity.db import UserRow
    from rampart.kernel.context import current_context

    login = container.identity.login
    accounts = container.identity.accounts
    ip = current_context().client_ip

    def read() -> tuple[str, str, str] | None:
        with container.db.read() as session:
            row = session.get(UserRow, user_id)
            email = accounts.email_of(session, row) if row is not None else None
            if row is None or not row.password_hash or email is None:
                return None
            key = login.email_key(email)
            wait = login.throttle.wait(session, key, ip)
            if wait > 0:
                raise LoginThrottledError(retry_after=wait)
            return email, row.password_hash, key

    found = await _bounded(read)
    hashing = container.identity.hashing
    stored = found[1] if found else hashing.hasher.dummy_hash()
    if not await hashing.verify(stored, password) or found is None:
        event = AuditEvent(
            action="auth.reauthentication.failed",
            outcome="failure",
            subject=f"user:{user_id}",
        )
        if found is None:
            await audit_outside_transaction(container, event)
        else:
            key = found[2]

            def record(uow: UnitOfWork) -> None:
                login.throttle.record_failure(uow, key, ip)
                uow.audit(event)

            await _credential_transaction(container, record)
        raise InvalidCredentialsError("The current password is not correct.")
    return found[0]


async def change_password(
    container: Container,
    user_id: str,
    current: str,
    new: str,
    *,
    keep_session_id: str | None,
) -> None:
    identity = container.identity
    email = await verify_current_password(container, user_id, current)
    normal = identity.policy.check(new, email)
    password_hash = await identity.hashing.hash(normal)
    await in_transaction(
        container,
        lambda uow: identity.accounts.change_password(
            uow, user_id, password_hash, keep_session_id=keep_session_id
        ),
    )


async def change_email(container: Container, user_id: str, password: str, new_email: str) -> None:
    identity = container.identity
    email = normalise_email(new_email)
    await verify_current_password(container, user_id, password)
    await in_transaction(
        container, lambda uow: identity.accounts.request_email_change(uow, user_id, email)
    )


async def close_account(container: Container, user_id: str, password: str) -> None:
    await verify_current_password(container, user_id, password)
    await in_transaction(container, lambda uow: container.identity.accounts.close(uow, user_id))


async def require_recent_authentication(container: Container, principal: Principal) -> None:
    """Refuse (401 `step-up-required` or `reauthentication-required`) unless the person
    authenticated within `identity.reauthentication_minutes`: what ending another session, a
    device's sessions or every session takes (`rampart.identity.reauth`)."""
    user_id = principal.user_id or ""

    def check() -> None:
        with container.db.read() as session:
            reauth.require_recent_authentication(
                session,
                principal,
                container.clock.now().timestamp(),
                minutes=container.settings.identity.reauthentication_minutes,
                second_factor=container.mfa.has_mfa(session, user_id),
            )

    await run_in_threadpool(check)
