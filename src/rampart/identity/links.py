"""Single-use links sent by email: confirm an address, change it, reset a password, enrol staff.

Only a token's hash is stored, with the address the link was sent to (sealed, and its blind
index): a link is good once, before it expires, and only while the account still has that
address, so that whoever reads an old mailbox cannot take the account back with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rampart.identity import notices
from rampart.identity.db import EmailTokenRow, UserRow
from rampart.identity.domain import AccountStatus, InvalidLinkError, new_token, token_hash
from rampart.identity.emails import SealedEmails
from rampart.kernel.clock import Clock, utc
from rampart.kernel.ids import new_id
from rampart.notifications.ports import Notifier
from rampart.platform.uow import UnitOfWork

PURPOSE_VERIFY = "verify-email"
PURPOSE_CHANGE = "change-email"
PURPOSE_RESET = "reset-password"
#: A staff account's first set-up (password and security key), from a link an operator hands over.
PURPOSE_STAFF_ENROL = "staff-enrol"

TOKEN_TABLE = EmailTokenRow.__tablename__


def send_notice(
    notifier: Notifier, uow: UnitOfWork, to: str | None, notice: notices.Notice
) -> None:
    """Email `notice` to `to` in `uow`; with no readable address (None) there is nobody to tell."""
    if to is None:
        return
    notifier.email(uow, to=to, subject=notice.subject, text=notice.text, kind=notice.kind)


class EmailLinks:
    """Issues, checks and uses up the tokens of emailed links."""

    def __init__(self, clock: Clock, emails: SealedEmails) -> None:
        self._clock = clock
        self._emails = emails

    def issue(
        self, uow: UnitOfWork, user_id: str, purpose: str, email: str, lifetime: timedelta
    ) -> str:
        """A new token of `purpose` for a link sent to `email`, valid for `lifetime`."""
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

    def address(self, session: Session, row: EmailTokenRow) -> str | None:
        """The address a link was sent to (None when it no longer opens)."""
        return self._emails.open(
            session, row.email_sealed, table=TOKEN_TABLE, row_id=row.id, user_id=row.user_id
        )

    def take(self, uow: UnitOfWork, token: str, purposes: tuple[str, ...]) -> EmailTokenRow:
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

    def peek(
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
        email = self.address(session, row)
        if email is None:
            raise InvalidLinkError
        return user, email

    def expire_unused(
        self, uow: UnitOfWork, user_id: str, purposes: tuple[str, ...], now: datetime
    ) -> None:
        """Every unused link of `purposes` of the account stops working."""
        uow.session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.user_id == user_id,
                EmailTokenRow.purpose.in_(purposes),
                EmailTokenRow.used_at.is_(None),
            )
            .values(used_at=now)
        )
