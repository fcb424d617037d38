"""Passwords of an account: forgotten (a reset link by email), reset, changed by their owner,
replaced when an operator set them, and re-hashed at sign-in.

Passwords arrive here already hashed (`rampart.identity.passwords.HashingPool`). A forgotten-
password request costs the same whether the address has an account or not: the link is sent by a
background job (`send_password_reset`), off the request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rampart.config import IdentitySettings
from rampart.identity import notices
from rampart.identity.db import EmailTokenRow, UserRow
from rampart.identity.domain import AccountStatus, InvalidLinkError
from rampart.identity.emails import AccountAddresses
from rampart.identity.links import PURPOSE_RESET, EmailLinks, send_notice
from rampart.identity.sessions.ending import SessionEnding
from rampart.identity.throttle import LoginThrottle
from rampart.kernel.clock import Clock
from rampart.kernel.errors import ConflictError, NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.notifications.ports import Notifier
from rampart.platform.uow import UnitOfWork

#: The background job that answers a forgotten-password request (`OutboxWorker.handle`).
TOPIC_PASSWORD_RESET = "identity.password-reset"  # noqa: S105 - a topic name, not a secret
#: At most this many unexpired reset links per account: asking again does not flood the inbox.
MAX_OPEN_RESETS = 3


class PasswordChanges:
    """Resetting and changing passwords; every change ends the account's other sessions."""

    def __init__(
        self,
        clock: Clock,
        settings: IdentitySettings,
        *,
        public_url: str,
        notifier: Notifier,
        sessions: SessionEnding,
        throttle: LoginThrottle,
        email_key: Callable[[str], str],
        addresses: AccountAddresses,
        links: EmailLinks,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._url = public_url
        self._notifier = notifier
        self._sessions = sessions
        self._throttle = throttle
        self._email_key = email_key
        self._addresses = addresses
        self._links = links
        #: Called inside the transaction of a password reset by email link, after the password
        #: changed: MFA puts an account whose only second factor is that mailbox on hold.
        self.reset_listeners: list[Callable[[UnitOfWork, str], object]] = []

    def forgot_password(self, uow: UnitOfWork, email: str) -> None:
        """Answer a forgotten-password request: queue it, sealed, for the background.

        The request does this one write for every address, with or without an account, so
        neither its answer nor its cost (statements, rows, time) tells them apart; whether a
        link is sent is decided by `send_password_reset`, off the request."""
        self._notifier.job(uow, topic=TOPIC_PASSWORD_RESET, secret=email)

    def send_password_reset(self, uow: UnitOfWork, email: str) -> None:
        """Email a reset link when the address has a live account; otherwise do nothing (the
        background job of `forgot_password`)."""
        now = self._clock.now()
        user = self._addresses.by_email(uow.session, email)
        if user is None or user.status != AccountStatus.ACTIVE:
            return
        address = self._addresses.email_of(uow.session, user)
        if address is None:
            return
        open_links = uow.session.scalar(
            select(func.count())
            .select_from(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user.id,
                EmailTokenRow.purpose == PURPOSE_RESET,
                EmailTokenRow.used_at.is_(None),
                EmailTokenRow.expires_at > now,
            )
        )
        if (open_links or 0) >= MAX_OPEN_RESETS:
            return
        minutes = self._settings.password_reset_minutes
        token = self._links.issue(uow, user.id, PURPOSE_RESET, address, timedelta(minutes=minutes))
        send_notice(
            self._notifier,
            uow,
            address,
            notices.password_reset(f"{self._url}/reset-password?token={token}", minutes),
        )
        uow.audit(AuditEvent(action="identity.password.reset_requested", subject=f"user:{user.id}"))

    def send_password_reset_for_operator(
        self, uow: UnitOfWork, user_id: str, *, reason: str, actor: str | None = None
    ) -> None:
        """An operator starts a password reset for a user (ASVS 6.4.6): a single-use link goes
        to the address on the account, and only there. The operator never sees the link nor
        sets or learns a password; the user chooses one on the link's page, which ends every
        session as any reset does. Earlier unused reset links stop working, so the newest
        email is the only one that counts. Audited with the operator's `reason`."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status == AccountStatus.CLOSED:
            raise NotFoundError("No such user.")
        if user.status != AccountStatus.ACTIVE:
            # A reset link is refused for a locked account: unlocking is a decision of its own.
            raise ConflictError("The account is locked: unlock it first, then send the reset.")
        address = self._addresses.email_of(uow.session, user)
        if address is None:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        self._links.expire_unused(uow, user.id, (PURPOSE_RESET,), now)
        minutes = self._settings.password_reset_minutes
        token = self._links.issue(uow, user.id, PURPOSE_RESET, address, timedelta(minutes=minutes))
        send_notice(
            self._notifier,
            uow,
            address,
            notices.password_reset_by_operator(
                f"{self._url}/reset-password?token={token}", minutes
            ),
        )
        uow.audit(
            AuditEvent(
                action="identity.password.reset_sent_by_operator",
                subject=f"user:{user.id}",
                details={"reason": reason[:200]},
                actor=actor,
            )
        )

    def reset_target(self, session: Session, token: str) -> str:
        """The address a reset link belongs to (for the password policy), without using it."""
        return self._links.peek(session, token, PURPOSE_RESET)[1]

    def reset_password(self, uow: UnitOfWork, token: str, password_hash: str) -> str:
        """Set a new password from a reset link: every session and token of the user ends, a
        sign-in lock is lifted, and the user is told. Returns the user id."""
        row = self._links.take(uow, token, (PURPOSE_RESET,))
        user = uow.session.get(UserRow, row.user_id)
        assert user is not None
        if row.email_index != user.email_index:
            # Sent to an address the account no longer has: whoever still reads that mailbox
            # (often the very reason for the change) must not take the account back with it.
            raise InvalidLinkError
        now = self._clock.now()
        user.password_hash = password_hash
        user.password_change_required = False
        user.password_changed_at = now
        user.updated_at = now
        # Every other reset link of the account dies with this one.
        self._links.expire_unused(uow, user.id, (PURPOSE_RESET,), now)
        self._sessions.revoke_all(uow, user.id, reason="password-reset")
        email = self._addresses.email_of(uow.session, user)
        if email is not None:
            self._throttle.clear_account(uow, self._email_key(email))
        send_notice(self._notifier, uow, email, notices.password_changed("reset"))
        uow.audit(AuditEvent(action="identity.password.reset", subject=f"user:{user.id}"))
        for listener in self.reset_listeners:
            listener(uow, user.id)
        return user.id

    def password_change_required(self, session: Session, user_id: str) -> bool:
        row = session.get(UserRow, user_id)
        return row is not None and bool(row.password_change_required)

    def set_required_password(self, uow: UnitOfWork, user_id: str, password_hash: str) -> None:
        """Replace an operator-set password with the owner's own (the caller checked the
        operator's one and that a change is required); the account may then sign in."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        user.password_hash = password_hash
        user.password_change_required = False
        user.password_changed_at = now
        user.updated_at = now
        self._sessions.revoke_all(uow, user.id, reason="password-changed")
        send_notice(
            self._notifier,
            uow,
            self._addresses.email_of(uow.session, user),
            notices.password_changed("changed"),
        )
        uow.audit(
            AuditEvent(action="identity.password.operator_set_replaced", subject=f"user:{user.id}")
        )

    def change_password(
        self, uow: UnitOfWork, user_id: str, password_hash: str, *, keep_session_id: str | None
    ) -> None:
        """Set a new password (the caller checked the current one); other sessions end."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        user.password_hash = password_hash
        user.password_changed_at = now
        user.updated_at = now
        self._sessions.revoke_all(
            uow,
            user.id,
            reason="password-changed",
            keep_session_id=keep_session_id,
            not_before=False,
        )
        send_notice(
            self._notifier,
            uow,
            self._addresses.email_of(uow.session, user),
            notices.password_changed("changed"),
        )
        uow.audit(AuditEvent(action="identity.password.changed", subject=f"user:{user.id}"))
