"""What MFA needs from outside: the vault (for sealed seeds, phone numbers and keyed hashes of
low-entropy codes) and a notifier (security notices and one-time codes through the outbox)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from rampart.identity.mfa.domain import (
    WEBAUTHN_KEY_MAC_INDEX,
    InvalidFactorError,
    webauthn_key_mac_input,
)
from rampart.kernel.secret import Secret
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.vault import Purpose, SealContext, UnreadableError, VaultService

log = get_logger(__name__)


class MfaSecrets:
    """The vault as MFA uses it: seeds sealed under MFA-secret keys, phone numbers as personal
    data, both under the user's own key (so shredding a user destroys them), and a keyed hash
    (the vault's blind index) for low-entropy codes."""

    _PURPOSE_BY_COLUMN = {
        ("mfa_totp", "seed_sealed"): Purpose.MFA_SECRET,
        ("mfa_otp_channel", "destination_sealed"): Purpose.PERSONAL_DATA,
    }

    def __init__(self, vault: VaultService) -> None:
        self._vault = vault

    def seal(
        self,
        session: Session,
        plaintext: bytes,
        *,
        table: str,
        column: str,
        row_id: str,
        user_id: str,
    ) -> bytes:
        return self._vault.seal(
            session,
            self._PURPOSE_BY_COLUMN[(table, column)],
            plaintext,
            SealContext(table=table, column=column, row_id=row_id),
            user_id=user_id,
        )

    def open(
        self, session: Session, sealed: bytes, *, table: str, column: str, row_id: str, user_id: str
    ) -> bytes:
        try:
            return self._vault.open(
                session,
                self._PURPOSE_BY_COLUMN[(table, column)],
                sealed,
                SealContext(table=table, column=column, row_id=row_id),
                user_id=user_id,
            ).reveal()
        except UnreadableError as exc:
            # A factor whose secret is gone (its owner shredded, the row altered) proves
            # nothing: the same refusal as a wrong code, never a server error.
            log.warning("mfa.secret.unreadable", table=table, error=type(exc).__name__)
            raise InvalidFactorError from None

    def digest(self, session: Session, kind: str, value: str) -> str:
        return self._vault.blind_index(session, kind, value)

    def code_digest(self, session: Session, kind: str, user_id: str, code: str) -> str:
        """The keyed hash of one user's code of `kind` (backup, email, sms): the same code of
        two users, or of two kinds, never hashes alike."""
        return self.digest(session, f"mfa-{kind}", f"{user_id}\x00{code}")

    def credential_mac(
        self, session: Session, user_id: str, credential_id: str, public_key: bytes
    ) -> str:
        """The keyed MAC stored beside a WebAuthn public key. Its key lives wrapped by the KEK,
        outside the reach of whoever can only write the database."""
        return self.digest(
            session,
            WEBAUTHN_KEY_MAC_INDEX,
            webauthn_key_mac_input(user_id, credential_id, public_key),
        )


class Notifier(Protocol):
    """Sends a user a security notice or a one-time code through the outbox (identity's)."""

    def security_notice(
        self, uow: UnitOfWork, user_id: str, event: str, details: dict[str, Any]
    ) -> None: ...

    def one_time_code(
        self,
        uow: UnitOfWork,
        user_id: str,
        channel: str,
        destination: str,
        code: Secret[str],
        purpose: str,
        expires_minutes: int,
    ) -> None: ...
