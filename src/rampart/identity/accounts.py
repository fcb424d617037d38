"""Accounts: sign-up, email verification and change, password reset and change, closing.

Passwords arrive here already hashed: hashing is slow and runs off the event loop
(`rampart.identity.passwords.HashingPool`) before the transaction starts. Answers never say
whether an address has an account; the owner of the address learns it by email instead.

Addresses are sealed at rest and looked up by blind index (`rampart.identity.emails`): a row's
address is opened only where it is used, and an address that no longer opens (its owner shredded)
counts as no address at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from rampart.access.domain import Role
from rampart.access.ports import RoleDirectory
from rampart.config import IdentitySettings
from rampart.identity import notices
from rampart.identity.db import DeviceRow, EmailTokenRow, UserRow
from rampart.identity.domain import (
    AccountStatus,
    EmailInUseError,
    InvalidLinkError,
    User,
    new_token,
    token_hash,
)
from rampart.identity.emails import SealedEmails
from rampart.identity.sessions import SessionStore
from rampart.identity.throttle import LoginThrottle
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ConflictError, NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.notifications.ports import Notifier
from rampart.platform.uow import UnitOfWork

PURPOSE_VERIFY = "verify-email"
PURPOSE_CHANGE = "change-email"
PURPOSE_RESET = "reset-password"
#: A staff account's first set-up (password and security key), from a link an operator hands over.
PURPOSE_STAFF_ENROL = "staff-enrol"
#: The background job that answers a forgotten-password request (`OutboxWorker.handle`).
TOPIC_PASSWORD_RESET = "identity.password-reset"  # noqa: S105 - a topic name, not a secret
#: At most this many unexpired reset links per account: asking again does not flood the inbox.
MAX_OPEN_RESETS = 3


USER_TABLE = UserRow.__tablename__
TOKEN_TABLE = EmailTokenRow.__tablename__


class AccountService:
    def __init__(
        self,
        clock: Clock,
        settings: IdentitySettings,
        *,
        public_url: str,
        roles: RoleDirectory,
        notifier: Notifier,
        sessions: SessionStore,
        throttle: LoginThrottle,
        email_key: Callable[[str], str],
        emails: SealedEmails,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._url = public_url
        self._roles = roles
        self._notifier = notifier
        self._sessions = sessions
        self._throttle = throttle
        self._email_key = email_key
        self._emails = emails
        #: Called inside the transaction whenever an account's status changes (locked, unlocked,
        #: closed), so that other domains drop what they cached about the owner (API keys).
        self.status_listeners: list[Callable[[UnitOfWork, str], None]] = []
        #: Called inside the transaction of a password reset by email link, after the password
        #: changed: MFA puts an account whose only second factor is that mailbox on hold.
        self.reset_listeners: list[Callable[[UnitOfWork, str], object]] = []

    def _status_changed(self, uow: UnitOfWork, user_id: str) -> None:
        for listener in self.status_listeners:
            listener(uow, user_id)

    # --- addresses ---------------------------------------------------------------------------
    def email_of(self, session: Session, user: UserRow) -> str | None:
        """The account's address in clear, or None (closed, erased, or no longer readable)."""
        return self._emails.open(
            session, user.email_sealed, table=USER_TABLE, row_id=user.id, user_id=user.id
        )

    def set_email(self, session: Session, user: UserRow, email: str) -> None:
        """Seal `email` (normalised) into `user` with its blind index."""
        address = self._emails.seal(
            session, email, table=USER_TABLE, row_id=user.id, user_id=user.id
        )
        user.email_sealed, user.email_index = address.sealed, address.index

    def _link_email(self, session: Session, row: EmailTokenRow) -> str | None:
        return self._emails.open(
            session, row.email_sealed, table=TOKEN_TABLE, row_id=row.id, user_id=row.user_id
        )

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

    # --- helpers -----------------------------------------------------------------------------
    def _send(self, uow: UnitOfWork, to: str | None, notice: notices.Notice) -> None:
        if to is None:
            return  # no readable address: nobody to tell
        self._notifier.email(uow, to=to, subject=notice.subject, text=notice.text, kind=notice.kind)

    def _link_token(
        self, uow: UnitOfWork, user_id: str, purpose: str, email: str, lifetime: timedelta
    ) -> str:
        now = self._clock.now()
        token = new_token()
        row_id = new_id()
        address = self._emails.seal(
            uow.session, email, table=TOKEN_TABLE, row_id=row_id, user_id=user_id
        )
        uow.session.add(
            EmailTokenRow(
                id=row_id,
                user_id=user_id,
                purpose=purpose,
                token_hash=token_hash(token),
                email_sealed=address.sealed,
                email_index=address.index,
                created_at=now,
                expires_at=now + lifetime,
            )
        )
        return token

    def _send_verification(self, uow: UnitOfWork, user_id: str, email: str, purpose: str) -> None:
        hours = self._settings.email_verification_hours
        token = self._link_token(uow, user_id, purpose, email, timedelta(hours=hours))
        self._send(
            uow, email, notices.verify_email(f"{self._url}/verify-email?token={token}", hours)
        )

    def _take_link(self, uow: UnitOfWork, token: str, purposes: tuple[str, ...]) -> EmailTokenRow:
        """Consume a link token: exactly once, before it expires, for a live account."""
        now = self._clock.now()
        row = uow.session.scalar(
            select(EmailTokenRow).where(EmailTokenRow.token_hash == token_hash(token))
        )
        if row is None or row.purpose not in purposes or row.used_at is not None:
            raise InvalidLinkError
        if utc(row.expires_at) <= now:
            raise InvalidLinkError
        # The conditional update is what makes it single-use under concurrency: of two requests
        # racing with the same link, one changes the row and the other changes nothing.
        taken = uow.session.execute(
            update(EmailTokenRow)
            .where(EmailTokenRow.id == row.id, EmailTokenRow.used_at.is_(None))
            .values(used_at=now)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidLinkError
        user = uow.session.get(UserRow, row.user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise InvalidLinkError
        return row

    def exists(self, session: Session, user_id: str) -> bool:
        """Whether an account with this id was ever created (closed ones included): what an
        operator command checks before acting on an id it was given."""
        return session.scalar(select(UserRow.id).where(UserRow.id == user_id)) is not None

    def get(self, session: Session, user_id: str) -> User:
        row = session.get(UserRow, user_id)
        if row is None or row.status == AccountStatus.CLOSED:
            raise NotFoundError("No such user.")
        return self._user(session, row)

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

    def by_email(self, session: Session, email: str) -> UserRow | None:
        """The account with this (normalised) address, found by its blind index."""
        return session.scalar(
            select(UserRow).where(UserRow.email_index == self._emails.index(session, email))
        )

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
        row = self._take_link(uow, token, (PURPOSE_VERIFY, PURPOSE_CHANGE))
        user = uow.session.get(UserRow, row.user_id)
        assert user is not None
        now = self._clock.now()
        if row.purpose == PURPOSE_CHANGE:
            new = self._link_email(uow.session, row)
            if new is None:
                raise InvalidLinkError
            if self.by_email(uow.session, new) is not None:
                raise InvalidLinkError("That address is now in use by another account.")
            old = self.email_of(uow.session, user)
            self.set_email(uow.session, user, new)
            # Links sent to the old address (resets, other changes) die with it.
            uow.session.execute(
                update(EmailTokenRow)
                .where(
                    EmailTokenRow.user_id == user.id,
                    EmailTokenRow.purpose.in_((PURPOSE_RESET, PURPOSE_CHANGE)),
                    EmailTokenRow.used_at.is_(None),
                )
                .values(used_at=now)
            )
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

    # --- passwords ---------------------------------------------------------------------------
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
        user = self.by_email(uow.session, email)
        if user is None or user.status != AccountStatus.ACTIVE:
            return
        address = self.email_of(uow.session, user)
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
        token = self._link_token(uow, user.id, PURPOSE_RESET, address, timedelta(minutes=minutes))
        self._send(
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
        address = self.email_of(uow.session, user)
        if address is None:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        uow.session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user.id,
                EmailTokenRow.purpose == PURPOSE_RESET,
                EmailTokenRow.used_at.is_(None),
            )
            .values(used_at=now)
        )
        minutes = self._settings.password_reset_minutes
        token = self._link_token(uow, user.id, PURPOSE_RESET, address, timedelta(minutes=minutes))
        self._send(
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
        return self._peek_link(session, token, PURPOSE_RESET)[1]

    def _peek_link(
        self, session: Session, token: str, purpose: str, *, active_only: bool = False
    ) -> tuple[UserRow, str]:
        """The account and address of a usable link of `purpose`, without using it up: unused,
        unexpired, and sent to the address the account still has."""
        row = session.scalar(
            select(EmailTokenRow).where(EmailTokenRow.token_hash == token_hash(token))
        )
        if (
            row is None
            or row.purpose != purpose
            or row.used_at is not None
            or utc(row.expires_at) <= self._clock.now()
        ):
            raise InvalidLinkError
        user = session.get(UserRow, row.user_id)
        if user is None or user.email_index != row.email_index:
            raise InvalidLinkError
        if active_only and user.status != AccountStatus.ACTIVE:
            raise InvalidLinkError
        email = self._link_email(session, row)
        if email is None:
            raise InvalidLinkError
        return user, email

    def reset_password(self, uow: UnitOfWork, token: str, password_hash: str) -> str:
        """Set a new password from a reset link: every session and token of the user ends, a
        sign-in lock is lifted, and the user is told. Returns the user id."""
        row = self._take_link(uow, token, (PURPOSE_RESET,))
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
        uow.session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user.id,
                EmailTokenRow.purpose == PURPOSE_RESET,
                EmailTokenRow.used_at.is_(None),
            )
            .values(used_at=now)
        )
        self._sessions.revoke_all(uow, user.id, reason="password-reset")
        email = self.email_of(uow.session, user)
        if email is not None:
            self._throttle.clear_account(uow, self._email_key(email))
        self._send(uow, email, notices.password_changed("reset"))
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
        self._send(uow, self.email_of(uow.session, user), notices.password_changed("changed"))
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
        self._send(uow, self.email_of(uow.session, user), notices.password_changed("changed"))
        uow.audit(AuditEvent(action="identity.password.changed", subject=f"user:{user.id}"))

    # --- staff enrolment ---------------------------------------------------------------------
    def staff_enrolment_link(self, uow: UnitOfWork, user_id: str, *, issued_by: str) -> str:
        """A single-use link (valid `staff_enrolment_hours`) on which the account's owner sets a
        password and registers a security key; earlier unused links of the account stop working.
        Only the token's hash is stored; the link is shown once, to the operator who hands it
        over."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        uow.session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user.id,
                EmailTokenRow.purpose == PURPOSE_STAFF_ENROL,
                EmailTokenRow.used_at.is_(None),
            )
            .values(used_at=now)
        )
        email = self.email_of(uow.session, user)
        if email is None:
            raise NotFoundError("No such user.")
        hours = self._settings.staff_enrolment_hours
        token = self._link_token(uow, user.id, PURPOSE_STAFF_ENROL, email, timedelta(hours=hours))
        uow.audit(
            AuditEvent(
                action="identity.staff.enrolment_link_issued",
                subject=f"user:{user.id}",
                details={"expires_in_hours": hours, "issued_by": issued_by},
            )
        )
        return f"{self._url}/staff/enrol?token={token}"

    def staff_enrolment_target(self, session: Session, token: str) -> tuple[str, str]:
        """The (user id, email) of a usable enrolment link, without using it up."""
        user, email = self._peek_link(session, token, PURPOSE_STAFF_ENROL, active_only=True)
        return user.id, email

    def complete_staff_enrolment(self, uow: UnitOfWork, token: str, password_hash: str) -> str:
        """Use up an enrolment link and set the account's password (the caller registered the
        security key in the same transaction). Any earlier session ends. Returns the user id."""
        row = self._take_link(uow, token, (PURPOSE_STAFF_ENROL,))
        user = uow.session.get(UserRow, row.user_id)
        if user is None or row.email_index != user.email_index:
            raise InvalidLinkError
        email = self._link_email(uow.session, row)
        if email is None:
            raise InvalidLinkError
        now = self._clock.now()
        user.password_hash = password_hash
        user.password_changed_at = now
        user.updated_at = now
        self._sessions.revoke_all(uow, user.id, reason="staff-enrolled")
        self._throttle.clear_account(uow, self._email_key(email))
        uow.audit(AuditEvent(action="identity.staff.enrolled", subject=f"user:{user.id}"))
        return user.id

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
