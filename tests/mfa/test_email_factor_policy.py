"""Email codes are no second factor in production (ASVS 6.3.6): whoever reads the mailbox can
already reset the password, so a code sent there proves nothing more. The setting
`mfa.email_factor_enabled` is off by default in production, which refuses to serve with it on;
the dev profile (and the demo) keeps email codes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.identity.mfa.domain import (
    EmailFactorDisabledError,
    FactorKind,
    FactorNotEnrolledError,
)
from rampart.identity.mfa.service import FactorResponse
from rampart.kernel.clock import FrozenClock
from rampart.platform.preflight import serving_problems
from tests.identity.support import bearer
from tests.mfa.support import last_code, make_user
from tests.mfa.test_api import signed_up

DISABLED = "urn:rampart:problem:mfa-email-factor-disabled"


def _email_codes(settings: Settings, enabled: bool) -> Settings:
    mfa = settings.mfa.model_copy(update={"email_factor_enabled": enabled})
    return settings.model_copy(update={"mfa": mfa})


@pytest.fixture
def email_off(settings: Settings, clock: FrozenClock) -> Iterator[Container]:
    """The same database and mailbox, served with email codes switched off."""
    container = bootstrap(_email_codes(settings, False), clock=clock)
    try:
        yield container
    finally:
        container.close()


def test_email_codes_are_off_by_default_in_production_and_on_in_dev() -> None:
    assert Settings(profile="production").email_factor_allowed is False
    assert Settings(profile="dev").email_factor_allowed is True
    assert (
        Settings(profile="dev", mfa={"email_factor_enabled": False}).email_factor_allowed is False
    )


def test_production_refuses_to_serve_with_email_codes_switched_on() -> None:
    switched_on = Settings(profile="production", mfa={"email_factor_enabled": True})
    assert any("RAMPART_MFA__EMAIL_FACTOR_ENABLED" in p for p in serving_problems(switched_on))
    by_default = Settings(profile="production")
    assert not any("EMAIL_FACTOR" in p for p in serving_problems(by_default))


def test_with_email_codes_off_they_cannot_be_enrolled(email_off: Container) -> None:
    user = make_user(email_off)
    with email_off.uow() as uow, pytest.raises(EmailFactorDisabledError):
        email_off.mfa.enrol_email(uow, user)


def test_an_email_factor_enrolled_earlier_stops_counting_when_switched_off(
    container: Container, email_off: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    with container.uow() as uow:
        container.mfa.enrol_email(uow, user)
        uow.commit()
    with container.uow() as uow:
        assert container.mfa.confirm_channel(uow, user, FactorKind.EMAIL, last_code(container)).ok
        uow.commit()
    with container.db.read() as session:
        assert container.mfa.required_factors(session, user) == ["email"]

    with email_off.db.read() as session:
        # No factor left: the sign-in needs the password alone, and the policy that every
        # person enrols a second factor then asks for a real one.
        assert email_off.mfa.required_factors(session, user) == []
        assert not email_off.mfa.has_mfa(session, user)
        assert not email_off.mfa.summary(session, user).email
    with email_off.uow() as uow, pytest.raises(FactorNotEnrolledError):
        email_off.mfa.send_code(uow, user, FactorKind.EMAIL, "login:abc")
    # A code sent while email codes were on proves nothing once they are off.
    clock.advance(31)
    with container.uow() as uow:
        container.mfa.send_code(uow, user, FactorKind.EMAIL, "login:abc")
        uow.commit()
    code = last_code(container)
    with email_off.uow() as uow:
        check = email_off.mfa.verify(uow, user, "login:abc", FactorResponse(FactorKind.EMAIL, code))
        uow.commit()
    assert not check.ok


def test_the_api_refuses_email_enrolment_when_switched_off(
    container: Container, email_off: Container, clock: FrozenClock
) -> None:
    from rampart.web.app import create_app

    with TestClient(create_app(email_off), base_url="https://testserver") as client:
        token = signed_up(client, email_off)
        refused = client.post("/v1/mfa/email", headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json()["type"] == DISABLED
