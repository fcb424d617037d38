"""Signing in, as a state machine (`LoginStep`), and the credentials it ends with.

    PASSWORD --ok, no second factor--> COMPLETE --> session (browser) or tokens (API)
    PASSWORD --ok, factors enrolled--> SECOND_FACTOR (a pending sign-in, 5 minutes)
    SECOND_FACTOR --factor proven (rampart.identity.mfa)--> COMPLETE

Nothing is issued anywhere but `_complete`, and `_complete` is reached from the password step only
when `SecondFactors` names no factor, so a second factor cannot be skipped by calling things in
another order.

Unknown address and wrong password take the same path: the same throttle rows are read and
written, a hash is verified (a dummy one when there is no account), the same audit entry shape is
written and the same error raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rampart.config import IdentitySettings
from rampart.identity import notices
from rampart.identity.db import PendingLoginRow, RefreshTokenRow, SessionRow, UserRow
from rampart.identity.domain import (
    AccountStatus,
    InvalidCredentialsError,
    InvalidEmailError,
    InvalidRefreshTokenError,
    LoginStep,
    LoginThrottledError,
    PasswordChangeRequiredError,
    PendingLoginError,
    new_token,
    next_login_step,
    normalise_email,
    token_hash,
)
from rampart.identity.ports import SecondFactors
from rampart.identity.sessions import KIND_API, KIND_BROWSER, ClientInfo, SessionStore
from rampart.identity.throttle import LoginThrottle
from rampart.identity.tokens import AccessTokens
from rampart.kernel.clock import Clock, utc
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.notifications.ports import Notifier
from rampart.platform.uow import UnitOfWork

#: Wrong second factors allowed on one pending sign-in before it is void.
MAX_FACTOR_FAILURES = 5
#: At this many wrong second factors on one pending sign-in, the owner is told (once per pending
#: sign-in): whoever is trying holds the password, and the owner should change it.
FACTOR_FAILURES_NOTICE = 3


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """What the password step needs, read before hashing (no transaction is held meanwhile)."""

    email: str | None
    email_key: str
    user_id: str | None
    stored_hash: str | None


@dataclass(frozen=True, slots=True)
class IssuedLogin:
    """The outcome of a completed sign-in."""

    user_id: str
    session_id: str
    kind: str
    #: Browser: the cookie value. API: None.
    session_secret: str | None = None
    access_token: str | None = None
    access_expires_at: int | None = None
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A sign-in that owes a second factor: the client shows `factors` and proves one."""

    token: str
    factors: list[str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    step: LoginStep
    issued: IssuedLogin | None = None
    pending: PendingLogin | None = None


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    issued: IssuedLogin | None
    #: The presented token had been used already: its family is revoked; commit, then refuse.
    reused: bool = False
    #: A staff member's session sat idle past the staff timeout: it is ended; commit, then refuse.
    idle: bool = False


@dataclass
class LoginService:
    clock: Clock
    settings: IdentitySettings
    sessions: SessionStore
    tokens: AccessTokens
    throttle: LoginThrottle
    notifier: Notifier
    email_key: Callable[[str], str]
    #: The account's address from its row (`AccountAddresses.email_of`); None when unreadable.
    email_of: Callable[[Session, UserRow], str | None]
    #: The account with a normalised address (`AccountAddresses.by_email`, by blind index).
    by_email: Callable[[Session, str], UserRow | None]
    #: The MFA seam; None (or no factors for a user) means the password completes the sign-in.
    second_factors: list[SecondFactors] = field(default_factory=list)

    # --- the password step -------------------------------------------------------------------
    def check_throttle(self, session: Session, raw_email: str, ip: str | None) -> PasswordCheck:
        """Refuse at once when this account or IP must wait; otherwise what to verify against."""
        try:
            email: str | None = normalise_email(raw_email)
        except InvalidEmailError:
            email = None
        key = self.email_key(email or raw_email.strip().lower()[:254])
        wait = self.throttle.wait(session, key, ip)
        if wait > 0:
            raise LoginThrottledError(retry_after=wait)
        user = self.by_email(session, email) if email else None
        if user is None or user.status != AccountStatus.ACTIVE or not user.password_hash:
            return PasswordCheck(email=email, email_key=key, user_id=None, stored_hash=None)
        return PasswordCheck(
            email=email, email_key=key, user_id=user.id, stored_hash=user.password_hash
        )

    def record_failure(self, uow: UnitOfWork, check: PasswordCheck, ip: str | None) -> None:
        locked = self.throttle.record_failure(uow, check.email_key, ip)
        # The same entry for "no account" and "wrong password", named by a pseudonymous key, so
        # the log itself is no list of which addresses have accounts. The user id is added only
        # where there is one, for the account owner's own security history.
        uow.audit(
            AuditEvent(
                action="auth.login.failed",
                outcome="failure",
                subject=f"user:{check.user_id}" if check.user_id else None,
                details={"account_key": check.email_key[:32], "ip": ip, "locked": locked},
            )
        )
        # Only an account has an owner to tell (ASVS 6.3.5). The email is queued once per lock,
        # at the failure that locks, so "no account" and "wrong password" still cost the same on
        # every other attempt, and the lock itself falls alike on both.
        if locked and check.user_id is not None:
            self._tell_owner(
                uow,
                check.user_id,
                notices.account_locked(
                    self.settings.lock_minutes, self.clock.now().strftime("%Y-%m-%d %H:%M UTC")
                ),
            )

    def _tell_owner(self, uow: UnitOfWork, user_id: str, notice: notices.Notice) -> None:
        """Email the account's owner about its security (nothing when it has no readable
        address). Only ever the address on the account: never the address that was typed."""
        user = uow.session.get(UserRow, user_id)
        address = self.email_of(uow.session, user) if user is not None else None
        if address is not None:
            self.notifier.email(
                uow, to=address, subject=notice.subject, text=notice.text, kind=notice.kind
            )

    def password_verified(
        self,
        uow: UnitOfWork,
        check: PasswordCheck,
        kind: str,
        client: ClientInfo,
        *,
        new_hash: str | None,
    ) -> LoginOutcome:
        """The password matched: clear the account's failures, store a re-hash, and either
        complete the sign-in or open a pending one for the second factor."""
        assert check.user_id is not None
        user = uow.session.get(UserRow, check.user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise PendingLoginError
        if self.email_of(uow.session, user) is None:
            # The owner's data was shredded (or the row altered): the account cannot be used,
            # and that is a failed sign-in like a wrong password, never a server error.
            raise InvalidCredentialsError
        if user.password_change_required:
            # An operator chose this password: it proves the person was handed it, nothing
            # more. No session until they choose their own (nothing here is committed).
            raise PasswordChangeRequiredError(
                "Your password was set by an operator: choose a new one, then sign in."
            )
        self.throttle.clear_account(uow, check.email_key)
        if new_hash is not None and user.password_hash == check.stored_hash:
            user.password_hash = new_hash
            uow.audit(AuditEvent(action="identity.password.rehashed", subject=f"user:{user.id}"))
        factors: list[str] = []
        for provider in self.second_factors:
            factors.extend(provider.required_factors(uow.session, user.id))
        step = next_login_step(LoginStep.PASSWORD, factors_required=bool(factors))
        if step is LoginStep.SECOND_FACTOR:
            return LoginOutcome(step, pending=self._open_pending(uow, user, kind, client, factors))
        return LoginOutcome(step, issued=self._complete(uow, user, kind, client, mfa_at=None))

    def _open_pending(
        self, uow: UnitOfWork, user: UserRow, kind: str, client: ClientInfo, factors: list[str]
    ) -> PendingLogin:
        now = self.clock.now()
        token = new_token()
        expires = now + timedelta(minutes=self.settings.pending_login_minutes)
        uow.session.add(
            PendingLoginRow(
                id=new_id(),
                user_id=user.id,
                token_hash=token_hash(token),
                kind=kind,
                device_key=client.device_key,
                user_agent=client.user_agent,
                ip=client.ip,
                created_at=now,
                expires_at=expires,
                failed_attempts=0,
            )
        )
        uow.audit(
            AuditEvent(
                action="auth.login.second_factor_required",
                subject=f"user:{user.id}",
                details={"factors": sorted(set(factors))},
            )
        )
        return PendingLogin(token=token, factors=sorted(set(factors)), expires_at=expires)

    # --- the second-factor step (called by rampart.identity.mfa) -----------------------------
    def _pending_row(self, session: Session, pending_token: str) -> PendingLoginRow:
        row = session.scalar(
            select(PendingLoginRow).where(PendingLoginRow.token_hash == token_hash(pending_token))
        )
        if (
            row is None
            or row.completed_at is not None
            or utc(row.expires_at) <= self.clock.now()
            or row.failed_attempts >= MAX_FACTOR_FAILURES
        ):
            raise PendingLoginError
        return row

    def pending_user(self, session: Session, pending_token: str) -> str:
        """The user a live pending sign-in belongs to (whose factor the MFA code checks)."""
        return self._pending_row(session, pending_token).user_id

    def record_factor_failure(self, uow: UnitOfWork, pending_token: str) -> None:
        row = self._pending_row(uow.session, pending_token)
        row.failed_attempts += 1
        uow.audit(
            AuditEvent(
                action="auth.login.second_factor_failed",
                outcome="failure",
                subject=f"user:{row.user_id}",
                details={"attempts": row.failed_attempts},
            )
        )
        if row.failed_attempts == FACTOR_FAILURES_NOTICE:
            self._tell_owner(
                uow,
                row.user_id,
                notices.second_factor_failures(
                    row.failed_attempts, row.ip, self.clock.now().strftime("%Y-%m-%d %H:%M UTC")
                ),
            )

    def complete_pending_login(
        self,
        uow: UnitOfWork,
        pending_token: str,
        *,
        factor: str,
        previous_session: str | None = None,
    ) -> IssuedLogin:
        """The second factor was proven: issue the session or tokens (once)."""
        row = self._pending_row(uow.session, pending_token)
        now = self.clock.now()
        taken = uow.session.execute(
            update(PendingLoginRow)
            .where(PendingLoginRow.id == row.id, PendingLoginRow.completed_at.is_(None))
            .values(completed_at=now)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise PendingLoginError
        user = uow.session.get(UserRow, row.user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise PendingLoginError
        next_login_step(LoginStep.SECOND_FACTOR, factors_required=True)
        client = ClientInfo(
            device_key=row.device_key,
            user_agent=row.user_agent,
            ip=row.ip,
            previous_session=previous_session,
        )
        uow.audit(
            AuditEvent(
                action="auth.login.second_factor_passed",
                subject=f"user:{user.id}",
                details={"factor": factor[:32]},
            )
        )
        return self._complete(
            uow, user, row.kind, client, mfa_at=now, webauthn=factor == "webauthn"
        )

    # --- issuing -----------------------------------------------------------------------------
    def _complete(
        self,
        uow: UnitOfWork,
        user: UserRow,
        kind: str,
        client: ClientInfo,
        *,
        mfa_at: datetime | None,
        webauthn: bool = False,
    ) -> IssuedLogin:
        now = self.clock.now()
        device_id, is_new = self.sessions.record_device(uow, user.id, client)
        address = self.email_of(uow.session, user)
        if address is None:
            raise InvalidCredentialsError
        if is_new:
            notice = notices.new_device(
                client.user_agent, client.ip, now.strftime("%Y-%m-%d %H:%M UTC")
            )
            self.notifier.email(
                uow, to=address, subject=notice.subject, text=notice.text, kind=notice.kind
            )
        secret = new_token() if kind == KIND_BROWSER else None
        if kind == KIND_BROWSER and client.previous_session:
            self.sessions.end_replaced(uow, client.previous_session)
        # At the account's cap, the sessions used least recently end and the owner is told.
        ended = self.sessions.make_room(uow, user.id)
        if ended:
            stamp = "%Y-%m-%d %H:%M UTC"
            notice = notices.sessions_ended_at_limit(
                self.sessions.session_limit(uow.session, user.id),
                [(s.user_agent or s.kind, s.last_seen_at.strftime(stamp)) for s in ended],
                now.strftime(stamp),
            )
            self.notifier.email(
                uow, to=address, subject=notice.subject, text=notice.text, kind=notice.kind
            )
        row = self.sessions.create(
            uow,
            user.id,
            kind,
            client,
            device_id,
            mfa_at=mfa_at,
            webauthn_at=mfa_at if webauthn else None,
            secret=secret,
        )
        uow.audit(
            AuditEvent(
                action="auth.login.succeeded",
                subject=f"user:{user.id}",
                details={
                    "session_id": row.id,
                    "kind": kind,
                    "device_id": device_id,
                    "new_device": is_new,
                    "ip": client.ip,
                },
            )
        )
        if kind == KIND_BROWSER:
            return IssuedLogin(user.id, row.id, kind, session_secret=secret)
        refresh, refresh_expires = self._new_refresh_token(uow, row)
        access, access_expires = self.tokens.issue(user.id, row.id)
        return IssuedLogin(
            user.id,
            row.id,
            kind,
            access_token=access,
            access_expires_at=access_expires,
            refresh_token=refresh,
            refresh_expires_at=refresh_expires,
        )

    def _new_refresh_token(self, uow: UnitOfWork, family: SessionRow) -> tuple[str, datetime]:
        now = self.clock.now()
        token = new_token()
        expires = min(
            now + timedelta(hours=self.settings.refresh_token_hours), utc(family.expires_at)
        )
        uow.session.add(
            RefreshTokenRow(
                id=new_id(),
                session_id=family.id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=expires,
            )
        )
        return token, expires

    def refresh(self, uow: UnitOfWork, refresh_token: str) -> RefreshOutcome:
        """Exchange a refresh token for a new pair. A token used before means it was copied:
        the whole family (the session) is revoked and a security event recorded."""
        now = self.clock.now()
        row = uow.session.scalar(
            select(RefreshTokenRow).where(RefreshTokenRow.token_hash == token_hash(refresh_token))
        )
        if row is None:
            raise InvalidRefreshTokenError
        family = uow.session.get(SessionRow, row.session_id)
        if family is None:
            raise InvalidRefreshTokenError
        taken = uow.session.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.id == row.id, RefreshTokenRow.used_at.is_(None))
            .values(used_at=now)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            if family.revoked_at is None:
                self.sessions.revoke(uow, family.user_id, family.id, reason="refresh-token-reuse")
                uow.audit(
                    AuditEvent(
                        action="auth.refresh.reused",
                        outcome="denied",
                        subject=f"user:{family.user_id}",
                        details={"session_id": family.id, "security_event": True},
                    )
                )
                return RefreshOutcome(issued=None, reused=True)
            raise InvalidRefreshTokenError
        user = uow.session.get(UserRow, family.user_id)
        if (
            utc(row.expires_at) <= now
            or family.revoked_at is not None
            or utc(family.expires_at) <= now
            or user is None
            or user.status != AccountStatus.ACTIVE
        ):
            raise InvalidRefreshTokenError
        if now - utc(family.last_seen_at) > timedelta(
            seconds=self.sessions.staff_idle_seconds()
        ) and self.sessions.is_staff(uow.session, user.id):
            # The same 15 minutes as the staff console: a refresh token must not let an
            # unattended staff client (a laptop left open) keep its session alive.
            self.sessions.revoke(uow, user.id, family.id, reason="idle")
            return RefreshOutcome(issued=None, idle=True)
        family.last_seen_at = now
        refresh, refresh_expires = self._new_refresh_token(uow, family)
        access, access_expires = self.tokens.issue(user.id, family.id)
        uow.audit(
            AuditEvent(
                action="auth.refresh.rotated",
                subject=f"user:{user.id}",
                details={"session_id": family.id},
            )
        )
        return RefreshOutcome(
            issued=IssuedLogin(
                user.id,
                family.id,
                KIND_API,
                access_token=access,
                access_expires_at=access_expires,
                refresh_token=refresh,
                refresh_expires_at=refresh_expires,
            )
        )

    def logout(
        self, uow: UnitOfWork, user_id: str, session_id: str | None, *, everywhere: bool
    ) -> None:
        if everywhere or session_id is None:
            self.sessions.revoke_all(uow, user_id, reason="logout-everywhere")
            return
        self.sessions.revoke(uow, user_id, session_id, reason="logout")
        uow.audit(
            AuditEvent(
                action="auth.logout", subject=f"user:{user_id}", details={"session_id": session_id}
            )
        )
