"""Building the MFA service from settings: the one function bootstrap calls."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from rampart.config import Settings
from rampart.identity.mfa.notify import OutboxNotifier
from rampart.identity.mfa.service import MfaSecrets, MfaService
from rampart.identity.mfa.webauthn_rp import RelyingParty
from rampart.kernel.clock import Clock
from rampart.notifications.service import NotificationService
from rampart.vault import VaultService

#: An account's confirmed address (`AccountService.contact_email`): codes and notices never go
#: to an unproven one, nor to one that no longer opens.
EmailOf = Callable[[Session, str], str | None]


def relying_party(settings: Settings) -> RelyingParty:
    return RelyingParty.from_settings(
        rp_id=settings.mfa.webauthn_rp_id,
        rp_name=settings.mfa.webauthn_rp_name,
        origin=settings.mfa.webauthn_origin,
        public_url=settings.effective_public_url,
    )


def build_mfa(
    settings: Settings,
    clock: Clock,
    vault: VaultService,
    notifications: NotificationService | None = None,
    *,
    email_of: EmailOf,
) -> MfaService:
    notifier = OutboxNotifier(notifications or NotificationService(vault, clock), email_of)
    return MfaService(
        settings.mfa,
        clock,
        MfaSecrets(vault),
        notifier,
        relying_party(settings),
        issuer=settings.mfa.webauthn_rp_name,
        email_of=email_of,
        email_factor=settings.email_factor_allowed,
    )
