"""MFA use cases against both databases: enrolment, verification, replay, expiry, attempts,
purpose binding, WebAuthn checks, step-up and the support-assisted reset with its cooling period.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from rampart.access.domain import (
    MfaEnrolmentRequiredError,
    PermissionDeniedError,
    Principal,
    StepUpRequiredError,
)
from rampart.bootstrap import Container
from rampart.identity.mfa.db import BackupCodeRow, TotpRow
from rampart.identity.mfa.domain import (
    ChallengeExhaustedError,
    CoolingPeriodError,
    FactorAlreadyEnrolledError,
    FactorKind,
    FactorNotEnrolledError,
    InvalidFactorError,
    ResetVerificationError,
    SensitiveAction,
    login_purpose,
    step_up_purpose,
)
from rampart.identity.mfa.service import FactorResponse, is_in_cooling_period
from rampart.kernel.clock import FrozenClock
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.support import last_code, make_user, outbox, totp_now

ORIGIN = "http://127.0.0.1:8000"


def enrol_totp(container: Container, user_id: str) -> str:
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user_id, "ann@example.com")
        uow.commit()
    with container.uow() as uow:
        check = container.mfa.confirm_totp(uow, user_id, totp_now(container, enrolment.secret))
        uow.commit()
    assert check.ok
    return enrolment.secret


def verify(
    container: Container, user_id: str, response: FactorResponse, purpose: str = "login:abc"
) -> bool:
    with container.uow() as uow:
        check = container.mfa.verify(uow, user_id, purpose, response)
        uow.commit()
    return check.ok


def person(
    user_id: str,
    *,
    mfa_at: float | None = None,
    roles: frozenset[str] = frozenset(),
    method: str = "session",
) -> Principal:
    return Principal(
        actor=f"user:{user_id}",
        user_id=user_id,
        roles=roles,
        method=method,
        mfa_at=mfa_at,
        credential_id="sess-1",
    )


# --- TOTP ------------------------------------------------------------------------------------
def test_totp_enrolment_needs_a_first_valid_code_and_seals_the_seed(
    container: Container,
) -> None:
    user = make_user(container)
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user, "ann@example.com")
        uow.commit()
    assert enrolment.uri.startswith("otpauth://totp/Rampart:ann%40example.com?secret=")
    assert enrolment.qr_svg.startswith("<svg")
    assert "<script" not in enrolment.qr_svg
    with container.db.read() as session:
        stored = session.scalar(select(TotpRow.seed_sealed).where(TotpRow.user_id == user))
    import base64

    seed = base64.b32decode(enrolment.secret + "=" * (-len(enrolment.secret) % 8))
    assert stored is not None
    assert seed not in stored
    assert stored.startswith(b"RV")
    with container.db.read() as session:
        assert not container.mfa.has_mfa(session, user)

    with container.uow() as uow:
        wrong = container.mfa.confirm_totp(uow, user, "000000")
        uow.commit()
    assert not wrong.ok
    with container.uow() as uow:
        assert container.mfa.confirm_totp(uow, user, totp_now(container, enrolment.secret)).ok
        uow.commit()
    with container.db.read() as session:
        assert container.mfa.has_mfa(session, user)
    added = outbox(container, kind="mfa.factor-added")
    assert added
    assert added[-1]["to"] == "ann@example.com"


def test_totp_code_is_accepted_once_then_refused_as_replay(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    seed = enrol_totp(container, user)
    clock.advance(30)
    code = totp_now(container, seed)
    assert verify(container, user, FactorResponse(FactorKind.TOTP, code=code))
    # The same code again, in a new transaction (as another process would): refused.
    assert not verify(container, user, FactorResponse(FactorKind.TOTP, code=code))
    # Still refused 20 seconds later, inside its own validity window.
    clock.advance(20)
    assert not verify(container, user, FactorResponse(FactorKind.TOTP, code=code))
    # The next time-step's code works.
    clock.advance(30)
    assert verify(container, user, FactorResponse(FactorKind.TOTP, code=totp_now(container, seed)))


def test_totp_code_is_accepted_one_step_late_and_not_two_steps_late_or_early(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    seed = enrol_totp(container, user)
    clock.advance(300)
    # A code typed across a step boundary (or a phone clock a little behind): accepted.
    late_phone = totp_now(container, seed, -1)
    assert verify(container, user, FactorResponse(FactorKind.TOTP, code=late_phone))
    clock.advance(120)
    # Two steps old (over 60 s since it first showed), or three: refused.
    for stale in (totp_now(container, seed, -2), totp_now(container, seed, -3)):
        assert not verify(container, user, FactorResponse(FactorKind.TOTP, code=stale))
    # A code from a step that has not begun yet (a clock running ahead): refused.
    early = totp_now(container, seed, +1)
    assert not verify(container, user, FactorResponse(FactorKind.TOTP, code=early))
    assert verify(container, user, FactorResponse(FactorKind.TOTP, code=totp_now(container, seed)))


def test_a_second_app_cannot_silently_replace_the_first(container: Container) -> None:
    user = make_user(container)
    enrol_totp(container, user)
    with container.uow() as uow, pytest.raises(FactorAlreadyEnrolledError):
        container.mfa.begin_totp(uow, user, "ann@example.com")


# --- backup codes ------------------------------------------------------------------------------
def test_backup_codes_are_single_use_hashed_and_counted(container: Container) -> None:
    user = make_user(container)
    with container.uow() as uow:
        codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user)]
        uow.commit()
    assert len(codes) == 10
    with container.db.read() as session:
        digests = session.scalars(select(BackupCodeRow.code_digest)).all()
    assert all(c.replace("-", "") not in d and c not in d for c in codes for d in digests)

    with container.uow() as uow:
        check = container.mfa.verify(
            uow, user, "login:x", FactorResponse(FactorKind.BACKUP_CODE, code=codes[3])
        )
        uow.commit()
    assert check.ok
    assert check.backup_codes_remaining == 9
    assert not verify(container, user, FactorResponse(FactorKind.BACKUP_CODE, code=codes[3]))
    with container.db.read() as session:
        assert container.mfa.backup_codes_remaining(session, user) == 9
    assert outbox(container, kind="mfa.backup-code-used")


def test_regenerating_backup_codes_invalidates_the_old_set(container: Container) -> None:
    user = make_user(container)
    with container.uow() as uow:
        old = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user)]
        uow.commit()
    with container.uow() as uow:
        new = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, user)]
        uow.commit()
    assert not verify(container, user, FactorResponse(FactorKind.BACKUP_CODE, code=old[0]))
    assert verify(container, user, FactorResponse(FactorKind.BACKUP_CODE, code=new[0].upper()))


def test_another_users_backup_code_does_not_work(container: Container) -> None:
    ann, bob = make_user(container), make_user(container, "bob@example.com")
    with container.uow() as uow:
        codes = [c.reveal() for c in container.mfa.regenerate_backup_codes(uow, ann)]
        uow.commit()
    assert not verify(container, bob, FactorResponse(FactorKind.BACKUP_CODE, code=codes[0]))


# --- email and SMS codes ---------------------------------------------------------------------
def enrol_email(container: Container, user: str, clock: FrozenClock) -> None:
    with container.uow() as uow:
        container.mfa.enrol_email(uow, user)
        uow.commit()
    with container.uow() as uow:
        assert container.mfa.confirm_channel(uow, user, FactorKind.EMAIL, last_code(container)).ok
        uow.commit()
    clock.advance(31)


def send(container: Container, user: str, channel: FactorKind, purpose: str) -> str:
    with container.uow() as uow:
        container.mfa.send_code(uow, user, channel, purpose)
        uow.commit()
    return last_code(container)


def test_email_code_is_single_use_and_bound_to_its_purpose(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    enrol_email(container, user, clock)
    purpose = login_purpose("pending-1")
    code = send(container, user, FactorKind.EMAIL, purpose)
    # Issued for one login: useless for another login or for a step-up.
    assert not verify(
        container, user, FactorResponse(FactorKind.EMAIL, code=code), login_purpose("pending-2")
    )
    assert not verify(
        container, user, FactorResponse(FactorKind.EMAIL, code=code), step_up_purpose("sess-1")
    )
    assert verify(container, user, FactorResponse(FactorKind.EMAIL, code=code), purpose)
    assert not verify(container, user, FactorResponse(FactorKind.EMAIL, code=code), purpose)


def test_email_code_expires_after_ten_minutes(container: Container, clock: FrozenClock) -> None:
    user = make_user(container)
    enrol_email(container, user, clock)
    code = send(container, user, FactorKind.EMAIL, "step-up:s")
    clock.advance(timedelta(minutes=10, seconds=1))
    assert not verify(container, user, FactorResponse(FactorKind.EMAIL, code=code), "step-up:s")
    code = send(container, user, FactorKind.EMAIL, "step-up:s")
    clock.advance(timedelta(minutes=9, seconds=50))
    assert verify(container, user, FactorResponse(FactorKind.EMAIL, code=code), "step-up:s")


def test_sms_code_allows_five_attempts_then_is_dead(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    with container.uow() as uow:
        hint = container.mfa.enrol_sms(uow, user, "+44 7700 900123")
        uow.commit()
    assert hint.startswith("+44")
    assert "900123" not in hint
    texts = outbox(container, kind="mfa-code")
    assert texts[-1]["topic"] == "notify.sms"
    assert texts[-1]["to"] == "+447700900123"
    with container.uow() as uow:
        assert container.mfa.confirm_channel(uow, user, FactorKind.SMS, last_code(container)).ok
        uow.commit()
    clock.advance(31)
    code = send(container, user, FactorKind.SMS, "login:p")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert not verify(container, user, FactorResponse(FactorKind.SMS, code=wrong), "login:p")
    with container.uow() as uow:
        check = container.mfa.verify(
            uow, user, "login:p", FactorResponse(FactorKind.SMS, code=code)
        )
        uow.commit()
    # The right code, after five wrong ones, is refused: the attempts were counted and kept.
    assert not check.ok
    assert isinstance(check.error, ChallengeExhaustedError)


def test_codes_cannot_be_requested_in_a_flood(container: Container, clock: FrozenClock) -> None:
    from rampart.identity.mfa.domain import CodeSendThrottledError

    user = make_user(container)
    enrol_email(container, user, clock)
    send(container, user, FactorKind.EMAIL, "login:a")
    with container.uow() as uow, pytest.raises(CodeSendThrottledError):
        container.mfa.send_code(uow, user, FactorKind.EMAIL, "login:a")


def test_codes_are_not_sent_over_a_channel_that_is_not_enrolled(container: Container) -> None:
    user = make_user(container)
    with container.uow() as uow, pytest.raises(FactorNotEnrolledError):
        container.mfa.send_code(uow, user, FactorKind.SMS, "login:a")


# --- WebAuthn --------------------------------------------------------------------------------
def register(
    container: Container, user: str, key: SoftAuthenticator, name: str = "Key", origin: str = ORIGIN
) -> bool:
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_registration(uow, user, "ann@example.com")
        uow.commit()
    assert ceremony.options["authenticatorSelection"]["userVerification"] == "preferred"
    response = key.register(ceremony.options, origin=origin)
    with container.uow() as uow:
        check = container.mfa.finish_webauthn_registration(
            uow, user, ceremony.challenge_id, response, name
        )
        uow.commit()
    return check.ok


def authenticate(
    container: Container,
    user: str,
    key: SoftAuthenticator,
    *,
    purpose: str = "login:w",
    origin: str = ORIGIN,
    rp_id: str | None = None,
    sign_count: int | None = None,
    replay: dict | None = None,
) -> bool:
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_authentication(uow, user, purpose)
        uow.commit()
    response = replay or key.sign(
        ceremony.options, origin=origin, rp_id=rp_id, sign_count=sign_count
    )
    return verify(
        container,
        user,
        FactorResponse(
            FactorKind.WEBAUTHN, challenge_id=ceremony.challenge_id, credential=response
        ),
        purpose,
    )


def test_several_authenticators_register_list_rename_and_remove(container: Container) -> None:
    user = make_user(container)
    first, second = SoftAuthenticator(), SoftAuthenticator()
    assert register(container, user, first, "YubiKey")
    assert register(container, user, second, "Laptop passkey")
    with container.db.read() as session:
        listed = container.mfa.authenticators(session, user)
    assert [a.name for a in listed] == ["YubiKey", "Laptop passkey"]
    with container.uow() as uow:
        container.mfa.rename_authenticator(uow, user, listed[0].id, "Blue key")
        container.mfa.remove_authenticator(uow, user, listed[1].id)
        uow.commit()
    with container.db.read() as session:
        assert [a.name for a in container.mfa.authenticators(session, user)] == ["Blue key"]
    assert authenticate(container, user, first)
    assert not authenticate(container, user, second)
    assert outbox(container, kind="mfa.factor-removed")


def test_the_same_authenticator_cannot_register_twice(container: Container) -> None:
    user = make_user(container)
    key = SoftAuthenticator()
    assert register(container, user, key)
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_registration(uow, user, "ann@example.com")
        uow.commit()
    assert ceremony.options["excludeCredentials"][0]["id"] == key.id


def test_webauthn_refuses_wrong_origin_rp_id_and_reused_challenges(
    container: Container,
) -> None:
    user = make_user(container)
    key = SoftAuthenticator()
    assert not register(container, user, SoftAuthenticator(), origin="https://evil.example")
    assert register(container, user, key)
    assert not authenticate(container, user, key, origin="https://evil.example")
    assert not authenticate(container, user, key, rp_id="evil.example")
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_authentication(uow, user, "login:w")
        uow.commit()
    response = key.sign(ceremony.options, origin=ORIGIN)
    good = FactorResponse(
        FactorKind.WEBAUTHN, challenge_id=ceremony.challenge_id, credential=response
    )
    assert verify(container, user, good, "login:w")
    # The same signed response again: the challenge is spent.
    assert not verify(container, user, good, "login:w")


def test_webauthn_challenge_expires_and_is_bound_to_its_purpose(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    key = SoftAuthenticator()
    assert register(container, user, key)
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_authentication(uow, user, "login:w")
        uow.commit()
    response = key.sign(ceremony.options, origin=ORIGIN)
    answer = FactorResponse(
        FactorKind.WEBAUTHN, challenge_id=ceremony.challenge_id, credential=response
    )
    assert not verify(container, user, answer, "step-up:s")
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_authentication(uow, user, "login:w")
        uow.commit()
    response = key.sign(ceremony.options, origin=ORIGIN)
    clock.advance(181)
    assert not verify(
        container,
        user,
        FactorResponse(
            FactorKind.WEBAUTHN, challenge_id=ceremony.challenge_id, credential=response
        ),
        "login:w",
    )


def test_a_signature_counter_that_goes_back_is_refused_and_audited(
    container: Container,
) -> None:
    user = make_user(container)
    key = SoftAuthenticator()
    assert register(container, user, key)
    assert authenticate(container, user, key, sign_count=5)
    # A clone of the key still at counter 3.
    assert not authenticate(container, user, key, sign_count=3)
    assert not authenticate(container, user, key, sign_count=5)
    assert authenticate(container, user, key, sign_count=6)


def test_another_users_authenticator_is_not_found(container: Container) -> None:
    ann, bob = make_user(container), make_user(container, "bob@example.com")
    assert register(container, ann, SoftAuthenticator())
    with container.db.read() as session:
        key_id = container.mfa.authenticators(session, ann)[0].id
    with container.uow() as uow, pytest.raises(FactorNotEnrolledError):
        container.mfa.remove_authenticator(uow, bob, key_id)


# --- step-up and policy ----------------------------------------------------------------------
def test_step_up_is_required_then_accepted_then_goes_stale(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    enrol_totp(container, user)
    now = clock.now().timestamp()
    with container.db.read() as session:
        with pytest.raises(StepUpRequiredError) as caught:
            container.mfa.require_step_up(session, person(user), SensitiveAction.API_KEY_CREATE)
        assert caught.value.code == "step-up-required"
        container.mfa.require_step_up(
            session, person(user, mfa_at=now), SensitiveAction.API_KEY_CREATE
        )
        clock.advance(timedelta(minutes=5, seconds=1))
        with pytest.raises(StepUpRequiredError):
            container.mfa.require_step_up(
                session, person(user, mfa_at=now), SensitiveAction.WITHDRAWAL
            )


def test_without_any_factor_sensitive_actions_demand_enrolment(container: Container) -> None:
    user = make_user(container)
    with container.db.read() as session:
        with pytest.raises(MfaEnrolmentRequiredError):
            container.mfa.require_step_up(session, person(user), SensitiveAction.WITHDRAWAL)
        with pytest.raises(MfaEnrolmentRequiredError):
            container.mfa.require_mfa_enrolled(session, person(user))


def test_api_keys_can_never_step_up(container: Container, clock: FrozenClock) -> None:
    user = make_user(container)
    enrol_totp(container, user)
    bot = person(user, mfa_at=clock.now().timestamp(), method="apikey")
    with container.db.read() as session, pytest.raises(PermissionDeniedError):
        container.mfa.require_step_up(session, bot, SensitiveAction.API_KEY_CREATE)


# --- recovery --------------------------------------------------------------------------------
def test_support_reset_removes_factors_and_blocks_new_api_keys_for_24_hours(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    enrol_totp(container, user)
    assert register(container, user, SoftAuthenticator())
    support = Principal(actor="user:support-1", user_id="support-1", roles=frozenset({"SUPPORT"}))
    with container.uow() as uow, pytest.raises(ResetVerificationError):
        container.mfa.request_support_reset(
            uow,
            support,
            user,
            verification_method="asked nicely",
            verification_reference="",
            reason="lost phone",
        )
    # Four eyes (deliberate change, #25 item 4): one staff member asks, another approves.
    with container.uow() as uow:
        pending = container.mfa.request_support_reset(
            uow,
            support,
            user,
            verification_method="video-call",
            verification_reference="CASE-1042",
            reason="Lost phone and security key",
        )
        uow.commit()
    second = Principal(actor="user:support-2", user_id="support-2", roles=frozenset({"SUPPORT"}))
    with container.uow() as uow:
        record = container.mfa.approve_support_reset(uow, second, pending.id)
        uow.commit()
    assert record.cooling_until == clock.now() + timedelta(hours=24)
    with container.db.read() as session:
        assert not container.mfa.has_mfa(session, user)
        assert is_in_cooling_period(session, user, clock.now())
    assert outbox(container, kind="mfa.reset")[-1]["to"] == "ann@example.com"

    # The user enrols a new factor and steps up at once; API keys stay blocked anyway.
    enrol_totp(container, user)
    fresh = person(user, mfa_at=clock.now().timestamp())
    with container.db.read() as session:
        with pytest.raises(CoolingPeriodError):
            container.mfa.require_step_up(session, fresh, SensitiveAction.API_KEY_CREATE)
        with pytest.raises(CoolingPeriodError):
            container.mfa.require_step_up(session, fresh, SensitiveAction.WITHDRAWAL)
        # Other sensitive actions (changing the password) are not blocked by cooling.
        container.mfa.require_step_up(session, fresh, SensitiveAction.PASSWORD_CHANGE)
    clock.advance(timedelta(hours=24, seconds=1))
    later = person(user, mfa_at=clock.now().timestamp())
    with container.db.read() as session:
        assert not is_in_cooling_period(session, user, clock.now())
        container.mfa.require_step_up(session, later, SensitiveAction.API_KEY_CREATE)


def test_only_support_or_admin_can_reset_and_never_their_own(container: Container) -> None:
    user = make_user(container)
    trader = Principal(actor="user:t", user_id="t", roles=frozenset({"TRADER"}))
    with container.uow() as uow, pytest.raises(PermissionDeniedError):
        container.mfa.request_support_reset(
            uow,
            trader,
            user,
            verification_method="video-call",
            verification_reference="CASE-1",
            reason="because",
        )
    me = Principal(actor=f"user:{user}", user_id=user, roles=frozenset({"ADMIN"}))
    with container.uow() as uow, pytest.raises(PermissionDeniedError):
        container.mfa.request_support_reset(
            uow,
            me,
            user,
            verification_method="video-call",
            verification_reference="CASE-1",
            reason="because",
        )


def test_failed_attempts_are_audited(container: Container) -> None:
    user = make_user(container)
    enrol_totp(container, user)
    with container.uow() as uow:
        check = container.mfa.verify(
            uow, user, "login:z", FactorResponse(FactorKind.TOTP, code="000000")
        )
        uow.commit()
    assert not check.ok
    with pytest.raises(InvalidFactorError):
        check.raise_for_failure()


def test_own_account_changes_need_step_up_only_when_a_factor_exists(
    container: Container, clock: FrozenClock
) -> None:
    user = make_user(container)
    with container.db.read() as session:
        # Nothing to step up with: changing the password is not blocked by the MFA mandate.
        container.mfa.require_step_up(session, person(user), SensitiveAction.PASSWORD_CHANGE)
    enrol_totp(container, user)
    with container.db.read() as session, pytest.raises(StepUpRequiredError):
        container.mfa.require_step_up(session, person(user), SensitiveAction.EMAIL_CHANGE)
