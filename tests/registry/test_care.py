"""The care model on SQLite and PostgreSQL: accounts, teams, contracts, rota, consents, access."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from registry.access import (
    Relationship,
    access_facts,
    load_actor,
    related_facts,
    visible_patient_ids,
)
from registry.care import (
    AccountRepository,
    ContractRepository,
    FamilyRepository,
    PatientCareRepository,
    RotaRepository,
    TeamRepository,
    parse_scopes,
)
from registry.care_models import (
    AccountKind,
    Condition,
    ConsentScope,
    GrantKind,
    PatientStatus,
    Role,
    TeamPosition,
)
from registry.db import session_scope
from registry.errors import AlreadyExists, InvalidRegistryInput, NotFound
from registry.repositories import PatientRepository
from tests.fakes import ManualClock
from tests.registry.conftest import T0


@pytest.fixture
def care(engine: Engine, clock: ManualClock) -> Iterator[Session]:
    """A session with two teams, their staff, two patients and a family member."""
    with session_scope(engine) as session:
        patients = PatientRepository(session, clock=clock)
        patients.add("p-wang", display_name="王芳")
        patients.add("p-li", display_name="李强")
        accounts = AccountRepository(session, clock=clock)
        accounts.add(
            "dr.zhang", display_name="张医生", kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.add(
            "dr.chen", display_name="陈医生", kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.add("nurse.liu", display_name="刘护士", kind=AccountKind.STAFF, roles=[Role.NURSE])
        accounts.add("admin", display_name="管理员", kind=AccountKind.STAFF, roles=[Role.ADMIN])
        accounts.add(
            "wang.fang",
            display_name="王芳",
            kind=AccountKind.PATIENT,
            patient_id="p-wang",
            phone="13800000001",
        )
        accounts.add(
            "wang.daughter", display_name="王女儿", kind=AccountKind.FAMILY, phone="13800000002"
        )
        teams = TeamRepository(session, clock=clock)
        teams.add("team-a", name="一团队", organisation="东城社区卫生服务中心")
        teams.add("team-b", name="二团队", organisation="东城社区卫生服务中心")
        teams.add_member("team-a", "dr.zhang", TeamPosition.DOCTOR)
        teams.add_member("team-a", "nurse.liu", TeamPosition.NURSE)
        teams.add_member("team-b", "dr.chen", TeamPosition.DOCTOR)
        ContractRepository(session, clock=clock).sign(
            "p-wang", "team-a", service_package="diabetes", starts_on=T0.date()
        )
        ContractRepository(session, clock=clock).sign(
            "p-li", "team-b", service_package="hypertension", starts_on=T0.date()
        )
        FamilyRepository(session, clock=clock).link(
            "p-wang", "wang.daughter", relationship="daughter"
        )
        yield session


def _relationships(session: Session, username: str, patient_id: str, at=T0):  # type: ignore[no-untyped-def]
    account = AccountRepository(session).get(username)
    actor = load_actor(session, account.id)
    assert actor is not None
    return access_facts(session, actor, patient_id, at).relationships


def test_team_members_relate_to_contracted_patients_only(care: Session) -> None:
    assert _relationships(care, "dr.zhang", "p-wang") == {Relationship.TEAM_DOCTOR}
    assert _relationships(care, "nurse.liu", "p-wang") == {Relationship.TEAM_NURSE}
    assert _relationships(care, "dr.zhang", "p-li") == frozenset()
    assert _relationships(care, "dr.chen", "p-wang") == frozenset()
    assert _relationships(care, "admin", "p-wang") == frozenset()
    assert _relationships(care, "wang.fang", "p-wang") == {Relationship.SELF}
    assert _relationships(care, "wang.fang", "p-li") == frozenset()


def test_an_unknown_patient_looks_like_someone_elses(care: Session) -> None:
    actor = load_actor(care, AccountRepository(care).get("dr.zhang").id)
    assert actor is not None
    facts = access_facts(care, actor, "p-nobody", T0)
    assert not facts.patient_exists
    assert facts.relationships == frozenset()


def test_a_contract_covers_civil_days_in_the_patients_zone(
    care: Session, clock: ManualClock
) -> None:
    ContractRepository(care, clock=clock).end(
        "p-wang", ends_on=T0.date() + timedelta(days=10), reason="moved away"
    )
    last_day = T0.replace(hour=0) + timedelta(days=10) - timedelta(hours=9)  # 23:00 Shanghai
    assert _relationships(care, "dr.zhang", "p-wang", last_day) == {Relationship.TEAM_DOCTOR}
    after = last_day + timedelta(hours=2)  # 01:00 Shanghai on the end date
    assert _relationships(care, "dr.zhang", "p-wang", after) == frozenset()
    history = ContractRepository(care).history("p-wang")
    assert [(c.team_code, c.end_reason) for c in history] == [("team-a", "moved away")]


def test_one_open_contract_per_patient(care: Session) -> None:
    with pytest.raises(AlreadyExists, match="open contract"):
        ContractRepository(care).sign(
            "p-wang", "team-b", service_package="basic", starts_on=T0.date()
        )


def test_a_new_contract_cannot_start_before_the_previous_ended(care: Session) -> None:
    contracts = ContractRepository(care)
    contracts.end("p-wang", ends_on=date(2026, 6, 1), reason="re-signed with another team")
    with pytest.raises(InvalidRegistryInput, match="starts_on"):
        contracts.sign("p-wang", "team-b", service_package="basic", starts_on=date(2026, 5, 1))
    contracts.sign("p-wang", "team-b", service_package="basic", starts_on=date(2026, 6, 1))
    june = T0.replace(month=6, day=2)
    assert _relationships(care, "dr.chen", "p-wang", june) == {Relationship.TEAM_DOCTOR}
    assert _relationships(care, "dr.zhang", "p-wang", june) == frozenset()


def test_a_member_who_left_the_team_loses_access(care: Session, clock: ManualClock) -> None:
    TeamRepository(care, clock=clock).end_member("team-a", "nurse.liu", at=T0 + timedelta(days=3))
    assert _relationships(care, "nurse.liu", "p-wang", T0 + timedelta(days=2)) == {
        Relationship.TEAM_NURSE
    }
    assert _relationships(care, "nurse.liu", "p-wang", T0 + timedelta(days=3)) == frozenset()


def test_the_duty_doctor_relates_during_the_shift_only(care: Session) -> None:
    rota = RotaRepository(care)
    start, end = T0 + timedelta(hours=10), T0 + timedelta(hours=22)
    rota.add_shift("team-a", "dr.chen", starts_at=start, ends_at=end)
    assert _relationships(care, "dr.chen", "p-wang", start) == {Relationship.DUTY_DOCTOR}
    assert _relationships(care, "dr.chen", "p-wang", end) == frozenset()
    assert _relationships(care, "dr.chen", "p-wang", start - timedelta(seconds=1)) == frozenset()
    duty = rota.duty_doctor("team-a", start + timedelta(hours=1))
    assert duty is not None
    assert duty.doctor_username == "dr.chen"
    assert rota.duty_doctor("team-a", end) is None


def test_cover_during_leave_is_paged_before_the_regular_shift(care: Session) -> None:
    rota = RotaRepository(care)
    rota.add_shift("team-a", "dr.zhang", starts_at=T0, ends_at=T0 + timedelta(days=7))
    rota.add_shift(
        "team-a",
        "dr.chen",
        starts_at=T0 + timedelta(days=2),
        ends_at=T0 + timedelta(days=4),
        covers="dr.zhang",
    )
    on_leave = rota.duty_doctor("team-a", T0 + timedelta(days=3))
    assert on_leave is not None
    assert (on_leave.doctor_username, on_leave.covers_username) == ("dr.chen", "dr.zhang")
    back = rota.duty_doctor("team-a", T0 + timedelta(days=5))
    assert back is not None
    assert back.doctor_username == "dr.zhang"


def test_a_nurse_cannot_be_put_on_doctor_duty(care: Session) -> None:
    with pytest.raises(InvalidRegistryInput, match="not an active family doctor"):
        RotaRepository(care).add_shift(
            "team-a", "nurse.liu", starts_at=T0, ends_at=T0 + timedelta(hours=8)
        )


def test_family_access_follows_consent_grant_revoke_and_expiry(
    care: Session, clock: ManualClock
) -> None:
    family = FamilyRepository(care, clock=clock)
    assert _relationships(care, "wang.daughter", "p-wang") == frozenset()  # linked only
    consent = family.grant(
        "p-wang",
        "wang.daughter",
        [ConsentScope.VIEW_READINGS],
        granted_by="wang.fang",
        expires_at=T0 + timedelta(days=30),
    )
    account = AccountRepository(care).get("wang.daughter")
    actor = load_actor(care, account.id)
    assert actor is not None
    facts = access_facts(care, actor, "p-wang", T0)
    assert facts.relationships == {Relationship.FAMILY}
    assert facts.consent_scopes == {ConsentScope.VIEW_READINGS}
    assert access_facts(care, actor, "p-wang", consent.expires_at).relationships == frozenset()  # type: ignore[arg-type]

    clock.advance(3600)
    family.grant(
        "p-wang",
        "wang.daughter",
        [ConsentScope.VIEW_READINGS, ConsentScope.RECEIVE_ALERTS],
        granted_by="wang.fang",
    )
    records = family.consents("p-wang")
    assert [r.revoked_at is not None for r in records] == [True, False]
    clock.advance(3600)
    assert family.revoke("p-wang", "wang.daughter", revoked_by="wang.fang") == 1
    assert access_facts(care, actor, "p-wang", clock.now).relationships == frozenset()
    # What she could see an hour ago stays on record.
    earlier = clock.now - timedelta(minutes=30)
    assert access_facts(care, actor, "p-wang", earlier).consent_scopes == {
        ConsentScope.VIEW_READINGS,
        ConsentScope.RECEIVE_ALERTS,
    }


def test_consent_needs_a_link_and_known_scopes(care: Session) -> None:
    with pytest.raises(NotFound, match="family link"):
        FamilyRepository(care).grant(
            "p-li", "wang.daughter", [ConsentScope.VIEW_READINGS], granted_by="x"
        )
    with pytest.raises(InvalidRegistryInput, match="unknown scope 'everything'"):
        parse_scopes(["view_readings", "everything"])
    with pytest.raises(InvalidRegistryInput, match="only family accounts"):
        FamilyRepository(care).link("p-li", "dr.zhang", relationship="son")


def test_access_grants_are_time_limited(care: Session, clock: ManualClock) -> None:
    PatientCareRepository(care, clock=clock).grant_access(
        "dr.chen",
        "p-wang",
        kind=GrantKind.BREAK_GLASS,
        reason="患者昏迷，急诊",
        ends_at=T0 + timedelta(hours=4),
    )
    assert _relationships(care, "dr.chen", "p-wang", T0 + timedelta(hours=1)) == {
        Relationship.BREAK_GLASS
    }
    assert _relationships(care, "dr.chen", "p-wang", T0 + timedelta(hours=4)) == frozenset()


def test_visible_patients_lists_exactly_the_related_ones(care: Session, clock: ManualClock) -> None:
    def visible(username: str) -> set[str]:
        actor = load_actor(care, AccountRepository(care).get(username).id)
        assert actor is not None
        return visible_patient_ids(care, actor, T0 + timedelta(hours=1))

    assert visible("dr.zhang") == {"p-wang"}
    assert visible("dr.chen") == {"p-li"}
    assert visible("admin") == set()
    assert visible("wang.daughter") == set()
    FamilyRepository(care, clock=clock).grant(
        "p-wang", "wang.daughter", [ConsentScope.VIEW_READINGS], granted_by="wang.fang"
    )
    assert visible("wang.daughter") == {"p-wang"}
    AccountRepository(care).set_active("dr.zhang", False)
    assert visible("dr.zhang") == set()


def test_accounts_check_kind_roles_and_uniqueness(care: Session) -> None:
    accounts = AccountRepository(care)
    with pytest.raises(InvalidRegistryInput, match="username"):
        accounts.add("Bad Name", display_name="x", kind=AccountKind.STAFF, roles=[Role.NURSE])
    with pytest.raises(InvalidRegistryInput, match="staff roles"):
        accounts.add("x.y", display_name="x", kind=AccountKind.STAFF, roles=[Role.PATIENT])
    with pytest.raises(InvalidRegistryInput, match="no staff roles"):
        accounts.add("x.z", display_name="x", kind=AccountKind.FAMILY, roles=[Role.ADMIN])
    with pytest.raises(AlreadyExists):
        accounts.add("dr.zhang", display_name="x", kind=AccountKind.STAFF, roles=[Role.NURSE])
    with pytest.raises(AlreadyExists, match="account of patient"):
        accounts.add("wang.2", display_name="x", kind=AccountKind.PATIENT, patient_id="p-wang")
    before = accounts.get("dr.zhang").session_version
    accounts.set_password_hash("dr.zhang", "$argon2id$v=19$m=65536,t=3,p=4$x$y")
    after = accounts.get("dr.zhang")
    assert after.has_password
    assert after.session_version == before + 1
    with pytest.raises(InvalidRegistryInput, match="without one"):
        accounts.set_password_hash("wang.fang", "$argon2id$x")


def test_targets_and_status_are_effective_dated(care: Session, clock: ManualClock) -> None:
    patient = PatientCareRepository(care, clock=clock)
    patient.set_target(
        "p-wang",
        "glucose",
        low=3.9,
        high=10.0,
        unit="mmol/L",
        set_by="dr.zhang",
        reason="standard adult target",
    )
    patient.set_target(
        "p-wang",
        "glucose",
        low=5.0,
        high=11.1,
        unit="mmol/L",
        set_by="dr.zhang",
        reason="elderly, hypoglycaemia risk",
        effective_from=T0 + timedelta(days=30),
    )
    first = patient.target_at("p-wang", "glucose", T0 + timedelta(days=29))
    second = patient.target_at("p-wang", "glucose", T0 + timedelta(days=30))
    assert first is not None
    assert (first.low, first.high) == (3.9, 10.0)
    assert second is not None
    assert (second.low, second.high) == (5.0, 11.1)
    assert patient.target_at("p-wang", "glucose", T0 - timedelta(seconds=1)) is None
    with pytest.raises(InvalidRegistryInput, match="above low"):
        patient.set_target(
            "p-wang", "glucose", low=8, high=4, unit="mmol/L", set_by="x", reason="typo"
        )

    assert patient.status_at("p-wang", T0).status is PatientStatus.ACTIVE
    patient.set_status(
        "p-wang",
        PatientStatus.HOSPITALISED,
        reason="admitted, pneumonia",
        recorded_by="nurse.liu",
        effective_from=T0 + timedelta(days=5),
    )
    assert patient.status_at("p-wang", T0 + timedelta(days=4)).status is PatientStatus.ACTIVE
    in_hospital = patient.status_at("p-wang", T0 + timedelta(days=6))
    assert (in_hospital.status, in_hospital.reason) == (
        PatientStatus.HOSPITALISED,
        "admitted, pneumonia",
    )


def test_conditions_and_monitoring_consent(care: Session, clock: ManualClock) -> None:
    patient = PatientCareRepository(care, clock=clock)
    patient.set_conditions("p-wang", [Condition.DIABETES_TYPE2, Condition.HYPERTENSION])
    patient.set_conditions("p-wang", [Condition.DIABETES_TYPE2, Condition.FRAIL_ELDERLY])
    assert patient.conditions("p-wang") == {Condition.DIABETES_TYPE2, Condition.FRAIL_ELDERLY}
    assert not patient.monitoring_consented("p-wang", T0)
    patient.record_monitoring_consent("p-wang", recorded_by="nurse.liu", document_ref="F-2026-17")
    assert patient.monitoring_consented("p-wang", T0)
    with pytest.raises(AlreadyExists):
        patient.record_monitoring_consent("p-wang", recorded_by="nurse.liu")
    clock.advance(60)
    patient.withdraw_monitoring_consent("p-wang", withdrawn_by="wang.fang")
    assert not patient.monitoring_consented("p-wang", clock.now)
    assert patient.monitoring_consented("p-wang", T0)


def test_set_based_facts_equal_the_per_patient_ones_at_every_moment(
    care: Session, clock: ManualClock
) -> None:
    # Every kind of relationship, with edges inside the grid of moments below: contracts
    # ending in two zones, a member leaving, a duty shift, consent expiry and revocation,
    # a break-glass grant, a patient status change (for statuses_at).
    PatientRepository(care, clock=clock).add("p-zhao", "赵六", time_zone="America/Los_Angeles")
    contracts = ContractRepository(care, clock=clock)
    contracts.sign("p-zhao", "team-a", service_package="basic", starts_on=T0.date())
    contracts.end("p-zhao", ends_on=T0.date() + timedelta(days=2), reason="moved away")
    contracts.end("p-li", ends_on=T0.date() + timedelta(days=3), reason="moved away")
    TeamRepository(care, clock=clock).end_member("team-a", "nurse.liu", at=T0 + timedelta(days=1))
    RotaRepository(care).add_shift(
        "team-a", "dr.chen", starts_at=T0 + timedelta(hours=10), ends_at=T0 + timedelta(hours=30)
    )
    family = FamilyRepository(care, clock=clock)
    family.grant(
        "p-wang",
        "wang.daughter",
        [ConsentScope.VIEW_READINGS],
        granted_by="wang.fang",
        expires_at=T0 + timedelta(days=2),
    )
    patient_care = PatientCareRepository(care, clock=clock)
    patient_care.grant_access(
        "dr.zhang",
        "p-li",
        kind=GrantKind.BREAK_GLASS,
        reason="急诊",
        ends_at=T0 + timedelta(hours=20),
    )
    patient_care.set_conditions("p-wang", [Condition.DIABETES_TYPE2, Condition.HYPERTENSION])
    patient_care.set_status(
        "p-li",
        PatientStatus.HOSPITALISED,
        reason="admitted",
        recorded_by="dr.chen",
        effective_from=T0 + timedelta(days=1),
    )
    clock.advance(36 * 3600)
    family.revoke("p-wang", "wang.daughter", revoked_by="wang.fang")

    patients = ["p-wang", "p-li", "p-zhao"]
    # Every 7 hours over six days, plus each edge above exactly.
    edges = (0, 10, 20, 24, 30, 36, 48)
    moments = [T0 + timedelta(hours=hours) for hours in (*range(-30, 24 * 5, 7), *edges)]
    seen: set[Relationship] = set()
    for username in ("dr.zhang", "dr.chen", "nurse.liu", "admin", "wang.fang", "wang.daughter"):
        actor = load_actor(care, AccountRepository(care).get(username).id)
        assert actor is not None
        for at in moments:
            one_by_one = {
                patient_id: facts
                for patient_id in patients
                if (facts := access_facts(care, actor, patient_id, at)).relationships
            }
            assert related_facts(care, actor, at) == one_by_one, (username, at)
            assert related_facts(care, actor, at, ["p-li"]) == {
                key: value for key, value in one_by_one.items() if key == "p-li"
            }
            assert visible_patient_ids(care, actor, at) == set(one_by_one)
            for facts in one_by_one.values():
                seen.update(facts.relationships)
    # The grid did exercise every relationship the fixture can give.
    assert seen == set(Relationship) - {Relationship.ESCALATION, Relationship.TEAM_LEAD}

    for at in moments:
        assert patient_care.statuses_at([*patients, "p-nobody"], at) == {
            patient_id: patient_care.status_at(patient_id, at) for patient_id in patients
        }
    assert patient_care.conditions_of(patients) == {
        patient_id: patient_care.conditions(patient_id) for patient_id in patients
    }
