"""What MFA tells users, written to the notifications outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from rampart.kernel.secret import Secret
from rampart.notifications.service import NotificationService
from rampart.platform.uow import UnitOfWork

_FACTOR_NAMES = {
    "totp": "an authenticator app",
    "webauthn": "a security key or passkey",
    "email": "email codes",
    "sms": "text-message codes",
}

_NOTICES: dict[str, tuple[str, str]] = {
    "mfa.factor_added": (
        "A second factor was added to your account",
        "{factor} was added as a second factor on your Rampart account.",
    ),
    "mfa.factor_removed": (
        "A second factor was removed from your account",
        "{factor} was removed from the second factors of your Rampart account.",
    ),
    "mfa.backup_codes_generated": (
        "New backup codes were created",
        "A new set of {count} backup codes was created for your Rampart account. "
        "Every older backup code stopped working.",
    ),
    "mfa.backup_code_used": (
        "A backup code was used to sign in",
        "One of your backup codes was used on your Rampart account. {remaining} remain.",
    ),
    "mfa.reset": (
        "Your second factors were reset by support",
        "At your request, support removed every second factor of your Rampart account after "
        "re-verifying your identity. Orders, withdrawals and new API keys are blocked until "
        "{cooling_until} (UTC). Set up a new second factor now.",
    ),
    "mfa.recovery_hold": (
        "Your account is on a 24-hour hold after a password reset",
        "The password of your Rampart account was reset from a link sent to this address, "
        "which is also the account's only second factor. To protect you if someone else reads "
        "this mailbox, orders, withdrawals and new API keys are blocked until {cooling_until} "
        "(UTC). Add an authenticator app or a security key to avoid this next time.",
    ),
    "mfa.recovery_hold_lifted": (
        "The hold on your account was lifted with a backup code",
        "The 24-hour hold after the password reset of your Rampart account was lifted early "
        "with one of your backup codes. {remaining} backup codes remain.",
    ),
}

_CODE_PURPOSES = {
    "login": "to finish signing in",
    "step-up": "to confirm a sensitive action",
    "enrol": "to confirm this address as a second factor",
}

_TAIL = (
    "\n\nIf this was not you, contact support at once and change your password.\n\nRampart security"
)


class OutboxNotifier:
    """Security notices by email to the account's address; codes by email or SMS."""

    def __init__(
        self,
        notifications: NotificationService,
        email_of: Callable[[Session, str], str | None],
    ) -> None:
        self._notifications = notifications
        self._email_of = email_of

    def security_notice(
        self, uow: UnitOfWork, user_id: str, event: str, details: dict[str, Any]
    ) -> None:
        email = self._email_of(uow.session, user_id)
        if not email:
            return
        subject, template = _NOTICES[event]
        text = template.format(
            factor=_FACTOR_NAMES.get(str(details.get("kind")), "A second factor").capitalize()
            if "{factor}" in template
            else "",
            count=details.get("count", ""),
            remaining=details.get("remaining", ""),
            cooling_until=details.get("cooling_until", ""),
        )
        self._notifications.email(
            uow, to=email, subject=subject, text=text + _TAIL, kind=event.replace("_", "-")
        )

    def one_time_code(
        self,
        uow: UnitOfWork,
        user_id: str,
        channel: str,
        destination: str,
        code: Secret[str],
        purpose: str,
        expires_minutes: int,
    ) -> None:
        why = _CODE_PURPOSES.get(purpose, "to confirm it is you")
        # The code is in the message body only: never in a subject line, which lock screens show.
        if channel == "sms":
            self._notifications.sms(
                uow,
                to=destination,
                text=f"Rampart code {code.reveal()} {why}. Valid {expires_minutes} min. "
                "Never share it; Rampart will never ask for it.",
                kind="mfa-code",
            )
        else:
            self._notifications.email(
                uow,
                to=destination,
                subject="Your Rampart security code",
                text=f"Your code {why} is:\n\n    {code.reveal()}\n\nIt is valid for "
                f"{expires_minutes} minutes and works once. Never share it: Rampart staff will "
                "never ask for it." + _TAIL,
                kind="mfa-code",
            )
