"""People: NHS numbers, representatives and nominees (rule 7), adding a person through the page."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.roles import Role
from brokerage.models import ActorKind, Capacity, Person, Representative, RepresentativeBasis, format_nhs_number
from tests.brokerage.helpers import icb, make_person
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def test_nhs_numbers_are_validated_accepted_with_spaces_and_shown_3_3_4():
    person = make_person()
    person.nhs_number = "943 476 5919"
    person.full_clean()
    person.save()
    assert person.nhs_number == "9434765919" and person.nhs_number_display == "943 476 5919"
    person.nhs_number = "9434765918"  # wrong check digit
    with pytest.raises(ValidationError, match="valid NHS number"):
        person.full_clean()
    assert format_nhs_number("9434765919") == "943 476 5919"


def test_a_nominee_needs_a_person_with_capacity_and_recorded_consent():
    person = make_person(capacity=Capacity.HAS_CAPACITY)
    nominee = Representative(
        person=person,
        kind=ActorKind.NOMINEE,
        name="Aisha",
        relationship="daughter",
        nominated_on=datetime.date(2026, 1, 5),
        consent_recorded_on=datetime.date(2026, 1, 6),
    )
    nominee.full_clean()
    nominee.consent_recorded_on = None
    with pytest.raises(ValidationError, match="consented"):
        nominee.full_clean()
    lacking = make_person(capacity=Capacity.LACKS_CAPACITY)
    nominee = Representative(
        person=lacking,
        kind=ActorKind.NOMINEE,
        name="Aisha",
        relationship="daughter",
        nominated_on=datetime.date(2026, 1, 5),
        consent_recorded_on=datetime.date(2026, 1, 6),
    )
    with pytest.raises(ValidationError, match="has capacity can nominate"):
        nominee.full_clean()


def test_a_representative_acts_for_a_child_or_an_adult_lacking_capacity():
    child = make_person(born=datetime.date.today().replace(year=datetime.date.today().year - 10))
    Representative(
        person=child,
        kind=ActorKind.REPRESENTATIVE,
        name="Mum",
        relationship="mother",
        basis=RepresentativeBasis.CHILD_UNDER_16,
    ).full_clean()
    adult = make_person(capacity=Capacity.HAS_CAPACITY)
    for basis in RepresentativeBasis:
        with pytest.raises(ValidationError):
            Representative(
                person=adult, kind=ActorKind.REPRESENTATIVE, name="Son", relationship="son", basis=basis
            ).full_clean()


def test_the_database_refuses_a_nominee_without_consent():
    from django.db import IntegrityError, transaction

    person = make_person()
    with pytest.raises(IntegrityError), transaction.atomic():
        Representative.objects.create(person=person, kind=ActorKind.NOMINEE, name="X", relationship="friend")


def test_a_broker_adds_a_person_with_a_spaced_nhs_number(client):
    organisation = icb("North ICB")
    broker = user_with_role(Role.CARE_BROKER, organisation=organisation)
    client.force_login(broker)
    data = {
        "nhs_number": "943 476 5919",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "date_of_birth": "1950-12-10",
        "address": "1 Quayside",
        "postcode": "NE1 3DX",
        "capacity": "has_capacity",
        "cohort": "continuing_healthcare",
        "icb": organisation.pk,
        "health_monitor": "Dr Byron",
    }
    response = client.post(reverse("brokerage:person-add"), data)
    person = Person.objects.get(nhs_number="9434765919")
    assert response["Location"] == reverse("brokerage:person", kwargs={"pk": person.pk})
    assert broker in person.assigned_staff.all()
    page = client.get(response["Location"]).content.decode()
    assert "943 476 5919" in page
    again = client.post(reverse("brokerage:person-add"), {**data, "nhs_number": "9434765918"}).content.decode()
    assert "Enter a valid NHS number" in again and "<title>Error:" in again
    for postcode in ("NE1 3DXXXXXXX", "12345", "NE1"):
        refused = client.post(reverse("brokerage:person-add"), {**data, "postcode": postcode}).content.decode()
        assert "Enter a real postcode, like NE1 4LP" in refused and "<title>Error:" in refused
    assert Person.objects.count() == 1
    client.post(reverse("brokerage:person-add"), {**data, "nhs_number": "4010232137", "postcode": " ne13dx "})
    assert Person.objects.get(nhs_number="4010232137").postcode == "NE1 3DX"


@pytest.mark.parametrize("role", [Role.PATIENT, Role.FINANCE_OFFICER, Role.ICB_APPROVER])
def test_only_brokers_and_coordinators_add_people(client, role):
    client.force_login(user_with_role(role))
    assert client.get(reverse("brokerage:person-add")).status_code == 404


def test_the_person_and_their_representative_see_their_own_record_only(client):
    person = make_person()
    other = make_person()
    patient = user_with_role(Role.PATIENT)
    person.user = patient
    person.save()
    rep_user = user_with_role(Role.REPRESENTATIVE)
    Representative.objects.create(
        person=other,
        kind=ActorKind.REPRESENTATIVE,
        name="Rep",
        relationship="son",
        basis=RepresentativeBasis.ADULT_LACKING_CAPACITY,
        user=rep_user,
    )
    client.force_login(patient)
    assert client.get(reverse("brokerage:person", kwargs={"pk": person.pk})).status_code == 200
    assert client.get(reverse("brokerage:person", kwargs={"pk": other.pk})).status_code == 404
    client.force_login(rep_user)
    assert client.get(reverse("brokerage:person", kwargs={"pk": other.pk})).status_code == 200
    assert client.get(reverse("brokerage:person", kwargs={"pk": person.pk})).status_code == 404
