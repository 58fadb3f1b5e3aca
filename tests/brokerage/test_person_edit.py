"""Changing a person's details after they were added: Change links on their record, one page with the checks of the
adding page, an audit row naming who changed which fields, reasons for changing what identifies them, and rule 7
kept when capacity or the date of birth changes."""

from __future__ import annotations

import datetime
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone
from markupsafe import escape

from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage import person_edit, services
from brokerage.models import Capacity, Person, PersonAssignedStaff
from brokerage.person_edit_forms import EMAIL_INVALID, PHONE_INVALID
from tests.brokerage.helpers import make_nhs_number, make_person, team
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db

SUMMARY = 'class="nhsuk-error-summary"'


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(
        icb_org=people["icb"], staff=[people["broker"]], care_coordinator=people["coordinator"]
    )
    return people


def url(name: str, pk: int) -> str:
    return reverse(f"brokerage:{name}", kwargs={"pk": pk})


def person_events(person) -> list:
    return list(Person.pgh_event_model.objects.filter(pgh_obj=person).order_by("pgh_id").select_related("pgh_context"))


def body_for(person: Person, **changes) -> dict:
    """What the page posts when nothing is changed, with `changes` on top (the form as shown, then edited)."""
    body = {
        "given_name": person.given_name,
        "family_name": person.family_name,
        "nhs_number": person.nhs_number_display,
        "date_of_birth": person.date_of_birth.isoformat(),
        "identity_reason": "",
        "address": person.address,
        "postcode": person.postcode,
        "phone": person.phone,
        "email": person.email,
        "communication_needs": person.communication_needs,
        "capacity": person.capacity,
        "cohort": person.cohort,
        "care_coordinator": person.care_coordinator_id or "",
        "health_monitor": person.health_monitor,
        "assigned_staff": [user.pk for user in person.assigned_staff.all()],
        "seen": person_edit.person_version(person),
    }
    body.update(changes)
    return body


def snapshot(person: Person) -> tuple:
    person = Person.objects.get(pk=person.pk)
    return (
        tuple(getattr(person, name) for name in person_edit.EDITABLE if name != "assigned_staff"),
        sorted(person.assigned_staff.values_list("pk", flat=True)),
    )


def test_the_record_has_a_change_link_for_each_detail_only_for_staff_who_may_change_it(client, crew):
    person = crew["person"]
    client.force_login(crew["broker"])
    page = client.get(url("person", person.pk)).content.decode()
    change = url("person-change", person.pk)
    for anchor, hidden in (
        ("id_address", "address"),
        ("id_phone", "phone number"),
        ("id_email", "email address"),
        ("id_communication_needs", "communication needs"),
        ("id_health_monitor", "who monitors their health"),
        ("id_care_coordinator", "care coordinator"),
        ("assigned_staff", "staff who work with them"),
        ("capacity", "capacity"),
        ("id_nhs_number", "NHS number"),
        ("id_date_of_birth", "date of birth"),
    ):
        assert f'href="{change}#{anchor}"' in page, anchor
        assert f'<span class="nhsuk-u-visually-hidden"> {hidden}</span>' in page, hidden
    assert crew["broker"].full_name in page  # the staff who work with them are listed
    # The ICB's row has no Change link: it is not changed here.
    assert f'href="{change}#id_icb"' not in page and 'name="icb"' not in client.get(change).content.decode()

    # Those who read the record but may not change it see no Change links.
    client.force_login(crew["approver"])
    page = client.get(url("person", person.pk)).content.decode()
    assert "Accountable ICB" in page and change not in page


def test_a_broker_changes_contact_details_and_staff_and_the_change_is_audited(client, crew):
    person, broker = crew["person"], crew["broker"]
    other = user_with_role(Role.CARE_COORDINATOR, organisation=crew["icb"])
    client.force_login(broker)
    page = client.get(url("person-change", person.pk)).content.decode()
    assert 'name="seen"' in page and escape(person.address) in page  # the form shows what is stored
    before = len(person_events(person))

    response = client.post(
        url("person-change", person.pk),
        body_for(
            person,
            address="Flat 2, 10 Grainger Street, Newcastle",
            postcode=" ne1 5jq ",
            phone="0191 498 0000",
            email="joan@example.com",
            communication_needs="Large print letters",
            health_monitor="Nurse Khan, Grey Street Surgery",
            care_coordinator=other.pk,
            assigned_staff=[broker.pk, other.pk],
        ),
    )
    assert response.status_code == 302 and response["Location"] == url("person", person.pk)
    person.refresh_from_db()
    assert (person.address, person.postcode, person.phone, person.email) == (
        "Flat 2, 10 Grainger Street, Newcastle",
        "NE1 5JQ",  # written the standard way, as when a person is added
        "0191 498 0000",
        "joan@example.com",
    )
    assert (person.communication_needs, person.health_monitor, person.care_coordinator) == (
        "Large print letters",
        "Nurse Khan, Grey Street Surgery",
        other,
    )
    assert set(person.assigned_staff.all()) == {broker, other}

    events = person_events(person)
    assert len(events) == before + 1
    metadata = events[-1].pgh_context.metadata
    assert metadata["user"] == broker.pk and metadata["action"] == "person_update"
    assert metadata["url"] == url("person-change", person.pk)
    assert metadata["fields"] == sorted(
        [
            "address",
            "postcode",
            "phone",
            "email",
            "communication_needs",
            "health_monitor",
            "care_coordinator",
            "assigned_staff",
        ]
    )
    assert "reason" not in metadata  # nothing that identifies them changed
    (added,) = PersonAssignedStaff.pgh_event_model.objects.filter(person_id=person.pk, user_id=other.pk)
    assert added.pgh_label == "add" and added.pgh_context.metadata["user"] == broker.pk

    shown = unescape(client.get(response["Location"]).content.decode())
    assert "Joan Robson's details have been changed: address, postcode, phone number, email address" in shown
    for text in ("NE1 5JQ", "0191 498 0000", "joan@example.com", "Large print letters", other.full_name):
        assert text in shown, text


def test_saving_without_a_change_changes_nothing_and_says_so(client, crew):
    person = crew["person"]
    client.force_login(crew["broker"])
    before = len(person_events(person))
    response = client.post(url("person-change", person.pk), body_for(person), follow=True)
    assert "Nothing was changed" in unescape(response.content.decode())
    assert len(person_events(person)) == before


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"postcode": "NE1"}, "id_postcode", "Enter a real postcode, like NE1 4LP"),
        ({"postcode": "NE1 3DXXXXXXX"}, "id_postcode", "Enter a real postcode, like NE1 4LP"),
        ({"address": "  "}, "id_address", "Enter the address"),
        ({"phone": "call me"}, "id_phone", PHONE_INVALID),
        ({"email": "joan@"}, "id_email", EMAIL_INVALID),
        ({"nhs_number": "943 476 5918"}, "id_nhs_number", "Enter a valid NHS number"),
        ({"date_of_birth": "2999-01-01", "identity_reason": "Typo"}, "id_date_of_birth", "must be in the past"),
        ({"assigned_staff": []}, "assigned_staff", "Select at least one care broker or coordinator"),
        ({"capacity": "maybe"}, "capacity", "Select a valid choice"),
    ],
)
def test_bad_input_shows_the_error_summary_and_changes_nothing(client, crew, changes, field, message):
    person = crew["person"]
    client.force_login(crew["broker"])
    before, events = snapshot(person), len(person_events(person))
    # One good change alongside the bad one: it is not saved either.
    response = client.post(
        url("person-change", person.pk), body_for(person, **{"communication_needs": "Large print", **changes})
    )
    page = unescape(response.content.decode())
    assert response.status_code == 200
    assert SUMMARY in page and "There is a problem" in page and "<title>Error:" in page
    assert message in page
    assert f'href="#{field}"' in page  # the summary links to the field with the problem
    assert snapshot(person) == before and len(person_events(person)) == events


def test_the_nhs_number_and_date_of_birth_change_only_with_a_reason_which_is_kept(client, crew):
    person, broker = crew["person"], crew["broker"]
    client.force_login(broker)
    new_number = make_nhs_number(424_242)
    formatted = f"{new_number[:3]} {new_number[3:6]} {new_number[6:]}"
    refused = client.post(url("person-change", person.pk), body_for(person, nhs_number=formatted))
    page = unescape(refused.content.decode())
    assert SUMMARY in page and person_edit.IDENTITY_REASON_REQUIRED in page and 'href="#id_identity_reason"' in page
    person.refresh_from_db()
    assert person.nhs_number != new_number

    # Another person's number is refused, reason or not.
    someone = make_person(icb_org=crew["icb"])
    taken = client.post(
        url("person-change", person.pk),
        body_for(person, nhs_number=someone.nhs_number, identity_reason="Merged records"),
    )
    assert person_edit.NHS_NUMBER_TAKEN in unescape(taken.content.decode())

    reason = "The GP practice confirmed the number after a records merge"
    done = client.post(
        url("person-change", person.pk),
        body_for(person, nhs_number=formatted, date_of_birth="1960-05-18", identity_reason=reason),
    )
    assert done.status_code == 302
    person.refresh_from_db()
    assert (person.nhs_number, person.date_of_birth) == (new_number, datetime.date(1960, 5, 18))
    metadata = person_events(person)[-1].pgh_context.metadata
    assert (metadata["user"], metadata["reason"]) == (broker.pk, reason)
    assert metadata["fields"] == ["date_of_birth", "nhs_number"]
    # The service refuses it too, without the page.
    with pytest.raises(errors.RecordRefused, match="Enter why you are changing"):
        person_edit.person_update(person=person, acting_user=broker, date_of_birth=datetime.date(1960, 5, 19))
    person.refresh_from_db()
    assert person.date_of_birth == datetime.date(1960, 5, 18)


def test_lacks_capacity_is_refused_while_a_nominee_acts_until_their_role_is_ended(client, crew):
    person, broker = crew["person"], crew["broker"]
    nominee = services.representative_add(
        person=person,
        acting_user=broker,
        kind="nominee",
        name="Aisha Robson",
        relationship="daughter",
        nominated_on=datetime.date(2026, 1, 5),
        consent_recorded_on=datetime.date(2026, 1, 6),
    )
    client.force_login(broker)
    refused = client.post(url("person-change", person.pk), body_for(person, capacity=Capacity.LACKS_CAPACITY))
    page = unescape(refused.content.decode())
    assert SUMMARY in page and 'href="#capacity"' in page
    assert "Aisha Robson is Joan Robson's nominee" in page and "End the nominee's role first" in page
    person.refresh_from_db()
    assert person.capacity == Capacity.HAS_CAPACITY

    services.representative_end(representative=nominee, acting_user=broker)
    done = client.post(url("person-change", person.pk), body_for(person, capacity=Capacity.LACKS_CAPACITY))
    assert done.status_code == 302
    person.refresh_from_db()
    assert person.capacity == Capacity.LACKS_CAPACITY


def test_has_capacity_is_refused_while_a_representative_acts_because_they_lack_it(client, crew):
    broker = crew["broker"]
    person = make_person(icb_org=crew["icb"], staff=[broker], capacity=Capacity.LACKS_CAPACITY, given_name="Lena")
    representative = services.representative_add(
        person=person,
        acting_user=broker,
        kind="representative",
        name="Tom Robson",
        relationship="son",
        basis="adult_lacking_capacity",
    )
    client.force_login(broker)
    refused = client.post(url("person-change", person.pk), body_for(person, capacity=Capacity.HAS_CAPACITY))
    page = unescape(refused.content.decode())
    assert SUMMARY in page
    assert "Tom Robson acts for Lena Robson as a representative because Lena Robson lacks capacity" in page
    assert "End their role first" in page
    person.refresh_from_db()
    assert person.capacity == Capacity.LACKS_CAPACITY
    with pytest.raises(errors.RecordRefused, match="End their role first"):
        person_edit.person_update(person=person, acting_user=broker, capacity=Capacity.HAS_CAPACITY)

    services.representative_end(representative=representative, acting_user=broker)
    assert person_edit.person_update(person=person, acting_user=broker, capacity=Capacity.HAS_CAPACITY) == ["capacity"]
    person.refresh_from_db()
    assert person.capacity == Capacity.HAS_CAPACITY


def test_a_date_of_birth_making_a_child_16_is_refused_while_a_representative_acts_for_the_child(crew):
    broker = crew["broker"]
    today = timezone.localdate()
    child = make_person(icb_org=crew["icb"], staff=[broker], born=today.replace(year=today.year - 10))
    services.representative_add(
        person=child,
        acting_user=broker,
        kind="representative",
        name="Mum",
        relationship="mother",
        basis="child_under_16",
    )
    with pytest.raises(errors.RecordRefused, match=r"is 16 or over\. End their role first") as refused:
        person_edit.person_update(
            person=child,
            acting_user=broker,
            date_of_birth=today.replace(year=today.year - 20),
            identity_reason="Wrong year",
        )
    assert refused.value.field == "date_of_birth"
    # Another date still under 16 is fine.
    person_edit.person_update(
        person=child, acting_user=broker, date_of_birth=today.replace(year=today.year - 11), identity_reason="Typo"
    )
    child.refresh_from_db()
    assert child.age_on(today) == 11


def test_staff_who_may_not_change_the_person_get_404_and_change_nothing(client, crew):
    person = crew["person"]
    other = team()  # another ICB's staff
    unassigned = user_with_role(Role.CARE_BROKER, organisation=crew["icb"])  # same ICB, not assigned to them
    readers = [crew["approver"], user_with_role(Role.FINANCE_OFFICER), user_with_role(Role.AUDITOR)]
    before, events = snapshot(person), len(person_events(person))
    body = body_for(person, address="Somewhere else", postcode="NE1 4LP")
    for user in [unassigned, other["broker"], other["coordinator"], user_with_role(Role.PATIENT), *readers]:
        client.force_login(user)
        assert client.get(url("person-change", person.pk)).status_code == 404, user
        assert client.post(url("person-change", person.pk), body).status_code == 404, user
    with pytest.raises(errors.RecordRefused, match=person_edit.NOT_YOURS):
        person_edit.person_update(person=person, acting_user=unassigned, address="Somewhere else")
    assert snapshot(person) == before and len(person_events(person)) == events
    # Readers still see the record, with no Change links.
    client.force_login(readers[1])
    page = client.get(url("person", person.pk))
    assert page.status_code == 200 and url("person-change", person.pk) not in page.content.decode()
    # The ICB cannot be changed through the service either.
    with pytest.raises(ValueError, match="icb"):
        person_edit.person_update(person=person, acting_user=crew["broker"], icb=other["icb"])


def test_a_change_made_meanwhile_by_someone_else_is_not_overwritten(client, crew):
    person = crew["person"]
    client.force_login(crew["broker"])
    stale = body_for(person, address="What the first page said, changed")
    person_edit.person_update(person=person, acting_user=crew["coordinator"], phone="0191 111 1111")
    response = client.post(url("person-change", person.pk), stale, follow=True)
    assert response.redirect_chain[-1][0] == url("person-change", person.pk)
    page = unescape(response.content.decode())
    assert "Someone else changed Joan Robson's details while you were changing them" in page
    assert 'value="0191 111 1111"' in page  # the page shows the details as they are now
    person.refresh_from_db()
    assert (person.phone, person.address) == ("0191 111 1111", "1 Grey Street, Newcastle")


def test_staff_who_take_themselves_off_are_sent_to_the_people_list(client, crew):
    person, broker, coordinator = crew["person"], crew["broker"], crew["coordinator"]
    client.force_login(broker)
    response = client.post(url("person-change", person.pk), body_for(person, assigned_staff=[coordinator.pk]))
    assert response["Location"] == reverse("brokerage:people")
    assert list(person.assigned_staff.all()) == [coordinator]
    assert client.get(url("person", person.pk)).status_code == 404
    # A care broker or coordinator must be chosen: someone with no such role is refused by the service.
    finance = user_with_role(Role.FINANCE_OFFICER, organisation=crew["icb"])
    with pytest.raises(errors.RecordRefused, match="is not a care broker or care coordinator"):
        person_edit.person_update(person=person, acting_user=coordinator, assigned_staff=[coordinator, finance])
    assert list(person.assigned_staff.all()) == [coordinator]
