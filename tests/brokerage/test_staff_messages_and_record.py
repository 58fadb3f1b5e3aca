"""The person's record page shows the local authority and the address on one line, properly joined; adding a nominee
or a connected person, approving a necessity and removing a support line each say what happened on the page the
user lands on."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from accounts.models import OrganisationKind
from brokerage import services
from brokerage.models import ConnectedPerson, PlanLine, Representative
from providers.models import Provider
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.factories import OrganisationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    return people


def url(name: str, pk: int) -> str:
    return reverse(f"brokerage:{name}", kwargs={"pk": pk})


def banner(response) -> list[str]:
    """The messages shown at the top of the page (layouts/base.jinja)."""
    page = response.content.decode()
    return [html.unescape(text) for text in re.findall(r'role="status">.*?<p>(.*?)</p>', page, re.S)]


def summary_row(page: str, key: str) -> str:
    """The value of a summary list row, and its Change link if it has one."""
    found = re.search(
        r'<dt class="nhsuk-summary-list__key"\s*>\s*' + re.escape(key) + r"\s*</dt>(.*?)</div>", page, re.S
    )
    assert found, key
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))).strip()


# --- The person's record page -------------------------------------------------------------------------------------


def test_the_record_shows_the_local_authority_and_the_address_lines_joined_by_commas(client, crew):
    """Defect: "1 High Street" and "Leeds" on two lines showed as "1 High StreetLeeds", and the local authority
    (who shares the cost of an integrated budget) was not on the page."""
    person = crew["person"]
    person.address = "1 High Street\r\nChapel Allerton,\nLeeds\n\n"
    person.save(update_fields=["address"])
    client.force_login(crew["broker"])
    page = client.get(url("person", person.pk)).content.decode()
    assert summary_row(page, "Address").startswith("1 High Street, Chapel Allerton, Leeds, NE1 6AE")
    assert summary_row(page, "Local authority") == "None recorded"

    council = OrganisationFactory(name="Leeds City Council", kind=OrganisationKind.LOCAL_AUTHORITY)
    person.local_authority = council
    person.save(update_fields=["local_authority"])
    page = client.get(url("person", person.pk)).content.decode()
    # The person-change page does not change the local authority (it decides who is recharged): no Change link.
    assert summary_row(page, "Local authority") == "Leeds City Council"
    assert "Change" in summary_row(page, "Address")
    assert person.address_on_one_line == "1 High Street, Chapel Allerton, Leeds, NE1 6AE"


# --- Success messages ---------------------------------------------------------------------------------------------


def test_adding_a_nominee_says_who_now_acts_for_the_person(client, crew):
    person = crew["person"]
    client.force_login(crew["broker"])
    body = {
        "kind": "nominee",
        "name": "Aisha Robson",
        "relationship": "daughter",
        "nominated_on": "2026-01-05",
        "consent_recorded_on": "2026-01-06",
    }
    added = client.post(url("person-representative-add", person.pk), body, follow=True)
    assert added.redirect_chain == [(url("person-acting", person.pk), 302)]
    assert Representative.objects.get(person=person).name == "Aisha Robson"
    assert banner(added) == [
        "Aisha Robson is recorded as Joan Robson's nominee: they can now receive or manage the direct payment for them."
    ]
    refused = client.post(url("person-representative-add", person.pk), {**body, "consent_recorded_on": ""})
    assert refused.status_code == 200 and banner(refused) == []


def test_adding_a_connected_person_says_whether_paying_them_is_blocked(client, crew):
    person = crew["person"]
    sam = Provider.objects.create(name="Sam Robson", kind="personal_assistant")
    pat = Provider.objects.create(name="Pat Robson", kind="personal_assistant")
    client.force_login(crew["coordinator"])
    spouse = client.post(
        url("person-connected-add", person.pk),
        {"provider": sam.pk, "relationship": "spouse", "lives_in_household": "yes"},
        follow=True,
    )
    assert spouse.redirect_chain == [(url("person-acting", person.pk), 302)]
    assert banner(spouse) == [
        "Sam Robson is recorded as Joan Robson's spouse or civil partner. Paying them is blocked until an ICB "
        "approver records that it is necessary."
    ]
    friend = client.post(
        url("person-connected-add", person.pk),
        {"provider": pat.pk, "relationship": "friend", "lives_in_household": "no"},
        follow=True,
    )
    assert banner(friend) == [
        "Pat Robson is recorded as Joan Robson's friend. Paying them needs no necessity approval: they are not a "
        "spouse or partner and do not live in the same household."
    ]
    assert ConnectedPerson.objects.filter(person=person).count() == 2


def test_approving_a_necessity_says_the_connected_person_can_now_be_paid(client, crew):
    person = crew["person"]
    sam = Provider.objects.create(name="Sam Robson", kind="personal_assistant")
    connection = services.connected_person_add(
        person=person, acting_user=crew["broker"], provider=sam, relationship="spouse", lives_in_household=True
    )
    client.force_login(crew["approver"])
    approved = client.post(
        url("connected-person-necessity", connection.pk),
        {"reasons": "No agency covers the village before 7am."},
        follow=True,
    )
    assert approved.redirect_chain == [(url("person-acting", person.pk), 302)]
    assert banner(approved) == [
        "The necessity approval is recorded: Sam Robson can now be paid from Joan Robson's budget."
    ]
    connection.refresh_from_db()
    assert not connection.blocked


def test_removing_a_support_line_names_the_line_removed(client, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    line = plan.lines.get(description="Singing for lung health")
    client.force_login(crew["broker"])
    removed = client.post(url("plan-support", plan.pk), {"action": "remove_line", "remove": str(line.pk)}, follow=True)
    assert removed.redirect_chain == [(url("plan-support", plan.pk), 302)]
    assert banner(removed) == ["Singing for lung health is removed from the plan."]
    assert not PlanLine.objects.filter(pk=line.pk).exists()
    # Removing it again (the back button) is a problem to show, not a success.
    again = client.post(url("plan-support", plan.pk), {"action": "remove_line", "remove": str(line.pk)})
    assert again.status_code == 200 and banner(again) == []
    assert "That item is no longer in the plan" in again.content.decode()
    for junk in ("", "x", "9" * 40):
        assert client.post(url("plan-support", plan.pk), {"action": "remove_line", "remove": junk}).status_code == 200
