"""Email addresses at rest: sealed by the vault, found by a blind index.

An address is personal data, so it is stored only as a vault ciphertext sealed under the
person's own key (`Purpose.PERSONAL_DATA` with their user id): shredding the person erases it,
in backups too. Lookups (sign-in, sign-up, reset, operators) go through `index`, a keyed HMAC of
the normalised address under the vault's blind-index key, and the unique constraint on that
index is what keeps one account per address. The plain address exists in memory only, at the
moment it is needed (an email about to be queued, a page showing the account its own address).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.identity.db import UserRow
from rampart.platform.logging import get_logger
from rampart.vault import Purpose, SealContext, UnreadableError, VaultService

log = get_logger(__name__)

#: The blind index's name: its HMAC key is derived for this name only.
EMAIL_INDEX = "identity.email"

USER_TABLE = UserRow.__tablename__


@dataclass(frozen=True, slots=True)
class SealedAddress:
    sealed: bytes
    index: str


class SealedEmails:
    """Seal, open and index addresses for one table's `email_sealed` / `email_index` columns."""

    def __init__(self, vault: VaultService) -> None:
        self._vault = vault

    def index(self, session: Session, email: str) -> str:
        """The blind index of an address already normalised (`normalise_email`)."""
        return self._vault.blind_index(session, EMAIL_INDEX, email)

    def seal(
        self, session: Session, email: str, *, table: str, row_id: str, user_id: str
    ) -> SealedAddress:
        context = SealContext(table=table, column="email_sealed", row_id=row_id)
        return SealedAddress(
            sealed=self._vault.seal(
                session, Purpose.PERSONAL_DATA, email, context, user_id=user_id
            ),
            index=self.index(session, email),
        )

    def open(
        self, session: Session, sealed: bytes | None, *, table: str, row_id: str, user_id: str
    ) -> str | None:
        """The address, or None when there is none or it no longer opens (a shredded person,
        an altered row): callers treat both as "no usable address", never as a fault."""
        if sealed is None:
            return None
        context = SealContext(table=table, column="email_sealed", row_id=row_id)
        try:
            return self._vault.open_text(
                session, Purpose.PERSONAL_DATA, sealed, context, user_id=user_id
            ).reveal()
        except UnreadableError as exc:
            log.warning("identity.email.unreadable", table=table, error=type(exc).__name__)
            return None


class AccountAddresses:
    """An account's own address, sealed in its `user` row under the person's key."""

    def __init__(self, emails: SealedEmails) -> None:
        self._emails = emails

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

    def by_email(self, session: Session, email: str) -> UserRow | None:
        """The account with this (normalised) address, found by its blind index."""
        return session.scalar(
            select(UserRow).where(UserRow.email_index == self._emails.index(session, email))
        )
