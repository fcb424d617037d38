"""The owner of an email-only account lifts the hold after a password reset by email early, with
a backup code: the one proof the account has that its mailbox does not also hand a thief. A
support reset's cooling period is not theirs to lift."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.identity.mfa.recovery import NoRecoveryHoldError
from rampart.identity.mfa.service import is_in_cooling_period
from rampart.kernel.clock import FrozenClock
from rampart.risk.adapters import IdentityTraderProfiles
from tests.identity.support import bearer
from tests.mfa.support import make_user, outbox
from tests.mfa.test_api import signed_up
from tests.mfa.test_recovery import reset_by_email, support
from tests.mfa.test_service import enrol_email, enrol_totp


def _lift(container: Container, user: str, code: str) -> bool:
    with container.uow() as uow:
        check = container.mfa.lift_recovery_hold(uow, user, code)
        uow.commit()
    return check.ok


def _held(container: Container, user: str) -> bool:
    with container.db.read() as session:
        return is_in_cooling_period(session, user, container.clock.now())


def test_the_owner_lifts_an_email_only_hold_with_a_backup_code(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container, "owner@example.com")
    enrol_email(container, user, clock)
    with container.uow() as uow:
        codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user)]
        uow.commit()
    reset_by_email(container, "owner@example.com")
    assert _held(container, user)

    # A wrong code (what a mailbox thief has) lifts nothing.
    assert not _lift(container, user, "aaaaa-aaaaa")
    assert _held(container, user)

    assert _lift(container, user, codes[0])
    assert not _held(container, user)
    with container.db.read() as session:
        profile = IdentityTraderProfiles(container.identity.accounts, container.mfa)
        found = profile.trader_profile(session, user)
        assert found is not None
        assert not found.recovery_hold
        assert container.mfa.backup_codes_remaining(session, user) == 9
    assert outbox(container, kind="mfa.recovery-hold-lifted")
    # The code is spent, and there is no hold left to lift.
    with container.uow() as uow, pytest.raises(NoRecoveryHoldError):
        container.mfa.lift_recovery_hold(uow, user, codes[0])


def test_a_support_reset_cooling_period_cannot_be_lifted_by_the_user(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container, "lost@example.com")
    enrol_totp(container, user)
    with container.uow() as uow:
        codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user)]
        pending = container.mfa.request_support_reset(
            uow,
            support("support-a"),
            user,
            verification_method="id-document",
            verification_reference="CASE-9",
            reason="Lost the phone with the app",
        )
        uow.commit()
    with container.uow() as uow:
        container.mfa.approve_support_reset(uow, support("support-b"), pending.id)
        uow.commit()
    assert _held(container, user)
    with container.uow() as uow, pytest.raises(NoRecoveryHoldError):
        container.mfa.lift_recovery_hold(uow, user, codes[0])
    assert _held(container, user)


def test_the_api_answers_404_when_no_hold_is_running(
    client: TestClient, container: Container
) -> None:
    token = signed_up(client, container)
    answer = client.post(
        "/v1/mfa/recovery-hold/lift", headers=bearer(token), json={"code": "aaaaa-aaaaa"}
    )
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:rampart:problem:mfa-no-recovery-hold"
