"""Permissions, roles and principals: pure values, no I/O.

A permission is a `resource:action` string. A role is a named set of permissions. A principal is
whoever a request acts for, with the permissions its roles (and, for an API key, its scopes) allow.
Deny by default: a permission not granted is refused.

Staff permissions (every permission a trader's role does not give: administration, compliance,
support, risk limits) are honoured only for a person whose sign-in carried a WebAuthn factor (a
phishing-resistant one: a password, a TOTP code or an SMS can be relayed by a fake sign-in page,
a security key's signature is bound to our origin). `person_principal` is the one place that
decides it, whatever gave the permission: a built-in role, a custom role or a time-limited grant.
A staff member signed in without WebAuthn keeps the trader permissions their roles give (their own
account and market data) and is refused the rest with 403 `staff-mfa-required`. API keys never
carry staff permissions: staff act as a person at a keyboard, never as a bot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from rampart.kernel.errors import ForbiddenError, UnauthorizedError, ValidationError


class Permission(StrEnum):
    ORDER_PLACE = "order:place"
    ORDER_CANCEL = "order:cancel"
    ORDER_MODIFY = "order:modify"
    ACCOUNT_VIEW = "account:view"
    ACCOUNT_WITHDRAW = "account:withdraw"
    MARKET_DATA = "market:data"
    APIKEY_MANAGE = "apikey:manage"
    ADMIN_USERS = "admin:users"
    ADMIN_CONFIG = "admin:config"
    ADMIN_VIEW_ALL = "admin:view-all"
    COMPLIANCE_AUDIT = "compliance:audit"
    COMPLIANCE_REPORT = "compliance:report"
    COMPLIANCE_HALT = "compliance:halt"
    SUPPORT_VIEW_USERS = "support:view-users"
    RISK_LIMITS = "risk:limits"


class Role(StrEnum):
    TRADER = "TRADER"
    ADMIN = "ADMIN"
    COMPLIANCE = "COMPLIANCE"
    SUPPORT = "SUPPORT"


P = Permission

BUILTIN_ROLES: dict[str, frozenset[Permission]] = {
    Role.TRADER: frozenset(
        {
            P.ORDER_PLACE,
            P.ORDER_CANCEL,
            P.ORDER_MODIFY,
            P.ACCOUNT_VIEW,
            P.ACCOUNT_WITHDRAW,
            P.MARKET_DATA,
            P.APIKEY_MANAGE,
        }
    ),
    Role.ADMIN: frozenset(
        {
            P.ADMIN_USERS,
            P.ADMIN_CONFIG,
            P.ADMIN_VIEW_ALL,
            P.RISK_LIMITS,
            P.COMPLIANCE_HALT,
            P.MARKET_DATA,
            P.ACCOUNT_VIEW,
        }
    ),
    Role.COMPLIANCE: frozenset(
        {P.COMPLIANCE_AUDIT, P.COMPLIANCE_REPORT, P.COMPLIANCE_HALT, P.MARKET_DATA, P.ACCOUNT_VIEW}
    ),
    # Support sees users' data to help them; it can neither trade nor move money.
    Role.SUPPORT: frozenset({P.SUPPORT_VIEW_USERS, P.MARKET_DATA, P.ACCOUNT_VIEW}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for.

    `actor` is the pseudonymous id written to the audit log: `user:<id>` for a person, or
    `apikey:<id>` for a bot acting for `user_id` within `scopes`.
    """

    actor: str
    user_id: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    #: `session`, `bearer` or `apikey`.
    method: str = "bearer"
    #: Identifier of the credential used (session id, token family, key id): what revocation and
    #: cancel-on-disconnect act on.
    credential_id: str | None = None
    #: For API keys: the scopes the key was created with (`trade`, `data`, `read`).
    scopes: frozenset[str] | None = None
    #: Time (epoch seconds) of the last completed second factor, for step-up decisions.
    mfa_at: float | None = None
    #: Time (epoch seconds) of the last WebAuthn factor this credential was proven with (at
    #: sign-in or at a step-up): what staff permissions and staff step-ups need.
    webauthn_at: float | None = None
    #: Staff permissions the principal's roles give but that are not honoured (the sign-in
    #: carried no WebAuthn factor); a check for one of these is `staff-mfa-required`.
    withheld: frozenset[str] = field(default_factory=frozenset)
    #: When a bearer token was issued (epoch seconds): a later "not before" of its user (sign
    #: out everywhere, password reset) revokes it, also while a stream it opened is running.
    issued_at: int | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def permissions_for(
    roles: frozenset[str] | set[str] | list[str], custom: dict[str, frozenset[str]] | None = None
) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        if role in BUILTIN_ROLES:
            granted |= BUILTIN_ROLES[role]
        elif custom and role in custom:
            granted |= custom[role]
    return frozenset(str(p) for p in granted)


#: What each API-key scope may do; a key's permissions are its owner's permissions within these.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "trade": frozenset({P.ORDER_PLACE, P.ORDER_CANCEL, P.ORDER_MODIFY, P.ACCOUNT_VIEW}),
    "data": frozenset({P.MARKET_DATA}),
    "read": frozenset({P.ACCOUNT_VIEW}),
}


ALL_PERMISSIONS: frozenset[str] = frozenset(str(p) for p in Permission)
#: What a role above TRADER adds: honoured only after a WebAuthn sign-in (`person_principal`).
STAFF_PERMISSIONS: frozenset[str] = ALL_PERMISSIONS - frozenset(
    str(p) for p in BUILTIN_ROLES[Role.TRADER]
)


def scoped_permissions(owner_permissions: frozenset[str], scopes: frozenset[str]) -> frozenset[str]:
    """An API key's permissions: its owner's, within its scopes, and never a staff permission
    (whatever a scope may be given in future: a key acts without a person present)."""
    allowed: set[str] = set()
    for scope in scopes:
        allowed |= SCOPE_PERMISSIONS.get(scope, frozenset())
    return frozenset(p for p in owner_permissions if p in allowed and p not in STAFF_PERMISSIONS)


def is_staff(permissions: frozenset[str]) -> bool:
    """Whether these permissions (a user's roles') make their holder staff."""
    return not STAFF_PERMISSIONS.isdisjoint(permissions)


def person_principal(
    user_id: str,
    *,
    roles: frozenset[str],
    permissions: frozenset[str],
    method: str,
    credential_id: str | None,
    mfa_at: float | None,
    webauthn_at: float | None,
    issued_at: int | None = None,
) -> Principal:
    """The principal of a signed-in person: the one place staff permissions are granted.

    `permissions` are what the person's active roles give; the staff ones among them are honoured
    only when the sign-in carried a WebAuthn factor (`webauthn_at`), and are otherwise withheld.
    """
    withheld = frozenset() if webauthn_at is not None else permissions & STAFF_PERMISSIONS
    return Principal(
        actor=f"user:{user_id}",
        user_id=user_id,
        roles=roles,
        permissions=permissions - withheld,
        method=method,
        credential_id=credential_id,
        mfa_at=mfa_at,
        webauthn_at=webauthn_at,
        withheld=withheld,
        issued_at=issued_at,
    )


#: Custom role names: a letter, then letters, digits, `_`, `-` or `.`; never a built-in's name.
_ROLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{1,63}$")


class PermissionDeniedError(ForbiddenError):
    code = "permission-denied"
    title = "You do not have the permission this action needs"


class UnknownRoleError(ValidationError):
    code = "unknown-role"
    title = "No such role"


class InvalidRoleError(ValidationError):
    code = "invalid-role"
    title = "The role definition is not valid"


class SelfGrantError(ForbiddenError):
    # Separation of duties: nobody widens their own access, however privileged.
    code = "self-grant"
    title = "You cannot change your own roles"


class StepUpRequiredError(UnauthorizedError):
    """The action needs a second factor completed within the last few minutes."""

    code = "step-up-required"
    title = "Confirm with your second factor to continue"


class MfaEnrolmentRequiredError(ForbiddenError):
    code = "mfa-enrolment-required"
    title = "Set up a second factor first"


class StaffMfaRequiredError(ForbiddenError):
    """A staff permission the person holds, refused because the sign-in carried no WebAuthn."""

    code = "staff-mfa-required"
    title = "Staff actions need a sign-in with your security key"


def refusal(principal: Principal, permission: str) -> ForbiddenError:
    """The error for a principal without `permission`: `staff-mfa-required` when their roles give
    it but their sign-in did not carry WebAuthn, `permission-denied` otherwise."""
    if permission in principal.withheld:
        return StaffMfaRequiredError(
            f"`{permission}` is a staff permission: sign in with your security key (or step up "
            "with it); without one enrolled, use the enrolment link an operator gives you."
        )
    return PermissionDeniedError(f"This needs the `{permission}` permission.")


def ensure_permission(principal: Principal, permission: str) -> None:
    """Defence in depth for services: the route checked already; refuse if it did not."""
    if not principal.can(permission):
        raise refusal(principal, permission)


def ensure_staff_verified(principal: Principal) -> None:
    """For checks made on roles rather than permissions: a staff role counts only once the
    sign-in carried WebAuthn (the same rule `person_principal` applies to permissions)."""
    if principal.method == "apikey":
        raise PermissionDeniedError("Staff actions are taken by a signed-in person, not a key.")
    if principal.withheld:
        raise refusal(principal, min(principal.withheld))


def validate_custom_role(name: str, permissions: frozenset[str] | set[str]) -> frozenset[str]:
    """The permissions of a well-formed custom role, or `InvalidRoleError` saying what is wrong."""
    if not _ROLE_NAME.fullmatch(name):
        raise InvalidRoleError(
            "A role name is 2-64 characters: a letter, then letters, digits, '_', '-' or '.'."
        )
    if name.upper() in {r.upper() for r in BUILTIN_ROLES}:
        raise InvalidRoleError(f"`{name}` is a built-in role.")
    unknown = sorted(set(permissions) - ALL_PERMISSIONS)
    if unknown:
        raise InvalidRoleError("Unknown permissions.", unknown=unknown[:20])
    if not permissions:
        raise InvalidRoleError("A role needs at least one permission.")
    return frozenset(permissions)


def grant_is_active(
    expires_at: datetime | None, revoked_at: datetime | None, now: datetime
) -> bool:
    """A grant counts from its creation until revoked or, if time-limited, until it expires."""
    if revoked_at is not None and revoked_at <= now:
        return False
    return expires_at is None or now < expires_at


def check_step_up(
    principal: Principal,
    now_epoch: float,
    *,
    step_up_minutes: int,
    mfa_required: bool,
    mfa_enrolled: bool,
) -> None:
    """The one step-up policy for sensitive actions (creating API keys, withdrawals, ...).

    A second factor completed within `step_up_minutes` always passes. Otherwise: a user who has a
    second factor must use it again (401 `step-up-required`, the client re-prompts); a user without
    one is refused when the platform requires MFA (403 `mfa-enrolment-required`), and passes on a
    deployment that does not, having nothing to step up with.
    """
    if principal.mfa_at is not None:
        age = now_epoch - principal.mfa_at
        # A timestamp from the future is as suspect as a stale one.
        if -5.0 <= age <= step_up_minutes * 60:
            return
    if mfa_enrolled:
        raise StepUpRequiredError(
            f"Complete your second factor again (valid {step_up_minutes} minutes) and retry.",
            step_up_minutes=step_up_minutes,
        )
    if mfa_required:
        raise MfaEnrolmentRequiredError(
            "This action needs a second factor; enrol one in your security settings."
        )


def check_staff_step_up(principal: Principal, now_epoch: float, *, step_up_minutes: int) -> None:
    """The step-up policy for sensitive staff actions (halts, limits, roles, unlocks, resets, key
    rotation): a WebAuthn factor proven within `step_up_minutes`, or 401 `step-up-required` (with
    `factor: webauthn`, so the client prompts for the security key, not a code)."""
    if principal.method == "apikey" or principal.user_id is None:
        raise PermissionDeniedError("Staff actions are taken by a signed-in person, not a key.")
    if principal.webauthn_at is not None:
        age = now_epoch - principal.webauthn_at
        if -5.0 <= age <= step_up_minutes * 60:
            return
    raise StepUpRequiredError(
        f"Confirm with your security key (valid {step_up_minutes} minutes) and retry.",
        step_up_minutes=step_up_minutes,
        factor="webauthn",
    )
