"""Security keys and passkeys (WebAuthn): register, sign in with, rename and remove them.

Each ceremony uses a single-use server challenge (`ChallengeRow`, kind `webauthn.create` or
`webauthn.get`) bound to the user and the purpose; the relying-party checks live in
`rampart.identity.mfa.webauthn_rp`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rampart.identity.mfa import webauthn_rp as rp_mod
from rampart.identity.mfa.db import ChallengeRow, WebAuthnCredentialRow
from rampart.identity.mfa.domain import (
    MAX_AUTHENTICATORS,
    FactorAlreadyEnrolledError,
    FactorKind,
    FactorNotEnrolledError,
    InvalidFactorError,
    TooManyAuthenticatorsError,
    clean_authenticator_name,
    enrol_purpose,
    valid_purpose,
)
from rampart.identity.mfa.factors import FactorCheck, FactorEvents
from rampart.identity.mfa.ports import MfaSecrets
from rampart.identity.mfa.webauthn_rp import RelyingParty
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import is_id, new_id
from rampart.platform.uow import UnitOfWork

#: WebAuthn challenges live a little longer than the browser prompt (120 s).
WEBAUTHN_CHALLENGE_TTL_SECONDS = 180


@dataclass(frozen=True, slots=True)
class Authenticator:
    id: str
    name: str
    device_type: str
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebAuthnCeremony:
    challenge_id: str
    options: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WebAuthnFactor:
    def __init__(
        self,
        clock: Clock,
        relying_party: RelyingParty,
        events: FactorEvents,
        secrets_port: MfaSecrets,
    ) -> None:
        self._clock = clock
        self.relying_party = relying_party
        self._events = events
        self._secrets = secrets_port

    # ---- reads ----
    def authenticators(self, session: Session, user_id: str) -> list[Authenticator]:
        rows = session.scalars(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.user_id == user_id)
            .order_by(WebAuthnCredentialRow.created_at, WebAuthnCredentialRow.id)
            .limit(MAX_AUTHENTICATORS)
        ).all()
        return [
            Authenticator(
                id=r.id,
                name=r.name,
                device_type=r.device_type,
                backed_up=r.backed_up,
                created_at=utc(r.created_at),
                last_used_at=utc(r.last_used_at) if r.last_used_at else None,
            )
            for r in rows
        ]

    # ---- registration ----
    def begin_registration(self, uow: UnitOfWork, user_id: str, user_name: str) -> WebAuthnCeremony:
        session = uow.session
        existing = self._user_credentials(session, user_id)
        if len(existing) >= MAX_AUTHENTICATORS:
            raise TooManyAuthenticatorsError
        challenge_id, challenge = self._new_challenge(
            session, user_id, "webauthn.create", enrol_purpose(FactorKind.WEBAUTHN)
        )
        options = rp_mod.registration_options(
            self.relying_party,
            # The user handle is the pseudonymous user id: no email or name in the credential.
            user_handle=user_id.encode(),
            user_name=user_name,
            challenge=challenge,
            existing=[(r.credential_id, list(r.transports or [])) for r in existing],
        )
        return WebAuthnCeremony(challenge_id=challenge_id, options=options)

    def finish_registration(
        self,
        uow: UnitOfWork,
        user_id: str,
        challenge_id: str,
        credential: dict[str, Any],
        name: str,
    ) -> FactorCheck:
        session = uow.session
        label = clean_authenticator_name(name)
        try:
            challenge = self._take_challenge(
                session,
                user_id,
                "webauthn.create",
                enrol_purpose(FactorKind.WEBAUTHN),
                challenge_id,
            )
            new = rp_mod.verify_registration(self.relying_party, credential, challenge=challenge)
        except InvalidFactorError as exc:
            return FactorCheck(ok=False, kind=FactorKind.WEBAUTHN, error=exc)
        if len(self._user_credentials(session, user_id)) >= MAX_AUTHENTICATORS:
            raise TooManyAuthenticatorsError
        taken = session.scalar(
            select(WebAuthnCredentialRow.id).where(
                WebAuthnCredentialRow.credential_id == new.credential_id
            )
        )
        if taken is not None:
            raise FactorAlreadyEnrolledError("That authenticator is already registered.")
        row = WebAuthnCredentialRow(
            id=new_id(),
            user_id=user_id,
            credential_id=new.credential_id,
            public_key=new.public_key,
            key_mac=self._secrets.credential_mac(
                session, user_id, new.credential_id, new.public_key
            ),
            sign_count=new.sign_count,
            name=label,
            transports=new.transports,
            aaguid=new.aaguid,
            device_type=new.device_type,
            backed_up=new.backed_up,
            user_verified=new.user_verified,
            created_at=self._clock.now(),
        )
        session.add(row)
        session.flush()
        self._events.enrolled(
            uow,
            user_id,
            FactorKind.WEBAUTHN,
            {"authenticator": row.id, "name": label, "device_type": new.device_type},
        )
        return FactorCheck(ok=True, kind=FactorKind.WEBAUTHN, details={"authenticator": row.id})

    # ---- authentication ----
    def begin_authentication(self, uow: UnitOfWork, user_id: str, purpose: str) -> WebAuthnCeremony:
        if not valid_purpose(purpose):
            raise ValidationError("Unknown purpose.")
        session = uow.session
        credentials = self._user_credentials(session, user_id)
        if not credentials:
            raise FactorNotEnrolledError
        challenge_id, challenge = self._new_challenge(session, user_id, "webauthn.get", purpose)
        options = rp_mod.authentication_options(
            self.relying_party,
            challenge=challenge,
            allowed=[(r.credential_id, list(r.transports or [])) for r in credentials],
        )
        return WebAuthnCeremony(challenge_id=challenge_id, options=options)

    def verify_assertion(
        self,
        uow: UnitOfWork,
        user_id: str,
        purpose: str,
        challenge_id: str,
        credential: dict[str, Any],
    ) -> str:
        """The id of the authenticator that signed the challenge; raises `InvalidFactorError`."""
        session = uow.session
        challenge = self._take_challenge(session, user_id, "webauthn.get", purpose, challenge_id)
        credential_id = rp_mod.assertion_credential_id(credential)
        row = session.scalar(
            select(WebAuthnCredentialRow).where(
                WebAuthnCredentialRow.credential_id == credential_id,
                WebAuthnCredentialRow.user_id == user_id,
            )
        )
        if row is None:
            raise InvalidFactorError
        self._check_key_mac(uow, row)
        reported = rp_mod.assertion_sign_count(credential)
        if (reported or row.sign_count) and reported <= row.sign_count:
            # A counter that does not move forward suggests a cloned authenticator: refuse and
            # leave a trace for the security team (the signature is not even looked at).
            uow.audit(
                AuditEvent(
                    action="mfa.webauthn.counter_regression",
                    outcome="denied",
                    subject=f"user:{user_id}",
                    details={
                        "authenticator": row.id,
                        "stored": row.sign_count,
                        "reported": reported,
                    },
                )
            )
            raise InvalidFactorError
        verified = rp_mod.verify_assertion(
            self.relying_party,
            credential,
            challenge=challenge,
            public_key=row.public_key,
            sign_count=row.sign_count,
        )
        advanced = session.execute(
            update(WebAuthnCredentialRow)
            .where(
                WebAuthnCredentialRow.id == row.id,
                WebAuthnCredentialRow.sign_count == row.sign_count,
            )
            .values(
                sign_count=verified.new_sign_count,
                last_used_at=self._clock.now(),
                backed_up=verified.backed_up,
            )
            .execution_options(synchronize_session=False)
        )
        if advanced.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        session.expire(row)
        return row.id

    def _check_key_mac(self, uow: UnitOfWork, row: WebAuthnCredentialRow) -> None:
        """Refuse a stored key the application did not write: the signature would otherwise be
        checked against whatever key a database write put there (ASVS 6.7.1)."""
        expected = self._secrets.credential_mac(
            uow.session, row.user_id, row.credential_id, row.public_key
        )
        if row.key_mac is not None and hmac.compare_digest(row.key_mac, expected):
            return
        uow.audit(
            AuditEvent(
                action="mfa.webauthn.key_tampered",
                outcome="denied",
                subject=f"user:{row.user_id}",
                details={"authenticator": row.id},
            )
        )
        raise InvalidFactorError

    # ---- management ----
    def rename(self, uow: UnitOfWork, user_id: str, authenticator_id: str, name: str) -> None:
        row = self._own_authenticator(uow.session, user_id, authenticator_id)
        row.name = clean_authenticator_name(name)
        uow.session.flush()
        uow.audit(
            AuditEvent(
                action="mfa.webauthn.renamed",
                subject=f"user:{user_id}",
                details={"authenticator": row.id},
            )
        )

    def remove(self, uow: UnitOfWork, user_id: str, authenticator_id: str) -> None:
        row = self._own_authenticator(uow.session, user_id, authenticator_id)
        name = row.name
        uow.session.delete(row)
        uow.session.flush()
        self._events.removed(
            uow, user_id, FactorKind.WEBAUTHN, {"authenticator": authenticator_id, "name": name}
        )

    def _own_authenticator(
        self, session: Session, user_id: str, authenticator_id: str
    ) -> WebAuthnCredentialRow:
        # Not an id: no row can have it (and a NUL byte must not reach PostgreSQL's driver).
        row = (
            session.get(WebAuthnCredentialRow, authenticator_id)
            if is_id(authenticator_id)
            else None
        )
        # Someone else's authenticator is indistinguishable from a missing one.
        if row is None or row.user_id != user_id:
            raise FactorNotEnrolledError
        return row

    # ---- challenges ----
    def _user_credentials(self, session: Session, user_id: str) -> list[WebAuthnCredentialRow]:
        return list(
            session.scalars(
                select(WebAuthnCredentialRow)
                .where(WebAuthnCredentialRow.user_id == user_id)
                .limit(MAX_AUTHENTICATORS)
            )
        )

    def _new_challenge(
        self, session: Session, user_id: str, kind: str, purpose: str
    ) -> tuple[str, bytes]:
        now = self._clock.now()
        challenge = secrets.token_bytes(32)
        row = ChallengeRow(
            id=new_id(),
            user_id=user_id,
            kind=kind,
            purpose=purpose,
            secret=_b64(challenge),
            attempts=0,
            max_attempts=1,
            created_at=now,
            expires_at=now + timedelta(seconds=WEBAUTHN_CHALLENGE_TTL_SECONDS),
        )
        session.add(row)
        session.flush()
        return row.id, challenge

    def _take_challenge(
        self, session: Session, user_id: str, kind: str, purpose: str, challenge_id: str
    ) -> bytes:
        """The challenge's bytes, consumed now: single use, unexpired, this user and purpose."""
        now = self._clock.now()
        row = session.get(ChallengeRow, challenge_id[:36]) if challenge_id else None
        if (
            row is None
            or row.user_id != user_id
            or row.kind != kind
            or row.purpose != purpose
            or row.consumed_at is not None
            or utc(row.expires_at) <= now
        ):
            raise InvalidFactorError
        taken = session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.id == row.id, ChallengeRow.consumed_at.is_(None))
            .values(consumed_at=now, attempts=1)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        return _unb64(row.secret)
