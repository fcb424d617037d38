"""Account recovery: an email-only account's reset by email, the four-eyes support reset, and the
cooling period they start, which blocks orders as well as withdrawals and new API keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rampart.access.domain import Principal
from rampart.bootstrap import Container
from rampart.identity.mfa.domain import CoolingPeriodError, SensitiveAction
from rampart.identity.mfa.recovery import FactorResetFourEyesError, ResetRequestNotFoundError
from rampart.identity.mfa.service import is_in_cooling_period
from rampart.kernel.clock import FrozenClock
from rampart.risk.adapters import IdentityTraderProfiles
from tests.identity.support import link_token
from tests.mfa.support import make_user, outbox
from tests.mfa.test_service import enrol_email, enrol_totp, person


def reset_by_email(container: Container, email: str) -> None:
    """What a mailbox thief does: ask for a reset link, read it, set a password of their own."""
    with container.uow() as uow:
        container.identity.accounts.send_password_reset(uow, email)
        uow.commit()
    token = link_token(container, email, "password-reset")
    with container.uow() as uow:
        container.identity.accounts.reset_password(uow, token, "$argon2id$thief")
        uow.commit()


def test_an_email_only_account_reset_by_email_is_held_for_24_hours(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container, "eve-target@example.com")
    enrol_email(container, user, clock)
    reset_by_email(container, "eve-target@example.com")

    with container.db.read() as session:
        assert is_in_cooling_period(session, user, clock.now())
        # Even with a fresh factor passed (the email code reaches the same mailbox), no money
        # leaves and no credential is minted.
        fresh = person(user, mfa_at=clock.now().timestamp())
        for action in (SensitiveAction.WITHDRAWAL, SensitiveAction.API_KEY_CREATE):
            with pytest.raises(CoolingPeriodError):
                container.mfa.require_step_up(session, fresh, action)
        # And no order: the risk gate's view of the trader carries the hold.
        profile = IdentityTraderProfiles(container.identity.accounts, container.mfa)
        found = profile.trader_profile(session, user)
        assert found is not None
        assert found.recovery_hold
    notice = outbox(container, kind="mfa.recovery-hold")
    assert notice
    assert notice[-1]["to"] == "eve-target@example.com"

    clock.advance(timedelta(hours=24, seconds=1))
    with container.db.read() as session:
        assert not is_in_cooling_period(session, user, clock.now())
        later = person(user, mfa_at=clock.now().timestamp())
        container.mfa.require_step_up(session, later, SensitiveAction.WITHDRAWAL)


def test_an_account_with_an_authenticator_app_is_not_held_after_a_reset(
    container: Container, clock: FrozenClock
) -> None:
    # The mailbox alone does not open it: signing in still needs the app.
    user = make_user(container, "tina@example.com")
    enrol_email(container, user, clock)
    enrol_totp(container, user)
    reset_by_email(container, "tina@example.com")
    with container.db.read() as session:
        assert not is_in_cooling_period(session, user, clock.now())
    assert not outbox(container, kind="mfa.recovery-hold")


def support(user_id: str) -> Principal:
    return Principal(actor=f"user:{user_id}", user_id=user_id, roles=frozenset({"SUPPORT"}))


def test_a_factor_reset_needs_a_second_operator_and_its_cooling_period_blocks_orders(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container, "lost@example.com")
    enrol_totp(container, user)
    first, second = support("support-a"), support("support-b")
    with container.uow() as uow:
        pending = container.mfa.request_support_reset(
            uow,
            first,
            user,
            verification_method="id-document",
            verification_reference="CASE-9",
            reason="Lost the phone with the app",
        )
        uow.commit()
    with container.db.read() as session:
        # Asking removes nothing and holds nothing.
        assert container.mfa.has_mfa(session, user)
        assert not is_in_cooling_period(session, user, clock.now())
    with container.uow() as uow, pytest.raises(FactorResetFourEyesError):
        container.mfa.approve_support_reset(uow, first, pending.id)
    with container.uow() as uow:
        container.mfa.approve_support_reset(uow, second, pending.id)
        uow.commit()
    with container.uow() as uow, pytest.raises(ResetRequestNotFoundError):
        container.mfa.approve_support_reset(uow, support("support-c"), pending.id)
    with container.db.read() as session:
        assert not container.mfa.has_mfa(session, user)
        found = IdentityTraderProfiles(container.identity.accounts, container.mfa).trader_profile(
            session, user
        )
        assert found is not None
        assert found.recovery_hold


def test_an_unapproved_reset_request_lapses_after_a_day(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container, "slow@example.com")
    with container.uow() as uow:
        pending = container.mfa.request_support_reset(
            uow,
            support("support-a"),
            user,
            verification_method="video-call",
            verification_reference="CASE-10",
            reason="Lost everything",
        )
        uow.commit()
    clock.advance(timedelta(hours=24, seconds=1))
    with container.uow() as uow, pytest.raises(ResetRequestNotFoundError):
        container.mfa.approve_support_reset(uow, support("support-b"), pending.id)
