"""API key use cases: create (with step-up), list, rotate, revoke, flag old keys.

Authenticating with a key is `rampart.apikeys.verification`; what owners see of a key is
`rampart.apikeys.views`.

Owners are told by email (through the notifications outbox, in the same transaction) when a key
is flagged as old, revoked by an operator, or revoked because its secret was reported leaked.

Queries are scoped to the owner in code (`WHERE user_id = ...`) and, on PostgreSQL, by row-level
security (`rampart.access.rls`). Another user's key answers 404, exactly like a key that does not
exist.
"""

from __future__ import annotations

import base64
import builtins
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rampart.access.domain import (
    Permission,
    Principal,
    ensure_permission,
    scoped_permissions,
)
from rampart.access.rls import scope_to_system, scope_to_user
from rampart.apikeys.db import ApiKeyRow, sealed_secret_context
from rampart.apikeys.domain import (
    Algorithm,
    ApiKeyNotRotatableError,
    InvalidApiKeyError,
    KeyCannotManageKeysError,
    KeyState,
    TooManyApiKeysError,
    new_secret,
    normalise_cidrs,
    normalise_scopes,
    secret_hash,
    secret_hint,
    secret_is_well_formed,
    validate_label,
)
from rampart.apikeys.signatures import load_ed25519_public_key
from rampart.apikeys.verification import KeyVerification
from rampart.apikeys.views import ApiKeyView, CreatedKey, key_view, row_state
from rampart.config import ApiKeySettings
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import NotFoundError, ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.uow import UnitOfWork
from rampart.vault.domain import Purpose
from rampart.vault.service import VaultService

#: Most keys one listing returns (a user has at most `apikeys.max_keys_per_user` active ones).
MAX_LISTED = 200


def _name(row: ApiKeyRow) -> str:
    """How an email names a key: its label and id, never any part of its secret."""
    label = (row.label or "").replace("\r", " ").replace("\n", " ")[:100]
    return f'"{label}" ({row.id})' if label else f"({row.id})"


class StepUp(Protocol):
    def require_step_up(self, session: Session, principal: Principal, action: Any) -> None: ...


class OwnerEmail(Protocol):
    def __call__(self, session: Session, user_id: str) -> str | None:
        """The address to tell the owner at (None: nobody to tell, e.g. a closed account)."""
        ...


class Notifier(Protocol):
    """Implemented by `rampart.notifications.service.NotificationService`."""

    def email(self, uow: UnitOfWork, *, to: str, subject: str, text: str, kind: str) -> None: ...


class ApiKeyService:
    """The life of API keys: create, list, rotate and revoke them, for owners and operators."""

    def __init__(
        self,
        clock: Clock,
        settings: ApiKeySettings,
        vault: VaultService,
        verification: KeyVerification,
        step_up: StepUp,
        *,
        environment: str,
        notifier: Notifier | None = None,
        owner_email: OwnerEmail | None = None,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._vault = vault
        #: Authentication with these keys; told after every commit that stops or replaces one.
        self.verification = verification
        # The verified-key cache's own methods, by the service's name.
        self.keys_changed = verification.keys_changed
        self.load_key = verification.load_key
        self.cached_key = verification.cached_key
        self.needs_use_recorded = verification.needs_use_recorded
        self._step_up = step_up
        self._environment = environment
        self._notifier = notifier
        self._owner_email = owner_email

    def _view(self, row: ApiKeyRow, now: datetime) -> ApiKeyView:
        return key_view(row, now, self._settings.max_age_days)

    # --- owner's use cases ------------------------------------------------------------------
    def _check_manager(self, session: Session, principal: Principal, *, step_up: bool) -> str:
        if principal.method == "apikey":
            raise KeyCannotManageKeysError
        ensure_permission(principal, Permission.APIKEY_MANAGE)
        if principal.user_id is None:
            raise KeyCannotManageKeysError
        if step_up:
            self._step_up.require_step_up(session, principal, "apikey.create")
        return principal.user_id

    def create(
        self,
        uow: UnitOfWork,
        principal: Principal,
        *,
        algorithm: str,
        scopes: list[str],
        label: str | None = None,
        allowed_cidrs: list[str] | None = None,
        expires_at: datetime | None = None,
        public_key: str | None = None,
        _replacing: ApiKeyRow | None = None,
    ) -> CreatedKey:
        """A new key for the principal's user. Needs `apikey:manage` and a fresh second factor.

        For `hmac-sha256` the secret is generated here and returned once; for `ed25519` the
        caller gives the public key and the server never holds a secret.
        """
        session = uow.session
        user_id = self._check_manager(session, principal, step_up=True)
        scope_to_user(session, user_id)
        now = self._clock.now()
        try:
            algo = Algorithm(algorithm)
        except ValueError:
            raise InvalidApiKeyError("`algorithm` is hmac-sha256 or ed25519.") from None
        chosen = normalise_scopes(scopes)
        for scope in sorted(chosen):
            if not scoped_permissions(principal.permissions, frozenset({scope})):
                raise InvalidApiKeyError(
                    f"Your roles do not allow the `{scope}` scope.", scope=scope
                )
        cidrs = normalise_cidrs(allowed_cidrs or [], limit=self._settings.max_allowed_cidrs)
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            raise InvalidApiKeyError("`expires_at` must be a future time with a timezone.")
        active = session.scalar(
            select(func.count())
            .select_from(ApiKeyRow)
            .where(
                ApiKeyRow.user_id == user_id,
                ApiKeyRow.revoked_at.is_(None),
                (ApiKeyRow.expires_at.is_(None)) | (ApiKeyRow.expires_at > now),
                (ApiKeyRow.grace_until.is_(None)) | (ApiKeyRow.grace_until > now),
            )
        )
        if (active or 0) >= self._settings.max_keys_per_user + (1 if _replacing else 0):
            raise TooManyApiKeysError(
                f"At most {self._settings.max_keys_per_user} active keys; revoke one first."
            )
        key_id = new_id()
        row = ApiKeyRow(
            id=key_id,
            user_id=user_id,
            label=validate_label(label),
            algorithm=algo.value,
            scopes=sorted(chosen),
            allowed_cidrs=cidrs,
            created_at=now,
            expires_at=expires_at,
        )
        secret: Secret[str] | None = None
        if algo is Algorithm.HMAC_SHA256:
            if public_key:
                raise InvalidApiKeyError("An hmac-sha256 key takes no public key.")
            text = new_secret(self._environment)
            secret = Secret(text)
            row.secret_hash = secret_hash(text)
            row.secret_hint = secret_hint(text)
            row.sealed_secret = self._vault.seal(
                uow, Purpose.API_KEY_SECRET, text, sealed_secret_context(key_id), user_id=user_id
            )
        else:
            if not public_key:
                raise InvalidApiKeyError("An ed25519 key needs `public_key`.")
            raw = load_ed25519_public_key(public_key)
            row.public_key = base64.b64encode(raw).decode("ascii")
        session.add(row)
        session.flush()
        uow.audit(
            AuditEvent(
                action="apikey.created" if _replacing is None else "apikey.rotated",
                subject=f"apikey:{key_id}",
                details={
                    "user_id": user_id,
                    "algorithm": algo.value,
                    "scopes": sorted(chosen),
                    "allowed_cidrs": cidrs,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                    "replaces": _replacing.id if _replacing else None,
                },
            )
        )
        return CreatedKey(key=self._view(row, now), secret=secret)

    def _own_row(self, session: Session, user_id: str, key_id: str) -> ApiKeyRow:
        scope_to_user(session, user_id)
        row = session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.user_id == user_id)
        )
        if row is None:
            raise NotFoundError("No such API key.")
        return row

    def list(self, session: Session, principal: Principal) -> list[ApiKeyView]:
        user_id = self._check_manager(session, principal, step_up=False)
        scope_to_user(session, user_id)
        now = self._clock.now()
        rows = session.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.user_id == user_id)
            .order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc())
            .limit(MAX_LISTED)
        ).all()
        return [self._view(r, now) for r in rows]

    def get(self, session: Session, principal: Principal, key_id: str) -> ApiKeyView:
        user_id = self._check_manager(session, principal, step_up=False)
        return self._view(self._own_row(session, user_id, key_id), self._clock.now())

    def revoke(
        self, uow: UnitOfWork, principal: Principal, key_id: str, *, reason: str | None = None
    ) -> ApiKeyView:
        """Stop the key at once (idempotent). No step-up: stopping a key must never be hard."""
        user_id = self._check_manager(uow.session, principal, step_up=False)
        row = self._own_row(uow.session, user_id, key_id)
        return self._revoke_row(uow, row, reason or "revoked by owner")

    def _revoke_row(self, uow: UnitOfWork, row: ApiKeyRow, reason: str) -> ApiKeyView:
        now = self._clock.now()
        if row.revoked_at is None:
            row.revoked_at = now
            row.revoked_reason = reason[:500]
            uow.session.flush()
            uow.after_commit(self.verification.keys_changed)
            uow.audit(
                AuditEvent(
                    action="apikey.revoked",
                    subject=f"apikey:{row.id}",
                    details={"user_id": row.user_id, "reason": reason[:500]},
                )
            )
        return self._view(row, now)

    def rotate(
        self, uow: UnitOfWork, principal: Principal, key_id: str, *, public_key: str | None = None
    ) -> CreatedKey:
        """A replacement key with the same settings; the old one works for the grace period."""
        user_id = self._check_manager(uow.session, principal, step_up=True)
        old = self._own_row(uow.session, user_id, key_id)
        now = self._clock.now()
        if row_state(old, now) is not KeyState.ACTIVE:
            raise ApiKeyNotRotatableError
        created = self.create(
            uow,
            principal,
            algorithm=old.algorithm,
            scopes=list(old.scopes),
            label=old.label,
            allowed_cidrs=list(old.allowed_cidrs),
            expires_at=utc(old.expires_at) if old.expires_at else None,
            public_key=public_key,
            _replacing=old,
        )
        old.grace_until = now + timedelta(hours=self._settings.rotation_grace_hours)
        old.replaced_by = created.key.id
        uow.session.flush()
        uow.after_commit(self.verification.keys_changed)
        return created

    # --- platform use cases -----------------------------------------------------------------
    def revoke_leaked(self, uow: UnitOfWork, secret: str) -> str | None:
        """A secret found in public (a scanner's report): revoke its key; returns its id.

        A malformed secret is refused by its checksum before any lookup.
        """
        if not secret_is_well_formed(secret):
            raise ValidationError("Not a Rampart API key secret (the checksum does not match).")
        scope_to_system(uow.session)
        row = uow.session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.secret_hash == secret_hash(secret))
        )
        if row is None:
            return None
        newly = row.revoked_at is None
        self._revoke_row(uow, row, "secret reported leaked")
        if newly:
            self._tell_owner(
                uow,
                row.user_id,
                "Your API key was revoked: its secret was found in public",
                f"The secret of your API key {_name(row)} was reported as exposed in public "
                "(for example in a code repository), so we revoked the key at once. Requests "
                "signed with it are refused.\n\nCreate a new key, and remove the old secret "
                "from wherever it was published.",
                kind="apikey-leaked",
            )
        return row.id

    # --- operators (`rampart apikeys`) ------------------------------------------------------
    def list_for_user(self, session: Session, user_id: str) -> builtins.list[ApiKeyView]:
        """Every key of `user_id`, newest first, never a secret (for operators)."""
        scope_to_user(session, user_id)
        now = self._clock.now()
        rows = session.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.user_id == user_id)
            .order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc())
            .limit(MAX_LISTED)
        ).all()
        return [self._view(r, now) for r in rows]

    def revoke_by_operator(self, uow: UnitOfWork, key_id: str, *, reason: str) -> ApiKeyView:
        """Stop any user's key at once (support, incident response); the owner is told."""
        scope_to_system(uow.session)
        row = uow.session.get(ApiKeyRow, key_id)
        if row is None:
            raise NotFoundError("No such API key.")
        newly = row.revoked_at is None
        view = self._revoke_row(uow, row, f"revoked by operator: {reason}")
        if newly:
            self._tell_owner(
                uow,
                row.user_id,
                "Your API key was revoked",
                f"Your API key {_name(row)} was revoked by Rampart support. Requests signed "
                "with it are refused. If you did not expect this, contact support.",
                kind="apikey-revoked",
            )
        return view

    def revoke_all_of_user(self, uow: UnitOfWork, user_id: str, *, reason: str) -> int:
        """Stop every key of `user_id` at once (their data is being erased); returns how many."""
        scope_to_system(uow.session)
        rows = uow.session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at.is_(None))
        ).all()
        for row in rows:
            self._revoke_row(uow, row, reason)
        return len(rows)

    def _tell_owner(
        self, uow: UnitOfWork, user_id: str, subject: str, text: str, *, kind: str
    ) -> None:
        if self._notifier is None or self._owner_email is None:
            return
        address = self._owner_email(uow.session, user_id)
        if address:
            self._notifier.email(uow, to=address, subject=subject, text=text, kind=kind)

    def flag_old_keys(self, uow: UnitOfWork, *, limit: int = 1000) -> int:
        """Flag active keys older than `max_age_days` and email each owner to rotate (once).

        Safe to run from several processes at once: a key is flagged by a conditional update,
        and only the run whose update took it tells the owner.
        """
        scope_to_system(uow.session)
        now = self._clock.now()
        max_age = self._settings.max_age_days
        cutoff = now - timedelta(days=max_age)
        rows = uow.session.scalars(
            select(ApiKeyRow)
            .where(
                ApiKeyRow.created_at <= cutoff,
                ApiKeyRow.flagged_old_at.is_(None),
                ApiKeyRow.revoked_at.is_(None),
                ApiKeyRow.grace_until.is_(None),
            )
            .order_by(ApiKeyRow.created_at)
            .limit(limit)
        ).all()
        flagged = 0
        for row in rows:
            if row_state(row, now) is not KeyState.ACTIVE:
                continue
            taken = uow.session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == row.id, ApiKeyRow.flagged_old_at.is_(None))
                .values(flagged_old_at=now)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process flagged it first, and told the owner
            age_days = (now - utc(row.created_at)).days
            self._tell_owner(
                uow,
                row.user_id,
                "Rotate your API key",
                f"Your API key {_name(row)} is {age_days} days old. Keys older than {max_age} "
                "days should be replaced: rotate it from your API keys (the old key keeps "
                f"working for {self._settings.rotation_grace_hours} hours while your bots "
                "switch), or revoke it if nothing uses it any more.",
                kind="apikey-old",
            )
            uow.audit(
                AuditEvent(
                    action="apikey.flagged-old",
                    subject=f"apikey:{row.id}",
                    details={"user_id": row.user_id, "age_days": age_days},
                )
            )
            flagged += 1
        uow.session.flush()
        return flagged
