"""The plan builder, approver queue and agreement pages, driven through their forms."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import OrganisationKind
from accounts.roles import Role
from brokerage.models import CarePlan, PlanStatus
from tests.brokerage.helpers import complete_plan, icb, make_person, service, team
from tests.factories import OrganisationFactory, user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    return people


def post(client, name, data, **kwargs):
    return client.post(reverse(name, kwargs=kwargs), data)


def test_broker_builds_and_submits_a_plan_through_the_pages(client, crew):
    nursing = service("District nursing visit", "Nursing care", "Northumbria Nursing", cqc="1-1000001", rate="58.00")
    pa = service("PA hours", "Personal assistant support", "Karen Dobson", rate="14.00")
    holder = OrganisationFactory(name="Independent User Trust", kind=OrganisationKind.THIRD_PARTY_HOLDER)
    client.force_login(crew["broker"])
    response = post(client, "brokerage:plan-start", {}, pk=crew["person"].pk)
    plan = CarePlan.objects.get(person=crew["person"])
    assert response["Location"] == reverse("brokerage:plan", kwargs={"pk": plan.pk})
    tasks = client.get(response["Location"]).content.decode()
    assert tasks.count("Incomplete") == 7

    assert (
        post(
            client, "brokerage:plan-section", {"about_me": "Joan loves her garden."}, pk=plan.pk, section="about"
        ).status_code
        == 302
    )
    post(client, "brokerage:plan-needs", {"action": "add_need", "need-description": "Help getting up"}, pk=plan.pk)
    need = plan.needs.get()
    post(
        client,
        "brokerage:plan-needs",
        {"action": "add_outcome", "outcome-description": "Stays at home", "outcome-needs": [need.pk]},
        pk=plan.pk,
    )
    outcome = plan.outcomes.get()
    leisure = nursing.category.__class__.objects.get(name="Leisure and wellbeing").pk
    unnamed = post(
        client,
        "brokerage:plan-support",
        {"action": "add_line", "outcome": outcome.pk, "category": leisure, "management_type": "direct_payment"},
        pk=plan.pk,
    ).content.decode()
    assert "Enter what the support is" in unnamed and not plan.lines.exists()  # no service to name it after
    for line in [
        {
            "service": nursing.pk,  # no description: the service's name is used
            "management_type": "notional",
            "frequency": "2 visits a week",
            "quantity": "104",
        },
        {
            "service": pa.pk,
            "description": "PA mornings",
            "management_type": "third_party",
            "third_party_holder": holder.pk,
            "frequency": "7 hours a week",
            "quantity": "364",
        },
        {
            "description": "Singing lessons",
            "category": leisure,
            "management_type": "direct_payment",
            "frequency": "weekly",
            "quantity": "50",
            "unit_cost": "6.00",
        },
    ]:
        response = post(
            client, "brokerage:plan-support", {"action": "add_line", "outcome": outcome.pk, **line}, pk=plan.pk
        )
        assert response.status_code == 302, response.content.decode()[:3000]
    assert sorted(plan.lines.values_list("description", flat=True)) == [
        "District nursing visit",
        "PA mornings",
        "Singing lessons",
    ]
    post(
        client,
        "brokerage:plan-section",
        {
            "budget": "12000",
            "indicative_budget": "12000",
            "funding_icb": "12000",
            "funding_local_authority": "0",
            "funding_contribution": "0",
        },
        pk=plan.pk,
        section="budget",
    )
    post(
        client,
        "brokerage:plan-section",
        {
            "payment_frequency": "four_weekly",
            "contingency_amount": "500",
            "contingency_description": "Agency cover",
        },
        pk=plan.pk,
        section="payments",
    )
    post(
        client, "brokerage:plan-risks", {"action": "add_risk", "risk": "Falls", "mitigation": "Grab rails"}, pk=plan.pk
    )
    review = (timezone.localdate() + datetime.timedelta(days=90)).isoformat()
    post(
        client,
        "brokerage:plan-section",
        {
            "care_coordinator": crew["coordinator"].pk,
            "health_monitor": "Dr Patel",
            "first_review_date": review,
            "notice_period_days": "28",
        },
        pk=plan.pk,
        section="coordination",
    )

    check = client.get(reverse("brokerage:plan-check", kwargs={"pk": plan.pk})).content.decode()
    assert "Not ready to submit" not in check and "£11,428.00" in check and "Change" in check
    submitted = post(client, "brokerage:plan-check", {}, pk=plan.pk)
    assert "Plan submitted" in submitted.content.decode()
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED


def test_section_forms_show_an_error_summary_and_lose_nothing(client, crew):
    client.force_login(crew["broker"])
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    response = post(
        client,
        "brokerage:plan-section",
        {"budget": "lots", "funding_icb": "-5", "funding_local_authority": "", "funding_contribution": "0"},
        pk=plan.pk,
        section="budget",
    )
    page = response.content.decode()
    assert response.status_code == 200 and "<title>Error: Budget and funding" in page
    assert "Enter an amount in pounds and pence" in page and "cannot be negative" in page
    plan.refresh_from_db()
    assert plan.budget.amount == 12000
    review_before = plan.first_review_date
    past = post(
        client,
        "brokerage:plan-section",
        {
            "care_coordinator": crew["coordinator"].pk,
            "health_monitor": "Dr Patel",
            "first_review_date": "2020-01-01",
            "notice_period_days": "28",
        },
        pk=plan.pk,
        section="coordination",
    ).content.decode()
    assert "There is a problem" in past and "The first review date must be today or in the future" in past
    plan.refresh_from_db()
    assert plan.first_review_date == review_before


def test_approver_returns_then_approves_and_broker_records_agreement(client, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    client.force_login(crew["broker"])
    post(client, "brokerage:plan-check", {}, pk=plan.pk)
    client.force_login(crew["approver"])
    queue = client.get(reverse("brokerage:approvals")).content.decode()
    assert crew["person"].full_name in queue
    empty = post(client, "brokerage:plan-decide", {"action": "return", "return-reasons": ""}, pk=plan.pk)
    assert "Enter why you are returning the plan" in empty.content.decode()
    post(client, "brokerage:plan-decide", {"action": "return", "return-reasons": "Add PA payroll"}, pk=plan.pk)
    client.force_login(crew["broker"])
    assert "Add PA payroll" in client.get(reverse("brokerage:plan", kwargs={"pk": plan.pk})).content.decode()
    post(client, "brokerage:plan-reopen", {}, pk=plan.pk)
    post(client, "brokerage:plan-check", {}, pk=plan.pk)
    client.force_login(crew["approver2"])
    post(client, "brokerage:plan-decide", {"action": "approve", "approve-exception_reasons": ""}, pk=plan.pk)
    client.force_login(crew["broker"])
    today = timezone.localdate()
    agreement = {"agreed_by_name": "Joan Robson", "icb_signatory": crew["approver2"].pk}
    # An agreement is recorded once it has happened: the record is permanent.
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()
    refused = post(client, "brokerage:plan-agreement", {**agreement, "agreed_on": tomorrow}, pk=plan.pk)
    assert refused.status_code == 200
    assert "The date they agreed must be today or in the past" in refused.content.decode()
    assert 'href="#id_agreed_on"' in refused.content.decode()  # the error summary links to the field
    agreed = post(client, "brokerage:plan-agreement", {**agreement, "agreed_on": today.isoformat()}, pk=plan.pk)
    assert agreed.status_code == 302
    plan.refresh_from_db()
    assert plan.status == PlanStatus.AGREED
    history = client.get(reverse("brokerage:plan-history", kwargs={"pk": plan.pk})).content.decode()
    assert history.count("nhsuk-table__row") == 6 and "Add PA payroll" in history


@pytest.mark.parametrize(
    "role",
    [Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.ICB_APPROVER, Role.PATIENT, Role.NOMINEE, Role.THIRD_PARTY_STAFF],
)
def test_other_peoples_records_are_not_found(client, crew, role):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    client.force_login(user_with_role(role, organisation=icb("Elsewhere ICB")))
    for name, kwargs in [
        ("brokerage:person", {"pk": crew["person"].pk}),
        ("brokerage:plan", {"pk": plan.pk}),
        ("brokerage:plan-needs", {"pk": plan.pk}),
        ("brokerage:plan-support", {"pk": plan.pk}),
        ("brokerage:plan-check", {"pk": plan.pk}),
        ("brokerage:plan-decide", {"pk": plan.pk}),
        ("brokerage:plan-agreement", {"pk": plan.pk}),
        ("brokerage:plan-history", {"pk": plan.pk}),
        ("brokerage:plan-section", {"pk": plan.pk, "section": "about"}),
    ]:
        assert client.get(reverse(name, kwargs=kwargs)).status_code == 404, name


def test_the_author_cannot_open_the_decision_page_for_their_own_plan(client, crew):
    crew["broker"].role_memberships.create(role=Role.ICB_APPROVER)
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    client.force_login(crew["broker"])
    post(client, "brokerage:plan-check", {}, pk=plan.pk)
    assert client.get(reverse("brokerage:plan-decide", kwargs={"pk": plan.pk})).status_code == 404
    assert crew["person"].full_name not in client.get(reverse("brokerage:approvals")).content.decode()


def test_reconsideration_is_recorded_by_the_coordinator_and_decided_by_an_approver(client, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    client.force_login(crew["coordinator"])
    url = reverse("brokerage:plan-reconsideration", kwargs={"pk": plan.pk})
    refused = client.post(url, {"action": "request", "request-requested_by_name": "Joan", "request-reasons": ""})
    assert "Enter their reasons" in refused.content.decode()
    client.post(
        url,
        {
            "action": "request",
            "request-requested_by_name": "Joan Robson",
            "request-reasons": "My consultant recommends singing",
        },
    )
    assert plan.reconsiderations.get().pending
    client.force_login(crew["approver"])
    client.post(url, {"action": "decide", "decide-decision": "changed", "decide-reasons": "Evidence supplied"})
    decided = plan.reconsiderations.get()
    assert (decided.decision, decided.decided_by) == ("changed", crew["approver"])
    assert "Evidence supplied" in client.get(url).content.decode()
    client.force_login(user_with_role(Role.CARE_BROKER, organisation=crew["icb"]))  # not assigned
    assert client.get(url).status_code == 404


def test_dashboards_lead_with_the_plans_waiting_on_each_role(client, crew):
    from brokerage import services as plans

    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    client.force_login(crew["broker"])
    dashboard = reverse("accounts:role-dashboard", kwargs={"role": "care_broker"})
    assert "None of your people's plans is waiting on you." in client.get(dashboard).content.decode()
    plans.plan_submit(plan=plan, acting_user=crew["broker"])

    client.force_login(crew["approver"])
    page = client.get(reverse("accounts:role-dashboard", kwargs={"role": "icb_approver"})).content.decode()
    assert "1 plan to approve or return" in page
    assert reverse("brokerage:plan-decide", kwargs={"pk": plan.pk}) in page and crew["person"].full_name in page
    plans.plan_approve(plan=plan, acting_user=crew["approver"])
    page = client.get(reverse("accounts:role-dashboard", kwargs={"role": "icb_approver"})).content.decode()
    assert "No plans are waiting for approval." in page

    client.force_login(crew["broker"])
    page = client.get(dashboard).content.decode()
    assert f"{crew['person'].full_name}</a>: approved: record the person" in page
    stranger = user_with_role(Role.CARE_BROKER, organisation=icb("Elsewhere ICB"))
    client.force_login(stranger)  # not their person: not on their dashboard
    assert crew["person"].full_name not in client.get(dashboard).content.decode()
