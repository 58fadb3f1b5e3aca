"""Checks and messages QA found wrong on the plan and person pages: a third-party holder on a line that is not
third party, an agreement dated before the approval, lower-cased abbreviations, a date of birth before 1900
called "in the future", two messages for one amount, and "a plan that is approved cannot be approved"."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import OrganisationKind
from brokerage import exceptions as errors
from brokerage import services
from brokerage import validation as v
from brokerage.models import CarePlan, ManagementType, PlanLine, PlanStatus
from tests.brokerage.helpers import complete_plan, make_person, service, team
from tests.factories import OrganisationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    return people


def post(client, name, data, **kwargs):
    response = client.post(reverse(name, kwargs=kwargs), data)
    return response, response.content.decode()


# --- A third-party holder only on a third-party line ----------------------------------------------------


@pytest.fixture
def draft(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    plan.holder = OrganisationFactory(name="Tyneside Holders CIC", kind=OrganisationKind.THIRD_PARTY_HOLDER)
    plan.gym = service("Gym membership", "Leisure and wellbeing", "City Gym", rate="30.00", unit="month")
    return plan


def add_line(crew, plan, **fields):
    return services.line_add(
        plan=plan,
        acting_user=crew["broker"],
        description="Gym membership",
        category=plan.gym.category,
        outcome=plan.outcomes.first(),
        frequency="monthly",
        quantity=Decimal("12"),
        unit_cost=plan.gym.unit_rate,
        service=plan.gym,
        **fields,
    )


@pytest.mark.parametrize("management_type", [ManagementType.NOTIONAL, ManagementType.DIRECT_PAYMENT])
def test_the_support_page_refuses_a_holder_on_a_line_that_is_not_third_party(client, crew, draft, management_type):
    client.force_login(crew["broker"])
    before = draft.lines.count()
    response, page = post(
        client,
        "brokerage:plan-support",
        {
            "action": "add_line",
            "service": draft.gym.pk,
            "outcome": draft.outcomes.first().pk,
            "management_type": management_type,
            "third_party_holder": draft.holder.pk,
            "frequency": "monthly",
            "quantity": "12",
        },
        pk=draft.pk,
    )
    assert response.status_code == 200 and "nhsuk-error-summary" in page
    assert "Choose a third-party holder only for a third-party budget line" in page
    assert 'href="#id_third_party_holder"' in page  # on the holder field
    assert draft.lines.count() == before


def test_the_support_page_still_needs_a_holder_for_a_third_party_line(client, crew, draft):
    client.force_login(crew["broker"])
    line = {
        "action": "add_line",
        "service": draft.gym.pk,
        "outcome": draft.outcomes.first().pk,
        "management_type": "third_party",
        "frequency": "monthly",
        "quantity": "12",
    }
    response, page = post(client, "brokerage:plan-support", line, pk=draft.pk)
    assert response.status_code == 200 and "Select the organisation that will hold the money" in page
    assert 'href="#id_third_party_holder"' in page
    response, _ = post(client, "brokerage:plan-support", {**line, "third_party_holder": draft.holder.pk}, pk=draft.pk)
    assert response.status_code == 302
    assert draft.lines.get(description="Gym membership").third_party_holder == draft.holder


def test_the_service_refuses_a_holder_that_does_not_fit_the_line(crew, draft):
    """API and other callers of the service get the same checks as the page."""
    before = draft.lines.count()
    for management_type in (ManagementType.NOTIONAL, ManagementType.DIRECT_PAYMENT):
        with pytest.raises(errors.TransitionRefused, match="only for a third-party budget line"):
            add_line(crew, draft, management_type=management_type, third_party_holder=draft.holder)
    with pytest.raises(errors.TransitionRefused, match="Select the organisation that will hold the money"):
        add_line(crew, draft, management_type=ManagementType.THIRD_PARTY)
    with pytest.raises(errors.TransitionRefused, match="independent of the NHS"):
        add_line(crew, draft, management_type=ManagementType.THIRD_PARTY, third_party_holder=crew["icb"])
    assert draft.lines.count() == before
    line = add_line(crew, draft, management_type=ManagementType.THIRD_PARTY, third_party_holder=draft.holder)
    assert line.third_party_holder == draft.holder
    assert add_line(crew, draft, management_type=ManagementType.NOTIONAL).third_party_holder is None


def test_a_line_saved_with_a_holder_before_the_fix_stops_the_plan_being_submitted(crew, draft):
    line = draft.lines.get(management_type=ManagementType.NOTIONAL)
    PlanLine.objects.filter(pk=line.pk).update(third_party_holder=draft.holder)
    problems = [p.message for p in v.plan_problems(draft)]
    assert v.LINE_HOLDER_NOT_THIRD_PARTY.format(line=line.description) in problems
    with pytest.raises(errors.TransitionRefused, match="not a third-party line"):
        services.plan_submit(plan=draft, acting_user=crew["broker"])


# --- The agreement is dated from the approval to today -----------------------------------------------------


@pytest.fixture
def approved(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    services.plan_approve(plan=plan, acting_user=crew["approver"])
    return plan


def test_the_agreement_cannot_be_dated_before_the_plan_was_approved(crew, approved):
    approved_on = timezone.localdate(approved.approved_at)
    for day in (datetime.date(2020, 1, 1), approved_on - datetime.timedelta(days=1)):
        with pytest.raises(errors.TransitionRefused, match="cannot be before the plan was approved on"):
            services.plan_record_agreement(
                plan=approved,
                acting_user=crew["broker"],
                agreed_by_name="Edna Walker",
                agreed_on=day,
                icb_signatory=crew["approver"],
            )
    approved.refresh_from_db()
    assert approved.status == PlanStatus.APPROVED and approved.agreed_on is None


def test_the_agreement_page_shows_the_date_error_on_the_date(client, crew, approved):
    approved_on = timezone.localdate(approved.approved_at)
    client.force_login(crew["broker"])
    agreement = {"agreed_by_name": "Edna Walker", "icb_signatory": crew["approver"].pk}
    typed = {"agreed_on[day]": "1", "agreed_on[month]": "1", "agreed_on[year]": "2020"}
    response, page = post(client, "brokerage:plan-agreement", {**agreement, **typed}, pk=approved.pk)
    assert response.status_code == 200 and "nhsuk-error-summary" in page
    day = f"{approved_on.day} {approved_on:%B %Y}"
    assert f"The date they agreed cannot be before the plan was approved on {day}" in page
    assert 'href="#id_agreed_on"' in page
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    _, page = post(client, "brokerage:plan-agreement", {**agreement, "agreed_on": tomorrow}, pk=approved.pk)
    assert "The date they agreed must be today or in the past" in page
    approved.refresh_from_db()
    assert approved.status == PlanStatus.APPROVED
    response, _ = post(client, "brokerage:plan-agreement", {**agreement, "agreed_on": approved_on}, pk=approved.pk)
    assert response.status_code == 302
    approved.refresh_from_db()
    assert approved.status == PlanStatus.AGREED and approved.agreed_on == approved_on


# --- Messages -------------------------------------------------------------------------------------------


def test_the_budget_page_writes_icb_in_capitals(client, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    client.force_login(crew["broker"])
    budget = {"budget": "12000", "funding_local_authority": "0", "funding_contribution": "0"}
    _, empty = post(client, "brokerage:plan-section", {**budget, "funding_icb": ""}, pk=plan.pk, section="budget")
    assert "Enter the ICB share" in empty and "icb share" not in empty
    _, negative = post(client, "brokerage:plan-section", {**budget, "funding_icb": "-1"}, pk=plan.pk, section="budget")
    assert "The ICB share cannot be negative" in negative
    _, other = post(client, "brokerage:plan-section", {**budget, "budget": ""}, pk=plan.pk, section="budget")
    assert "Enter the budget a year" in other  # other labels still read as part of the sentence


def test_a_date_of_birth_before_1900_says_so(client, crew):
    client.force_login(crew["broker"])
    _, page = post(client, "brokerage:person-add", {"date_of_birth": "1800-01-01"})
    assert "The date of birth must be on or after 1 January 1900" in page and 'id="id_date_of_birth-error"' in page
    assert "must be in the past" not in page
    future = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    _, page = post(client, "brokerage:person-add", {"date_of_birth": future})
    assert "The date of birth must be in the past" in page
    _, page = post(client, "brokerage:person-add", {"date_of_birth": "1900-01-01"})
    assert 'id="id_date_of_birth-error"' not in page  # the earliest date accepted


def test_an_amount_far_too_big_gets_one_message(client, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    client.force_login(crew["broker"])
    _, page = post(
        client,
        "brokerage:plan-support",
        {
            "action": "add_line",
            "description": "Gym",
            "category": plan.lines.first().category_id,
            "outcome": plan.outcomes.first().pk,
            "management_type": "direct_payment",
            "frequency": "monthly",
            "quantity": "12",
            "unit_cost": "99999999999",
        },
        pk=plan.pk,
    )
    assert "The cost per unit must be less than £10,000,000" in page
    assert "Enter an amount in pounds and pence" not in page
    _, page = post(
        client,
        "brokerage:plan-support",
        {"action": "add_line", "outcome": plan.outcomes.first().pk, "unit_cost": "12.345"},
        pk=plan.pk,
    )
    assert "Enter an amount in pounds and pence, like 1250.00" in page  # still said when it is the problem


def test_approving_again_says_the_plan_has_already_been_approved(client, crew, approved):
    with pytest.raises(errors.TransitionRefused, match=r"^This plan has already been approved$"):
        services.plan_approve(plan=approved, acting_user=crew["approver"])
    client.force_login(crew["approver"])  # the browser's back button, and Approve again
    response, page = post(
        client, "brokerage:plan-decide", {"action": "approve", "approve-exception_reasons": ""}, pk=approved.pk
    )
    assert response.status_code == 200 and "nhsuk-error-summary" in page
    assert "This plan has already been approved" in page and "cannot be approved" not in page


def test_every_transition_says_when_the_plan_is_already_where_it_leads():
    transitions = CarePlan(status=PlanStatus.DRAFT).get_all_status_transitions()
    assert {t.name for t in transitions} == set(services.ALREADY)
    for t in transitions:
        plan = CarePlan(status=t.target)
        with pytest.raises(errors.TransitionRefused) as refused:
            services.plan_transition(plan=plan, name=t.name, acting_user=None)
        assert str(refused.value) == services.ALREADY[t.name], t.name
    # From any other state the plain message stays.
    with pytest.raises(errors.TransitionRefused, match="A plan that is draft cannot be approved"):
        services.plan_transition(plan=CarePlan(status=PlanStatus.DRAFT), name="approve", acting_user=None)
