"""Changing a support line of a draft plan, through its page and the API: the adding form filled in with the line,
the same checks as adding one (a holder only on a third-party line, amounts, management type), an audit row naming
who changed what, a form opened before someone else's change never overwriting it, and nobody else (nor any plan
past its draft) able to change a line."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from djmoney.money import Money

from accounts.models import OrganisationKind
from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage import services
from brokerage.models import PlanLine, PlanStatus
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.factories import OrganisationFactory, user_with_role

pytestmark = pytest.mark.django_db
SUMMARY = 'class="nhsuk-error-summary"'


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    people["plan"] = complete_plan(person=people["person"], broker=people["broker"], coordinator=people["coordinator"])
    plan = people["plan"]
    people["nursing"] = plan.lines.get(description="District nursing")  # notional, from the directory
    people["pa"] = plan.lines.get(description="Personal assistant, mornings")  # third party
    people["singing"] = plan.lines.get(description="Singing for lung health")  # direct payment
    return people


def change_url(line) -> str:
    return reverse("brokerage:plan-line-change", kwargs={"pk": line.pk})


def support_url(plan) -> str:
    return reverse("brokerage:plan-support", kwargs={"pk": plan.pk})


def banner(response) -> list[str]:
    page = response.content.decode()
    return [html.unescape(text) for text in re.findall(r'role="status">.*?<p>(.*?)</p>', page, re.S)]


def form_of(page: str) -> dict[str, str]:
    """What the change form sends as it was shown: text inputs, the checked radio, selected options."""
    body = dict(re.findall(r'<input[^>]*?name="(\w+)"[^>]*?value="([^"]*)"', page))
    body.update(re.findall(r'<input[^>]*?name="(\w+)"[^>]*?value="([^"]*)"[^>]*?checked', page))
    for name, options in re.findall(r'<select[^>]*?name="(\w+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"\s*selected', options)
        body[name] = chosen.group(1) if chosen else ""
    body.pop("csrfmiddlewaretoken", None)
    return {name: html.unescape(value) for name, value in body.items()}


def line_events(line) -> list:
    return list(
        PlanLine.pgh_event_model.objects.filter(pgh_obj_id=line.pk).order_by("pgh_id").select_related("pgh_context")
    )


def snapshot(line) -> tuple:
    line = PlanLine.objects.get(pk=line.pk)
    return (line.description, line.quantity, line.unit_cost, line.management_type, line.third_party_holder_id)


# --- Through the page ---------------------------------------------------------------------------------------------


def test_a_broker_changes_a_line_from_its_filled_in_form(client, crew):
    plan, nursing = crew["plan"], crew["nursing"]
    client.force_login(crew["broker"])
    support = client.get(support_url(plan)).content.decode()
    for line in (nursing, crew["pa"], crew["singing"]):
        assert f'href="{change_url(line)}"' in support
    assert 'Change<span class="nhsuk-u-visually-hidden"> District nursing</span>' in support

    page = client.get(change_url(nursing)).content.decode()
    assert "Change District nursing" in page
    shown = form_of(page)
    assert shown["description"] == "District nursing" and shown["frequency"] == "2 visits a week"
    assert shown["quantity"] == "104.00" and shown["unit_cost"] == "58.00"
    assert shown["management_type"] == "notional" and shown["service"] == str(nursing.service_id)
    assert shown["outcome"] == str(nursing.outcome_id) and shown["third_party_holder"] == ""
    assert shown["seen"] == services.line_version(nursing)

    before = len(line_events(nursing))
    saved = client.post(change_url(nursing), {**shown, "frequency": "3 visits a week", "quantity": "156"}, follow=True)
    assert saved.redirect_chain == [(support_url(plan), 302)]
    assert banner(saved) == ["District nursing is changed: how often and units a year."]
    nursing.refresh_from_db()
    assert (nursing.frequency, nursing.quantity, nursing.annual_cost) == (
        "3 visits a week",
        Decimal("156"),
        Money("9048.00", "GBP"),
    )
    assert "£9,048.00 a year" in saved.content.decode()
    # One audit row, naming who changed which fields.
    events = line_events(nursing)
    assert len(events) == before + 1
    assert events[-1].pgh_label == "update" and events[-1].quantity == Decimal("156")
    metadata = events[-1].pgh_context.metadata
    assert metadata["user"] == crew["broker"].pk and metadata["action"] == "line_change"
    assert metadata["fields"] == ["frequency", "quantity"]

    # The coordinator works with the person too, and saving what is shown changes nothing (and says so).
    client.force_login(crew["coordinator"])
    unchanged = client.post(change_url(nursing), form_of(client.get(change_url(nursing)).content.decode()), follow=True)
    assert banner(unchanged) == ["Nothing was changed: District nursing was already as shown."]
    assert len(line_events(nursing)) == before + 1


def test_a_line_can_move_to_a_third_party_with_its_holder_and_back(client, crew):
    singing = crew["singing"]
    trust = crew["pa"].third_party_holder
    client.force_login(crew["broker"])
    shown = form_of(client.get(change_url(singing)).content.decode())
    moved = client.post(
        change_url(singing), {**shown, "management_type": "third_party", "third_party_holder": trust.pk}
    )
    assert moved.status_code == 302
    singing.refresh_from_db()
    assert (singing.management_type, singing.third_party_holder) == ("third_party", trust)
    shown = form_of(client.get(change_url(singing)).content.decode())
    assert shown["third_party_holder"] == str(trust.pk)
    back = client.post(change_url(singing), {**shown, "management_type": "direct_payment", "third_party_holder": ""})
    assert back.status_code == 302
    singing.refresh_from_db()
    assert (singing.management_type, singing.third_party_holder) == ("direct_payment", None)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"management_type": "third_party", "third_party_holder": ""}, "third_party_holder", services.HOLDER_REQUIRED),
        ({"third_party_holder": "trust"}, "third_party_holder", services.HOLDER_ONLY_FOR_THIRD_PARTY),
        (
            {"management_type": "third_party", "third_party_holder": "not-independent"},
            "third_party_holder",
            "Select a valid choice",
        ),
        ({"management_type": ""}, "management_type", "Select how the money is managed"),
        ({"management_type": "cash"}, "management_type", "Select a valid choice"),
        ({"quantity": "0"}, "quantity", "Units a year must be more than 0"),
        ({"quantity": "lots"}, "quantity", "Enter a number, like 104"),
        ({"unit_cost": "-3"}, "unit_cost", ""),
        ({"unit_cost": "twelve"}, "unit_cost", "Enter an amount in pounds and pence"),
        ({"frequency": ""}, "frequency", "Enter how often"),
        ({"service": "", "description": "", "category": ""}, "description", "Enter what the support is"),
        ({"category": "other"}, "category", "keeps its own category"),
    ],
)
def test_a_change_the_adding_form_would_refuse_is_refused_the_same_way(client, crew, change, field, message):
    nursing, trust = crew["nursing"], crew["pa"].third_party_holder
    client.force_login(crew["broker"])
    shown = form_of(client.get(change_url(nursing)).content.decode())
    values = {
        "trust": str(trust.pk),
        "not-independent": str(OrganisationFactory(kind=OrganisationKind.PROVIDER).pk),
        "other": str(crew["singing"].category_id),
    }
    typed = {**shown, "frequency": "Twice weekly, typed", **{k: values.get(v, v) for k, v in change.items()}}
    before, events = snapshot(nursing), len(line_events(nursing))
    response = client.post(change_url(nursing), typed)
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert SUMMARY in page and message in page
    assert f'href="#id_{field}"' in page or f'href="#{field}"' in page  # the summary links to the field
    # What was typed is kept, to correct rather than type again, and nothing was saved.
    if "frequency" not in change:
        assert 'value="Twice weekly, typed"' in page
    assert snapshot(nursing) == before and len(line_events(nursing)) == events


def test_a_form_opened_before_someone_else_saved_a_change_never_overwrites_it(client, crew):
    nursing = crew["nursing"]
    client.force_login(crew["broker"])
    stale = form_of(client.get(change_url(nursing)).content.decode())
    # Meanwhile the coordinator changes the line on their own screen.
    services.line_change(
        line=nursing,
        acting_user=crew["coordinator"],
        seen=stale["seen"],
        description="District nursing",
        category=nursing.category,
        outcome=nursing.outcome,
        management_type="notional",
        frequency="2 visits a week",
        quantity=Decimal("52"),
        unit_cost=nursing.unit_cost,
        service=nursing.service,
    )
    events = len(line_events(nursing))
    refused = client.post(change_url(nursing), {**stale, "unit_cost": "60.00"}, follow=True)
    assert refused.redirect_chain == [(change_url(nursing), 302)]
    assert banner(refused) == [errors.LINE_CHANGED_MEANWHILE.format(line="District nursing")]
    nursing.refresh_from_db()
    assert (nursing.quantity, nursing.unit_cost) == (Decimal("52"), Money("58.00", "GBP"))  # theirs is kept
    assert len(line_events(nursing)) == events
    # The page now shows their change, and a form sent from it saves.
    fresh = form_of(refused.content.decode())
    assert fresh["quantity"] == "52.00" and fresh["seen"] != stale["seen"]
    assert client.post(change_url(nursing), {**fresh, "unit_cost": "60.00"}).status_code == 302
    nursing.refresh_from_db()
    assert (nursing.quantity, nursing.unit_cost) == (Decimal("52"), Money("60.00", "GBP"))
    # A stale form whose line was removed meanwhile: the line is gone, so is its page.
    singing, singing_url = crew["singing"], change_url(crew["singing"])
    stale = form_of(client.get(singing_url).content.decode())
    gone = PlanLine.objects.get(pk=singing.pk)
    services.plan_item_remove(plan=crew["plan"], acting_user=crew["coordinator"], item=gone)
    assert client.post(singing_url, stale).status_code == 404
    with pytest.raises(errors.LineChangedMeanwhile, match="no longer in the plan"):
        services.line_change(line=singing, acting_user=crew["broker"], seen=stale["seen"], **values_of(nursing))


def values_of(line) -> dict:
    return {
        "description": line.description,
        "category": line.category,
        "outcome": line.outcome,
        "management_type": line.management_type,
        "frequency": line.frequency,
        "quantity": line.quantity,
        "unit_cost": line.unit_cost,
        "service": line.service,
        "provider": line.provider,
        "third_party_holder": line.third_party_holder,
    }


@pytest.mark.parametrize(
    "who", ["approver", "other_broker", Role.PATIENT, Role.FINANCE_OFFICER, Role.AUDITOR, Role.ADMINISTRATOR]
)
def test_no_one_else_may_change_a_line(client, crew, who):
    nursing = crew["nursing"]
    client.force_login(crew["broker"])
    shown = form_of(client.get(change_url(nursing)).content.decode())
    if who == "approver":
        user = crew["approver"]  # sees the plan, but does not build it
    elif who == "other_broker":
        user = user_with_role(Role.CARE_BROKER, organisation=crew["icb"])  # not assigned to the person
    else:
        user = user_with_role(who, organisation=crew["icb"])
    client.force_login(user)
    before = snapshot(nursing)
    assert client.get(change_url(nursing)).status_code == 404
    assert client.post(change_url(nursing), {**shown, "quantity": "1"}).status_code == 404
    assert snapshot(nursing) == before
    with pytest.raises(errors.BrokerageError):
        services.line_change(
            line=nursing, acting_user=user, seen=shown["seen"], **{**values_of(nursing), "quantity": Decimal("1")}
        )
    assert snapshot(nursing) == before


def test_a_line_cannot_be_changed_once_the_plan_is_past_its_draft(client, crew):
    plan, nursing = crew["plan"], crew["nursing"]
    client.force_login(crew["broker"])
    shown = form_of(client.get(change_url(nursing)).content.decode())
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED
    before = snapshot(nursing)
    assert client.get(change_url(nursing)).status_code == 404
    assert client.post(change_url(nursing), {**shown, "quantity": "1"}).status_code == 404
    assert client.get(support_url(plan)).status_code == 404  # nor added or removed
    with pytest.raises(errors.PlanNotEditable):
        services.line_change(
            line=nursing, acting_user=crew["broker"], seen=shown["seen"], **{**values_of(nursing), "quantity": 1}
        )
    assert snapshot(nursing) == before
    # Returned to the broker and reopened, it is a draft again: its lines can be changed.
    services.plan_return(plan=plan, acting_user=crew["approver"], reasons="Check the nursing visits")
    services.plan_reopen(plan=plan, acting_user=crew["broker"])
    assert client.post(change_url(nursing), {**shown, "quantity": "100"}).status_code == 302


# --- Through the API ----------------------------------------------------------------------------------------------


def test_the_api_changes_a_line_with_the_same_checks_and_refuses_a_stale_version(client, crew):
    nursing = crew["nursing"]
    api = f"/api/brokerage/plan-lines/{nursing.pk}/"
    client.force_login(crew["broker"])
    read = client.get(api).json()
    assert read["version"] == services.line_version(nursing)

    def patch(body):
        return client.patch(api, body, content_type="application/json")

    changed = patch({"version": read["version"], "quantity": "52", "frequency": "1 visit a week"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["quantity"] == "52.00" and changed.json()["annual_cost"] == "3016.00"
    assert changed.json()["version"] != read["version"]
    metadata = line_events(nursing)[-1].pgh_context.metadata
    assert metadata["user"] == crew["broker"].pk and metadata["fields"] == ["frequency", "quantity"]

    stale = patch({"version": read["version"], "quantity": "10"})
    assert stale.status_code == 409 and "Someone else changed" in stale.json()["detail"]
    holder = patch({"version": changed.json()["version"], "third_party_holder": crew["pa"].third_party_holder_id})
    assert holder.status_code == 400 and holder.json() == {
        "detail": services.HOLDER_ONLY_FOR_THIRD_PARTY,
        "field": "third_party_holder",
    }
    for bad in ({"quantity": "0"}, {"unit_cost": "-1"}, {"management_type": "cash"}, {"description": ""}, {}):
        body = {"version": changed.json()["version"], **bad} if bad else {"quantity": "3"}
        assert patch(body).status_code == 400, bad
    other_plan_outcome = complete_plan(
        person=make_person(icb_org=crew["icb"], staff=[crew["broker"]]), broker=crew["broker"]
    ).outcomes.first()
    outcome = patch({"version": changed.json()["version"], "outcome": other_plan_outcome.pk})
    assert outcome.status_code == 400 and outcome.json()["field"] == "outcome"
    nursing.refresh_from_db()
    assert nursing.quantity == Decimal("52")
    assert client.put(api, {}, content_type="application/json").status_code == 405

    # Readers see the line but cannot change it; others do not see it; a submitted plan's lines are fixed.
    for user, answer in ((user_with_role(Role.FINANCE_OFFICER), 409), (user_with_role(Role.PATIENT), 404)):
        client.force_login(user)
        assert patch({"version": changed.json()["version"], "quantity": "1"}).status_code == answer
    services.plan_submit(plan=crew["plan"], acting_user=crew["broker"])
    client.force_login(crew["broker"])
    refused = patch({"version": changed.json()["version"], "quantity": "1"})
    assert refused.status_code == 409 and "only a draft can be changed" in refused.json()["detail"]
    nursing.refresh_from_db()
    assert nursing.quantity == Decimal("52")
