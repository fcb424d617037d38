"""Permissions, roles and principals: pure values, no I/O.

A permission is a `resource:action` string. A role is a named set of permissions. A principal is
whoever a request acts for, with the permissions its roles (and, for an API key, its scopes) allow.
Deny by default: a permission not granted is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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


def scoped_permissions(owner_permissions: frozenset[str], scopes: frozenset[str]) -> frozenset[str]:
    allowed: set[str] = set()
    for scope in scopes:
        allowed |= SCOPE_PERMISSIONS.get(scope, frozenset())
    return frozenset(p for p in owner_permissions if p in allowed)
