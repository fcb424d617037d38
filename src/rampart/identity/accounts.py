"""Accounts: sign-up, email verification and change, closing and locking.

Passwords (reset, change: `rampart.identity.password_changes`) and staff enrolment
(`rampart.identity.staff_enrolment`) are parts of their own; emailed links are
`rampart.identity.links`. Passwords arrive here already hashed: hashing is slow and runs off the
event loop (`rampart.identity.passwords.HashingPool`) before the transaction starts. Answers never
say whether an address has an account; the owner of the address learns it by email instead.

Addresses are sealed at rest and looked up by blind index (`rampart.identity.emails`): a row's
address is opened only where it is used, and an address that no longer opens (its owner shredded)
counts as no address at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rampart.access.domain import Role
from rampart.access.ports import RoleDirectory
from rampart.config import IdentitySettings
from rampart.identity import notices
from rampart.identity.db import DeviceRow, EmailTokenRow, UserRow
from rampart.identity.domain import AccountStatus, EmailInUseError, InvalidLinkError, User
from rampart.identity.emails import AccountAddresses
from rampart.identity.links import (
    PURPOSE_CHANGE,
    PURPOSE_RESET,
    PURPOSE_VERIFY,
    EmailLinks,
    send_notice,
)
from rampart.identity.password_changes import PasswordChanges
from rampart.identity.sessions.ending import SessionEnding
from rampart.identity.staff_enrolment import StaffEnrolment
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.notifications.ports import Notifier
from rampart.platform.uow import UnitOfWork


class AccountService:
    """Accounts: sign-up, addresses, closing and locking; passwords (`passwords`) and staff
    enrolment (`staff`) are parts of their own, also reachable by the account's name."""

    def __init__(
        self,
        clock: Clock,
        settings: IdentitySettings,
        *,
        public_url: str,
        roles: RoleDirectory,
        notifier: Notifier,
        sessions: SessionEnding,
        addresses: AccountAddresses,
        links: EmailLinks,
        passwords: PasswordChanges,
        staff: StaffEnrolment,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._url = public_url
        self._roles = roles
        self._notifier = notifier
        self._sessions = sessions
        self._addresses = addresses
        self._links = links
        self.passwords = passwords
        self.staff = staff
        # The parts' own methods, by the account's name.
        self.email_of = addresses.email_of
        self.set_email = addresses.set_email
        self.by_email = addresses.by_email
        self.forgot_password = passwords.forgot_password
        self.send_password_reset = passwords.send_password_reset
        self.send_password_reset_for_operator = passwords.send_password_reset_for_operator
        self.reset_target = passwords.reset_target
        self.reset_password = passwords.reset_password
        self.password_change_required = passwords.password_change_required
        self.set_required_password = passwords.set_required_password
        self.change_password = passwords.change_password
        self.staff_enrolment_link = staff.staff_enrolment_link
        self.staff_enrolment_target = staff.staff_enrolment_target
        self.complete_staff_enrolment = staff.complete_staff_enrolment
        #: Called inside the transaction whenever an account's status changes (locked, unlocked,
        #: closed), so that other domains drop what they cached about the owner (API keys).
        self.status_listeners: list[Callable[[UnitOfWork, str], None]] = []
        #: Called inside the transaction of a password reset by email link (`PasswordChanges`).
        self.reset_listeners = passwords.reset_listeners

    def _status_changed(self, uow: UnitOfWork, user_id: str) -> None:
        for listener in self.status_listeners:
            listener(uow, user_id)

    def _user(self, session: Session, row: UserRow) -> User:
        email = self.email_of(session, row)
        if email is None:
            # An open account whose address no longer opens: its owner was erased.
            raise NotFoundError("No such user.")
        return User(
            id=row.id,
            email=email,
            email_verified=row.email_verified_at is not None,
            status=row.status,
            created_at=utc(row.created_at),
        )

    def _send(self, uow: UnitOfWork, to: str | None, notice: notices.Notice) -> None:
        send_notice(self._notifier, uow, to, notice)

    def _send_verification(self, uow: UnitOfWork, user_id: str, email: str, purpose: str) -> None:
        hours = self._settings.email_verification_hours
        token = self._links.issue(uow, user_id, purpose, email, timedelta(hours=hours))
        self._send(
            uow, email, notices.verify_email(f"{self._url}/verify-email?token={token}", hours)
        )

    # --- reads -------------------------------------------------------------------------------
    def exists(self, session: Session, user_id: str) -> bool:
        """Whether an account with this id was ever created (closed ones included): what an
        operator command checks before acting on an id it was given."""
        return session.scalar(select(UserRow.id).where(UserRow.id == user_id)) is not None

    def get(self, session: Session, user_id: str) -> User:
        row = session.get(UserRow, user_id)
        if row is None or row.status == AccountStatus.CLOSED:
            raise NotFoundError("No such user.")
        return self._user(session, row)

    def recent(self, session: Session, limit: int) -> list[User]:
        """The newest open accounts, newest first, at most `limit` (the admin console's list:
        addresses are sealed, so there is no search but the exact address)."""
        rows = session.scalars(
            select(UserRow)
            .where(UserRow.status != AccountStatus.CLOSED, UserRow.email_sealed.is_not(None))
            .order_by(UserRow.created_at.desc(), UserRow.id.desc())
            .limit(max(1, min(limit, 200)))
        )
        return [self._user(session, row) for row in rows]

    def is_active(self, session: Session, user_id: str) -> bool:
        """Whether the account may act at all: it exists and is neither locked nor closed.

        Credentials that outlive a sign-in (API keys) ask this on every use, so that closing or
        locking an account stops them at once. Any status but active answers False, including
        ones added later."""
        status = session.scalar(select(UserRow.status).where(UserRow.id == user_id))
        return status == AccountStatus.ACTIVE

    def contact_email(self, session: Session, user_id: str) -> str | None:
        """Where to tell an account about its own security (keys, factors): its confirmed
        address while it is open; None for an unconfirmed address or a closed account."""
        row = session.get(UserRow, user_id)
        if row is None or row.status == AccountStatus.CLOSED or row.email_verified_at is None:
            return None
        return self.email_of(session, row)

    # --- sign-up -----------------------------------------------------------------------------
    def register(self, uow: UnitOfWork, email: str, password_hash: str) -> str | None:
        """Create an account and send the verification link. For an address that has an
        account already, nothing is created and its owner is told by email; the caller answers
        the same in both cases. Returns the new user's id (None when nothing was created)."""
        now = self._clock.now()
        existing = self.by_email(uow.session, email)
        if existing is not None:
            if existing.status == AccountStatus.ACTIVE and existing.email_verified_at is None:
                self._send_verification(uow, existing.id, email, PURPOSE_VERIFY)
            elif existing.status == AccountStatus.ACTIVE:
                self._send(
                    uow,
                    email,
                    notices.already_registered(
                        f"{self._url}/login", f"{self._url}/forgot-password"
                    ),
                )
            uow.audit(
                AuditEvent(
                    action="identity.register.duplicate",
                    outcome="denied",
                    subject=f"user:{existing.id}",
                )
            )
            return None
        user = UserRow(
            id=new_id(),
            password_hash=password_hash,
            status=AccountStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        self.set_email(uow.session, user, email)
        uow.session.add(user)
        uow.session.flush()
        self._roles.assign_role(uow, user.id, Role.TRADER, reason="sign-up")
        self._send_verification(uow, user.id, email, PURPOSE_VERIFY)
        uow.audit(AuditEvent(action="identity.user.registered", subject=f"user:{user.id}"))
        return user.id

    def create_user(
        self,
        uow: UnitOfWork,
        email: str,
        password_hash: str | None,
        *,
        role: str,
        verified: bool,
        created_by: str,
        must_change_password: bool = False,
    ) -> str:
        """An operator's account creation (`rampart users create`). Without a password hash the
        account cannot sign in until its owner sets one (a staff account's enrolment link).
        With `must_change_password`, the operator's password only lets its owner choose their
        own (`set_required_password`): the operator never knows the password in use."""
        now = self._clock.now()
        if self.by_email(uow.session, email) is not None:
            raise EmailInUseError("An account with that email exists.")
        user = UserRow(
            id=new_id(),
            password_hash=password_hash,
            status=AccountStatus.ACTIVE,
            email_verified_at=now if verified else None,
            created_at=now,
            updated_at=now,
            password_changed_at=now if password_hash else None,
            password_change_required=bool(password_hash) and must_change_password,
        )
        self.set_email(uow.session, user, email)
        uow.session.add(user)
        uow.session.flush()
        self._roles.assign_role(
            uow, user.id, role, granted_by=created_by, reason="created by operator"
        )
        if not verified:
            self._send_verification(uow, user.id, email, PURPOSE_VERIFY)
        uow.audit(
            AuditEvent(
                action="identity.user.created",
                subject=f"user:{user.id}",
                details={"role": role, "verified": verified},
                actor=created_by,
            )
        )
        return user.id

    def verify_email(self, uow: UnitOfWork, token: str) -> str:
        """Confirm an address from its link (sign-up or change); returns the user id."""
        row = self._links.take(uow, token, (PURPOSE_VERIFY, PURPOSE_CHANGE))
        user = uow.session.get(UserRow, row.user_id)
        assert user is not None
        now = self._clock.now()
        if row.purpose == PURPOSE_CHANGE:
            new = self._links.address(uow.session, row)
            if new is None:
                raise InvalidLinkError
            if self.by_email(uow.session, new) is not None:
                raise InvalidLinkError("That address is now in use by another account.")
            old = self.email_of(uow.session, user)
            self.set_email(uow.session, user, new)
            # Links sent to the old address (resets, other changes) die with it.
            self._links.expire_unused(uow, user.id, (PURPOSE_RESET, PURPOSE_CHANGE), now)
            self._send(uow, old, notices.email_changed(new))
            uow.audit(AuditEvent(action="identity.email.changed", subject=f"user:{user.id}"))
        elif row.email_index != user.email_index:
            # A sign-up link for an address the account no longer has.
            raise InvalidLinkError
        user.email_verified_at = now
        user.updated_at = now
        uow.audit(AuditEvent(action="identity.email.verified", subject=f"user:{user.id}"))
        # Permissions depend on verification: let every session see the change now.
        self._sessions.forget_user(uow, user.id)
        return user.id

    def resend_verification(self, uow: UnitOfWork, user_id: str) -> None:
        user = uow.session.get(UserRow, user_id)
        if user is None or user.email_verified_at is not None:
            return
        email = self.email_of(uow.session, user)
        if email is not None:
            self._send_verification(uow, user.id, email, PURPOSE_VERIFY)

    def request_email_change(self, uow: UnitOfWork, user_id: str, new_email: str) -> None:
        """Send a confirmation link to the new address and a notice to the current one. The
        address changes only when the link is used. A taken address gets the same answer."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise NotFoundError("No such user.")
        self._send(uow, self.email_of(uow.session, user), notices.email_change_requested(new_email))
        if self.by_email(uow.session, new_email) is None:
            self._send_verification(uow, user.id, new_email, PURPOSE_CHANGE)
        uow.audit(AuditEvent(action="identity.email.change_requested", subject=f"user:{user.id}"))

    # --- closing and locking -----------------------------------------------------------------
    def close(self, uow: UnitOfWork, user_id: str) -> None:
        """Close the account: every credential ends, the password is erased and the address is
        released (it may sign up again later)."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status == AccountStatus.CLOSED:
            raise NotFoundError("No such user.")
        self._send(uow, self.email_of(uow.session, user), notices.account_closed())
        self._end(uow, user, reason="account-closed")
        uow.audit(AuditEvent(action="identity.user.closed", subject=f"user:{user.id}"))
        self._status_changed(uow, user.id)

    def erase(self, uow: UnitOfWork, user_id: str) -> None:
        """The person is being crypto-shredded (`VaultService.on_shredding`): in the shred's
        transaction, every session, refresh token and access token of theirs ends and the
        account is closed, its password and address gone. Nobody is told: the address is what
        is being erased. Idempotent; an id with no account is left alone."""
        user = uow.session.get(UserRow, user_id)
        if user is None:
            return
        self._end(uow, user, reason="erased")
        uow.audit(AuditEvent(action="identity.user.erased", subject=f"user:{user.id}"))
        self._status_changed(uow, user.id)

    def _end(self, uow: UnitOfWork, user: UserRow, *, reason: str) -> None:
        """Close `user`: every credential ends, the password is erased and the address released
        (it may sign up again later)."""
        now = self._clock.now()
        self._sessions.revoke_all(uow, user.id, reason=reason)
        uow.session.execute(
            update(DeviceRow)
            .where(DeviceRow.user_id == user.id, DeviceRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        # Links in flight (reset, change) die with the account; their addresses with them.
        uow.session.execute(delete(EmailTokenRow).where(EmailTokenRow.user_id == user.id))
        user.status = AccountStatus.CLOSED
        user.password_hash = None
        user.email_sealed = None
        user.email_index = None
        user.updated_at = now

    def set_locked(self, uow: UnitOfWork, user_id: str, locked: bool, *, reason: str) -> None:
        """Lock (no sign-in, every session and token dead at once) or unlock an account."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status == AccountStatus.CLOSED:
            raise NotFoundError("No such user.")
        user.status = AccountStatus.LOCKED if locked else AccountStatus.ACTIVE
        user.updated_at = self._clock.now()
        if locked:
            self._sessions.revoke_all(uow, user.id, reason="account-locked")
        uow.audit(
            AuditEvent(
                action="identity.user.locked" if locked else "identity.user.unlocked",
                subject=f"user:{user.id}",
                details={"reason": reason[:200]},
            )
        )
        self._status_changed(uow, user.id)
