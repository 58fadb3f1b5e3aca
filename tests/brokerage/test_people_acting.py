"""Who acts for a person and who they pay (rules 7 and 11), through the pages: representatives and nominees are added
and ended by the staff who work with the person, connected people are recorded by them too, and only an ICB approver
of the person's ICB (not whoever recorded the connection) approves that paying one is necessary."""

from __future__ import annotations

import datetime
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone
from markupsafe import escape

from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage import services
from brokerage.models import ActorKind, Capacity, ConnectedPerson, Representative
from config.formatting import format_date
from providers.models import Provider
from tests.brokerage.helpers import make_person, team
from tests.factories import UserFactory, user_with_role

pytestmark = pytest.mark.django_db

SUMMARY = 'class="nhsuk-error-summary"'


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    people["lacking"] = make_person(
        icb_org=people["icb"], staff=[people["broker"]], capacity=Capacity.LACKS_CAPACITY, given_name="Lena"
    )
    people["sam"] = Provider.objects.create(name="Sam Robson", kind="personal_assistant")
    return people


def url(name: str, pk: int) -> str:
    return reverse(f"brokerage:{name}", kwargs={"pk": pk})


def events(model, **filters) -> list:
    return list(model.pgh_event_model.objects.filter(**filters).order_by("pgh_id").select_related("pgh_context"))


def today() -> datetime.date:
    return timezone.localdate()


NOMINEE = {"kind": "nominee", "name": "Aisha Robson", "relationship": "daughter"}
REPRESENTATIVE = {"kind": "representative", "name": "Tom Robson", "relationship": "son"}
TOMORROW = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("who", "body", "field", "message"),
    [
        (
            "person",
            {**REPRESENTATIVE, "basis": "child_under_16"},
            "basis",
            "The person is 16 or over, so a representative needs another basis",
        ),
        (
            "person",
            {**REPRESENTATIVE, "basis": "adult_lacking_capacity"},
            "basis",
            "The person has capacity, so they cannot have a representative on that basis",
        ),
        ("person", REPRESENTATIVE, "basis", errors.BASIS_REQUIRED),
        (
            "lacking",
            {**NOMINEE, "nominated_on": "2026-01-05", "consent_recorded_on": "2026-01-06"},
            "kind",
            "Only a person who has capacity can nominate someone",
        ),
        ("person", {**NOMINEE, "nominated_on": "2026-01-05"}, "consent_recorded_on", errors.CONSENT_REQUIRED),
        ("person", {**NOMINEE, "consent_recorded_on": "2026-01-05"}, "nominated_on", errors.NOMINATED_ON_REQUIRED),
        (
            "person",
            {**NOMINEE, "nominated_on": TOMORROW, "consent_recorded_on": TOMORROW},
            "nominated_on",
            "The date they were nominated must be today or in the past",
        ),
        (
            "person",
            {**NOMINEE, "nominated_on": "2026-01-06", "consent_recorded_on": "2026-01-05"},
            "consent_recorded_on",
            errors.CONSENT_BEFORE_NOMINATION,
        ),
        ("person", {**NOMINEE, "nominated_on": "2026-02-30"}, "nominated_on", "Enter a real date, like 24 11 2026"),
    ],
)
def test_rule_7_refusals_show_the_error_summary_and_record_nothing(client, crew, who, body, field, message):
    person = crew[who]
    client.force_login(crew["broker"])
    response = client.post(url("person-representative-add", person.pk), body)
    page = response.content.decode()
    assert response.status_code == 200
    assert SUMMARY in page and "There is a problem" in page
    assert escape(message) in page
    # The summary links to the field with the problem (a radio group's first option takes the group's name).
    target = field if field in ("kind", "basis") else f"id_{field}"
    assert f'href="#{target}"' in page and f'id="{target}"' in page
    assert f'id="{target}-error"' in page  # and the field shows its own error message
    assert not Representative.objects.filter(person=person).exists()
    assert not events(Representative, pgh_obj__person=person)


def test_a_representative_for_a_child_and_a_nominee_are_added_listed_ended_and_audited(client, crew):
    child = make_person(
        icb_org=crew["icb"], staff=[crew["coordinator"]], born=today().replace(year=today().year - 10), given_name="Ivy"
    )
    person = crew["person"]
    client.force_login(crew["coordinator"])
    added = client.post(url("person-representative-add", child.pk), {**REPRESENTATIVE, "basis": "child_under_16"})
    assert added.status_code == 302 and added["Location"] == url("person-acting", child.pk)
    assert Representative.objects.get(person=child).basis == "child_under_16"

    client.force_login(crew["broker"])
    response = client.post(
        url("person-representative-add", person.pk),
        # A basis sent for a nominee does not apply to them and is not kept.
        {**NOMINEE, "basis": "child_under_16", "nominated_on": "2026-01-05", "consent_recorded_on": "2026-01-06"},
    )
    assert response.status_code == 302
    nominee = Representative.objects.get(person=person)
    assert (nominee.kind, nominee.basis, nominee.nominated_on, nominee.active) == (
        ActorKind.NOMINEE,
        "",
        datetime.date(2026, 1, 5),
        True,
    )
    (added_event,) = events(Representative, pgh_obj=nominee)
    assert added_event.pgh_label == "insert"
    assert added_event.pgh_context.metadata["user"] == crew["broker"].pk
    assert added_event.pgh_context.metadata["action"] == "representative_add"

    listing = client.get(url("person-acting", person.pk)).content.decode()
    for text in ("Aisha Robson", "Nominee", "daughter", "5 January 2026", "6 January 2026", "Acting"):
        assert text in listing, text
    assert url("representative-end", nominee.pk) in listing
    person_page = client.get(url("person", person.pk)).content.decode()
    assert "Aisha Robson, daughter (nominee)" in person_page and url("person-acting", person.pk) in person_page

    confirm = client.get(url("representative-end", nominee.pk))
    assert confirm.status_code == 200 and "End Aisha Robson's role" in unescape(confirm.content.decode())
    ended = client.post(url("representative-end", nominee.pk))
    assert ended.status_code == 302 and ended["Location"] == url("person-acting", person.pk)
    nominee.refresh_from_db()
    assert nominee.active is False and nominee.ended_on == today()  # kept, never deleted
    end_event = events(Representative, pgh_obj=nominee)[-1]
    assert (end_event.pgh_label, end_event.active) == ("update", False)
    assert end_event.pgh_context.metadata["user"] == crew["broker"].pk
    assert end_event.pgh_context.metadata["action"] == "representative_end"

    listing = client.get(url("person-acting", person.pk)).content.decode()
    assert f"Ended on {format_date(today())}" in listing and url("representative-end", nominee.pk) not in listing
    assert "Aisha Robson, daughter (nominee)" not in client.get(url("person", person.pk)).content.decode()
    # Ending again changes nothing: the page goes back to the list, and the service refuses.
    assert client.post(url("representative-end", nominee.pk))["Location"] == url("person-acting", person.pk)
    with pytest.raises(errors.RecordRefused, match="already stopped acting"):
        services.representative_end(representative=nominee, acting_user=crew["broker"])
    assert len(events(Representative, pgh_obj=nominee)) == 2


def test_a_connected_spouse_is_blocked_until_an_approver_approves_with_reasons(client, crew):
    person, sam = crew["person"], crew["sam"]
    client.force_login(crew["broker"])
    added = client.post(
        url("person-connected-add", person.pk),
        {"provider": sam.pk, "relationship": "spouse", "lives_in_household": "no"},
    )
    assert added.status_code == 302
    connection = ConnectedPerson.objects.get(person=person)
    assert connection.blocked and connection.recorded_by == crew["broker"]
    assert events(ConnectedPerson, pgh_obj=connection)[0].pgh_context.metadata["user"] == crew["broker"].pk
    listing = client.get(url("person-acting", person.pk)).content.decode()
    assert "Sam Robson" in listing and "Blocked: needs a necessity approval" in listing
    assert url("connected-person-necessity", connection.pk) not in listing  # the broker cannot approve
    assert "Blocked: needs a necessity approval" in client.get(url("person", person.pk)).content.decode()

    # The broker is not an approver: the page is not there for them, and nothing changes.
    assert client.get(url("connected-person-necessity", connection.pk)).status_code == 404
    assert client.post(url("connected-person-necessity", connection.pk), {"reasons": "I say so"}).status_code == 404
    connection.refresh_from_db()
    assert connection.blocked

    client.force_login(crew["approver"])
    listing = client.get(url("person-acting", person.pk)).content.decode()
    assert url("connected-person-necessity", connection.pk) in listing
    page = client.get(url("connected-person-necessity", connection.pk)).content.decode()
    assert 'name="reasons"' in page
    empty = client.post(url("connected-person-necessity", connection.pk), {"reasons": "  "}).content.decode()
    assert SUMMARY in empty and "Enter why paying them is necessary" in empty
    connection.refresh_from_db()
    assert connection.blocked

    reasons = "No agency covers the village before 7am; Sam is trained in her care."
    approved = client.post(url("connected-person-necessity", connection.pk), {"reasons": reasons})
    assert approved.status_code == 302 and approved["Location"] == url("person-acting", person.pk)
    connection.refresh_from_db()
    assert not connection.blocked
    assert (connection.necessity_approved_on, connection.necessity_approved_by) == (today(), crew["approver"])
    event = events(ConnectedPerson, pgh_obj=connection)[-1]
    assert event.necessity_reasons == reasons
    assert event.pgh_context.metadata["user"] == crew["approver"].pk
    assert event.pgh_context.metadata["action"] == "connected_person_approve_necessity"
    listing = client.get(url("person-acting", person.pk)).content.decode()
    approver = crew["approver"].full_name
    assert escape(f"Approved on {format_date(today())} by {approver}: {reasons}") in listing
    # Approved once: a second approval is refused with the date of the first.
    again = client.post(url("connected-person-necessity", connection.pk), {"reasons": "Again"}).content.decode()
    assert SUMMARY in again and f"was already approved on {format_date(today())}" in again


def test_a_friend_outside_the_household_needs_no_approval_and_a_payee_is_recorded_once(client, crew):
    person, sam = crew["person"], crew["sam"]
    client.force_login(crew["coordinator"])
    body = {"provider": sam.pk, "relationship": "friend", "lives_in_household": "no"}
    assert client.post(url("person-connected-add", person.pk), body).status_code == 302
    listing = client.get(url("person-acting", person.pk)).content.decode()
    assert "Not needed" in listing and "Blocked" not in listing
    again = client.post(url("person-connected-add", person.pk), {**body, "relationship": "family"}).content.decode()
    assert SUMMARY in again and "Sam Robson is already recorded as connected to this person" in again
    assert ConnectedPerson.objects.get(person=person).relationship == "friend"
    missing = client.post(url("person-connected-add", person.pk), {"provider": sam.pk}).content.decode()
    assert "Select how they are connected" in missing and "Select whether they live in the same household" in missing
    # A friend in the household is blocked like a spouse.
    other = Provider.objects.create(name="Pat Lodger", kind="personal_assistant")
    body = {"provider": other.pk, "relationship": "friend", "lives_in_household": "yes"}
    assert client.post(url("person-connected-add", person.pk), body).status_code == 302
    assert ConnectedPerson.objects.get(provider=other).blocked


def test_only_an_approver_of_the_persons_icb_who_did_not_record_it_may_approve(client, crew):
    person, sam = crew["person"], crew["sam"]
    connection = services.connected_person_add(
        person=person, acting_user=crew["broker"], provider=sam, relationship="partner", lives_in_household=True
    )
    elsewhere = user_with_role(Role.ICB_APPROVER)  # an approver of another ICB
    for user in (crew["broker"], crew["coordinator"], elsewhere):
        with pytest.raises(errors.RecordRefused) as refused:
            services.connected_person_approve_necessity(connection=connection, acting_user=user, reasons="Needed")
        assert str(refused.value) == errors.NECESSITY_NOT_APPROVER.format(icb=crew["icb"].name)
    with pytest.raises(errors.ReasonsRequired):
        services.connected_person_approve_necessity(connection=connection, acting_user=crew["approver"], reasons=" ")

    # Someone who is both a broker and an approver may record a connection, but another approver must approve it.
    both = UserFactory(roles=[Role.CARE_BROKER, Role.ICB_APPROVER], organisation=crew["icb"])
    person.assigned_staff.add(both)
    client.force_login(both)
    body = {"provider": Provider.objects.create(name="Jo Robson", kind="personal_assistant").pk}
    client.post(url("person-connected-add", person.pk), {**body, "relationship": "spouse", "lives_in_household": "yes"})
    own = ConnectedPerson.objects.get(person=person, recorded_by=both)
    page = client.get(url("connected-person-necessity", own.pk)).content.decode()
    assert errors.NECESSITY_OWN_RECORD in page and 'name="reasons"' not in page
    refused = client.post(url("connected-person-necessity", own.pk), {"reasons": "Needed"}).content.decode()
    assert SUMMARY in refused and errors.NECESSITY_OWN_RECORD in refused
    with pytest.raises(errors.RecordRefused, match="another approver must approve"):
        services.connected_person_approve_necessity(connection=own, acting_user=both, reasons="Needed")
    connection.refresh_from_db()
    own.refresh_from_db()
    assert connection.blocked and own.blocked
    assert len(events(ConnectedPerson, pgh_obj=connection)) == 1  # only its recording


def test_people_unrelated_to_the_person_get_404_and_change_nothing(client, crew):
    person = crew["person"]
    nominee = services.representative_add(
        person=person,
        acting_user=crew["broker"],
        **NOMINEE,
        nominated_on=datetime.date(2026, 1, 5),
        consent_recorded_on=datetime.date(2026, 1, 6),
    )
    connection = services.connected_person_add(
        person=person, acting_user=crew["broker"], provider=crew["sam"], relationship="spouse", lives_in_household=True
    )
    other = team()  # staff of another ICB, not assigned to this person
    outsiders = [other["broker"], other["coordinator"], other["approver"], user_with_role(Role.PATIENT)]
    pages = {
        url("person-acting", person.pk): {},
        url("person-representative-add", person.pk): {**REPRESENTATIVE, "basis": "adult_lacking_capacity"},
        url("person-connected-add", person.pk): {"provider": crew["sam"].pk, "relationship": "friend"},
        url("representative-end", nominee.pk): {},
        url("connected-person-necessity", connection.pk): {"reasons": "Needed"},
    }
    for user in outsiders:
        client.force_login(user)
        for page, body in pages.items():
            assert client.get(page).status_code == 404, (user, page)
            assert client.post(page, body).status_code == 404, (user, page)
    # The person's ICB approver sees the list but cannot record or end anyone.
    client.force_login(crew["approver"])
    assert client.get(url("person-acting", person.pk)).status_code == 200
    for page in list(pages)[1:4]:
        assert client.get(page).status_code == 404, page
    with pytest.raises(errors.RecordRefused, match=errors.NOT_YOUR_PERSON):
        services.representative_end(representative=nominee, acting_user=other["broker"])
    nominee.refresh_from_db()
    connection.refresh_from_db()
    assert nominee.active and connection.blocked
    assert Representative.objects.filter(person=person).count() == 1
    assert ConnectedPerson.objects.filter(person=person).count() == 1
