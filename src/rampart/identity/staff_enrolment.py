"""Staff enrolment: an operator hands a new staff member a single-use link, on which they set
their password and register a security key (the key is registered by `rampart.identity.mfa`, in
the same transaction)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from rampart.config import IdentitySettings
from rampart.identity.db import UserRow
from rampart.identity.domain import AccountStatus, InvalidLinkError
from rampart.identity.emails import AccountAddresses
from rampart.identity.links import PURPOSE_STAFF_ENROL, EmailLinks
from rampart.identity.sessions.ending import SessionEnding
from rampart.identity.throttle import LoginThrottle
from rampart.kernel.clock import Clock
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


class StaffEnrolment:
    """Issue enrolment links, and complete an enrolment from one."""

    def __init__(
        self,
        clock: Clock,
        settings: IdentitySettings,
        *,
        public_url: str,
        sessions: SessionEnding,
        throttle: LoginThrottle,
        email_key: Callable[[str], str],
        addresses: AccountAddresses,
        links: EmailLinks,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._url = public_url
        self._sessions = sessions
        self._throttle = throttle
        self._email_key = email_key
        self._addresses = addresses
        self._links = links

    def staff_enrolment_link(self, uow: UnitOfWork, user_id: str, *, issued_by: str) -> str:
        """A single-use link (valid `staff_enrolment_hours`) on which the account's owner sets a
        password and registers a security key; earlier unused links of the account stop working.
        Only the token's hash is stored; the link is shown once, to the operator who hands it
        over."""
        user = uow.session.get(UserRow, user_id)
        if user is None or user.status != AccountStatus.ACTIVE:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        self._links.expire_unused(uow, user.id, (PURPOSE_STAFF_ENROL,), now)
        email = self._addresses.email_of(uow.session, user)
        if email is None:
            raise NotFoundError("No such user.")
        hours = self._settings.staff_enrolment_hours
        token = self._links.issue(uow, user.id, PURPOSE_STAFF_ENROL, email, timedelta(hours=hours))
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
        user, email = self._links.peek(session, token, PURPOSE_STAFF_ENROL, active_only=True)
        return user.id, email

    def complete_staff_enrolment(self, uow: UnitOfWork, token: str, password_hash: str) -> str:
        """Use up an enrolment link and set the account's password (the caller registered the
        security key in the same transaction). Any earlier session ends. Returns the user id."""
        row = self._links.take(uow, token, (PURPOSE_STAFF_ENROL,))
        user = uow.session.get(UserRow, row.user_id)
        if user is None or row.email_index != user.email_index:
            raise InvalidLinkError
        email = self._links.address(uow.session, row)
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
