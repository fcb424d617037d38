"""The texts of the emails identity sends. Plain text only: nothing to render, nothing to inject.

No email carries a secret other than a single-use link, and none says whether an address has an
account to anyone but the owner of that address.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    subject: str
    text: str


def verify_email(link: str, hours: int) -> Notice:
    return Notice(
        "verify-email",
        "Confirm your email address",
        f"Confirm your email address for Rampart by opening this link:\n\n{link}\n\n"
        f"The link works once and expires in {hours} hours. If you did not sign up, ignore it.",
    )


def already_registered(login_link: str, reset_link: str) -> Notice:
    return Notice(
        "already-registered",
        "Someone tried to sign up with your address",
        "Someone (perhaps you) tried to create a Rampart account with this address, which "
        f"already has one.\n\nSign in: {login_link}\nForgot your password? {reset_link}\n\n"
        "If this was not you, you need do nothing.",
    )


def password_reset(link: str, minutes: int) -> Notice:
    return Notice(
        "password-reset",
        "Reset your password",
        f"To choose a new Rampart password, open this link:\n\n{link}\n\n"
        f"It works once and expires in {minutes} minutes. If you did not ask, ignore this email; "
        "your password stays as it is.",
    )


def password_changed(how: str) -> Notice:
    return Notice(
        "password-changed",
        "Your password was changed",
        f"Your Rampart password was {how}. Every other session has been signed out.\n\n"
        "If this was not you, reset your password at once and contact support.",
    )


def new_device(user_agent: str | None, ip: str | None, when: str) -> Notice:
    return Notice(
        "new-device",
        "New sign-in to your account",
        "Your Rampart account was just signed in to from a device we have not seen before.\n\n"
        f"When: {when}\nDevice: {(user_agent or 'unknown')[:200]}\n"
        f"IP address: {ip or 'unknown'}\n\n"
        "If this was you, nothing to do. If not, change your password and sign out the device "
        "from your security page.",
    )


def email_change_requested(new_email: str) -> Notice:
    return Notice(
        "email-change-requested",
        "Your email address is being changed",
        f"A change of your Rampart sign-in address to {new_email} was requested. It takes "
        "effect when the new address is confirmed.\n\nIf this was not you, change your password "
        "now.",
    )


def email_changed(new_email: str) -> Notice:
    return Notice(
        "email-changed",
        "Your email address was changed",
        f"Your Rampart sign-in address is now {new_email}. This address will no longer receive "
        "messages about the account.\n\nIf this was not you, contact support at once.",
    )


def account_closed() -> Notice:
    return Notice(
        "account-closed",
        "Your account was closed",
        "Your Rampart account has been closed and every session signed out.",
    )


def sessions_ended_at_limit(limit: int, ended: list[tuple[str, str]], when: str) -> Notice:
    """`ended`: (device, last active) of each session the new sign-in ended."""
    lines = "\n".join(f"- {device[:200]}, last active {seen}" for device, seen in ended)
    return Notice(
        "session-limit",
        "A new sign-in ended an older session",
        f"Your Rampart account was signed in to at {when}. An account may hold {limit} sessions "
        "at once, so the one(s) used least recently were signed out:\n\n"
        f"{lines}\n\n"
        "If this was you, nothing to do. If not, change your password and review your sessions "
        "on your security page.",
    )


def account_locked(minutes: int, when: str) -> Notice:
    return Notice(
        "account-locked",
        "Sign-in to your account is paused after failed attempts",
        f"At {when}, too many wrong passwords were tried for your Rampart account, so signing in "
        f"is paused for {minutes} minutes. Nobody signed in.\n\n"
        "If this was you, wait or reset your password (which lifts the pause). If not, someone "
        "may be guessing your password: make sure it is long and used nowhere else, and add a "
        "second factor on your security page.",
    )


def second_factor_failures(attempts: int, ip: str | None, when: str) -> Notice:
    return Notice(
        "second-factor-failed",
        "Your password was used, but the second factor failed",
        f"At {when}, someone entered your correct Rampart password and then failed the second "
        f"factor {attempts} times (IP address: {ip or 'unknown'}). That sign-in was stopped.\n\n"
        "If this was not you, your password is known to someone else: change it now, and review "
        "your sessions and devices on your security page.",
    )


def password_reset_by_operator(link: str, minutes: int) -> Notice:
    return Notice(
        "password-reset",
        "Reset your password",
        "Rampart support started a password reset for your account, as you or your organisation "
        f"asked. To choose a new password, open this link:\n\n{link}\n\n"
        f"It works once and expires in {minutes} minutes. Nobody at Rampart sees or sets your "
        "password. If you did not ask for this, ignore the link (your password stays as it is) "
        "and contact support.",
    )
