"""Rule 3: the lines cost more than the budget unless an approver records an exception with reasons.

The broker submits such a plan as a request for an exception, with reasons; the approver sees how much it is over
and why, and approves it with an exception (their own reasons) or returns it. Approving it without an exception is
refused. Every other readiness check still stops it being submitted."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from brokerage import exceptions as errors
from brokerage import services
from brokerage import validation as v
from brokerage.models import CarePlan, PlanEvent, PlanStatus
from tests.brokerage.helpers import complete_plan, make_person, team

pytestmark = pytest.mark.django_db

BROKERS_REASONS = "Joan needs two carers for six weeks after her hip operation"
APPROVERS_REASONS = "Agreed at panel on 20 November: short-term increase while Joan recovers"


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    return people


def over_budget(crew) -> CarePlan:
    """Journey 1's plan (£11,428 of support, £572 contingency) with a budget of £11,000: £1,000 over."""
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    eleven = Money(11000, "GBP")
    services.plan_update(plan=plan, acting_user=crew["broker"], section="budget", budget=eleven, funding_icb=eleven)
    assert plan.over_budget_by == Money(1000, "GBP")
    return plan


def submitted_over_budget(crew) -> CarePlan:
    plan = over_budget(crew)
    return services.plan_submit(plan=plan, acting_user=crew["broker"], exception_request_reasons=BROKERS_REASONS)


# --- Services -----------------------------------------------------------------------------------------


def test_the_broker_submits_an_over_budget_plan_only_with_reasons_and_they_are_kept(crew):
    plan = over_budget(crew)
    for reasons in ("", "   "):
        with pytest.raises(errors.ReasonsRequired, match=r"£1,000\.00 more than the budget: give your reasons"):
            services.plan_submit(plan=plan, acting_user=crew["broker"], exception_request_reasons=reasons)
        plan.refresh_from_db()
        assert plan.status == PlanStatus.DRAFT and not plan.transitions.exists()
    services.plan_submit(plan=plan, acting_user=crew["broker"], exception_request_reasons=f" {BROKERS_REASONS} ")
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED
    assert plan.exception_request_reasons == BROKERS_REASONS
    assert plan.exception_reasons == "" and plan.exception_by is None  # asked for, not yet allowed
    event = plan.transitions.get()
    assert (event.transition, event.by, event.reasons) == ("submit", crew["broker"], BROKERS_REASONS)
    # The plan's own history (pghistory) keeps the request too.
    row = CarePlan.pgh_event_model.objects.filter(pgh_obj=plan).order_by("pgh_id").last()
    assert row.exception_request_reasons == BROKERS_REASONS


def test_every_other_readiness_check_still_stops_an_over_budget_plan(crew):
    plan = over_budget(crew)
    plan.risks.all().delete()
    with pytest.raises(errors.TransitionRefused, match="not ready") as refused:
        services.plan_submit(plan=plan, acting_user=crew["broker"], exception_request_reasons=BROKERS_REASONS)
    assert v.RISKS_MISSING in str(refused.value)
    assert "more than the budget" not in str(refused.value)  # that one is asked about, not refused
    plan.refresh_from_db()
    assert plan.status == PlanStatus.DRAFT and plan.exception_request_reasons == ""


def test_approving_an_over_budget_plan_without_an_exception_is_refused(crew):
    plan = submitted_over_budget(crew)
    for reasons in ("", "  "):
        with pytest.raises(errors.ReasonsRequired, match="to approve the plan, record the exception"):
            services.plan_approve(plan=plan, acting_user=crew["approver"], exception_reasons=reasons)
    assert plan.exception_reasons == ""
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED and plan.approved_by is None


def test_the_approver_approves_with_an_exception_and_their_reasons_are_recorded(crew):
    plan = submitted_over_budget(crew)
    services.plan_approve(plan=plan, acting_user=crew["approver"], exception_reasons=APPROVERS_REASONS)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.APPROVED
    assert (plan.exception_reasons, plan.exception_by, plan.approved_by) == (
        APPROVERS_REASONS,
        crew["approver"],
        crew["approver"],
    )
    assert plan.exception_request_reasons == BROKERS_REASONS  # both sides of the exception are kept
    event = plan.transitions.get(transition="approve")
    assert (event.by, event.reasons) == (crew["approver"], APPROVERS_REASONS)


def test_an_exception_is_funded_the_budget_and_the_icb_share_grow_by_the_amount_over(crew):
    """Rule 3's sufficiency: the budget covers the full cost of each line. An approved exception raises the budget
    and the ICB's share by what the lines and contingency cost beyond it, and the budget set up from the plan holds
    the whole year's cost; what the broker asked for stays in the plan's history."""
    from budgets.models import Budget
    from budgets.services import budget_set_up
    from ledger.models import Transfer

    plan = submitted_over_budget(crew)
    services.plan_approve(plan=plan, acting_user=crew["approver"], exception_reasons=APPROVERS_REASONS)
    plan.refresh_from_db()
    twelve = Money(12000, "GBP")
    assert (plan.budget, plan.funding_icb, plan.exception_amount) == (twelve, twelve, Money(1000, "GBP"))
    assert plan.over_budget_by == Money(0, "GBP") and plan.lines_total + plan.contingency_amount == twelve
    assert plan.funding_total == plan.budget  # the split still adds up
    assert Decimal("11000.00") in set(
        CarePlan.pgh_event_model.objects.filter(pgh_obj=plan).values_list("budget", flat=True)
    )  # what was asked for is kept

    services.plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    budget = budget_set_up(plan=plan, acting_user=crew["coordinator"])
    assert Budget.objects.get(pk=budget.pk).annual_pence == 1_200_000
    allocated = Transfer.objects.filter(code="allocation", reference=budget.owner_ref).values_list("amount", flat=True)
    assert sum(allocated) == 1_200_000


def test_a_plan_within_its_budget_adds_nothing_on_approval(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    before = (plan.budget, plan.funding_icb)
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    services.plan_approve(plan=plan, acting_user=crew["approver"], exception_reasons="Looks fine")
    plan.refresh_from_db()
    assert (plan.budget, plan.funding_icb, plan.exception_amount) == (*before, Money(0, "GBP"))


def test_a_refused_approval_leaves_no_exception_behind(crew):
    """Someone who may not approve gives reasons: nothing is recorded, not even on the plan in memory."""
    plan = submitted_over_budget(crew)
    with pytest.raises(errors.TransitionRefused, match="cannot approve"):
        services.plan_approve(plan=plan, acting_user=crew["broker"], exception_reasons=APPROVERS_REASONS)
    assert plan.exception_reasons == ""
    plan.refresh_from_db()
    assert plan.exception_reasons == "" and plan.status == PlanStatus.SUBMITTED


def test_the_approver_may_return_it_and_a_resubmission_within_budget_asks_for_nothing(crew):
    plan = submitted_over_budget(crew)
    services.plan_return(plan=plan, acting_user=crew["approver"], reasons="Reduce the PA hours instead")
    services.plan_reopen(plan=plan, acting_user=crew["broker"])
    twelve = Money(12000, "GBP")
    services.plan_update(plan=plan, acting_user=crew["broker"], section="budget", budget=twelve, funding_icb=twelve)
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED and plan.exception_request_reasons == ""
    services.plan_approve(plan=plan, acting_user=crew["approver"])
    assert plan.status == PlanStatus.APPROVED


def test_reasons_given_for_a_plan_within_its_budget_are_no_exception(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    services.plan_approve(plan=plan, acting_user=crew["approver"], exception_reasons="Looks fine")
    plan.refresh_from_db()
    assert plan.status == PlanStatus.APPROVED and plan.exception_reasons == "" and plan.exception_by is None
    assert plan.transitions.get(transition="approve").reasons == "Looks fine"


# --- Pages --------------------------------------------------------------------------------------------


def page(client, name, pk, data=None):
    url = reverse(name, kwargs={"pk": pk})
    response = client.post(url, data) if data is not None else client.get(url)
    return response, response.content.decode()


def test_the_check_page_offers_to_submit_an_over_budget_plan_as_a_request_for_an_exception(client, crew):
    plan = over_budget(crew)
    client.force_login(crew["broker"])
    _, tasks = page(client, "brokerage:plan", plan.pk)
    assert "Needs an exception" in tasks and "Check and submit" in tasks
    _, check = page(client, "brokerage:plan-check", plan.pk)
    assert "Not ready to submit" not in check
    assert "more than the budget of £11,000.00" in check and "£1,000.00 more than the budget" in check
    assert "Submit and ask for an exception" in check and 'name="exception_request_reasons"' in check

    response, refused = page(client, "brokerage:plan-check", plan.pk, {"exception_request_reasons": "  "})
    assert response.status_code == 200 and "nhsuk-error-summary" in refused
    assert "Enter why you are asking for an exception to the budget" in refused
    assert 'href="#id_exception_request_reasons"' in refused
    plan.refresh_from_db()
    assert plan.status == PlanStatus.DRAFT

    _, done = page(client, "brokerage:plan-check", plan.pk, {"exception_request_reasons": BROKERS_REASONS})
    assert "Plan submitted" in done
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED and plan.exception_request_reasons == BROKERS_REASONS
    row = CarePlan.pgh_event_model.objects.filter(pgh_obj=plan).order_by("pgh_id").last()
    assert row.exception_request_reasons == BROKERS_REASONS
    assert row.pgh_context.metadata["user"] == crew["broker"].pk  # attributed to the broker (R9)


def test_the_check_page_still_refuses_an_over_budget_plan_missing_something_else(client, crew):
    plan = over_budget(crew)
    plan.risks.all().delete()
    client.force_login(crew["broker"])
    _, check = page(client, "brokerage:plan-check", plan.pk)
    assert "Not ready to submit" in check and v.RISKS_MISSING in check and "more than the budget" in check
    assert "Submit for approval" not in check and "Submit and ask for an exception" not in check
    response, refused = page(client, "brokerage:plan-check", plan.pk, {"exception_request_reasons": BROKERS_REASONS})
    assert response.status_code == 200 and "nhsuk-error-summary" in refused and v.RISKS_MISSING in refused
    plan.refresh_from_db()
    assert plan.status == PlanStatus.DRAFT


def test_a_plan_within_its_budget_is_submitted_as_before(client, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    client.force_login(crew["broker"])
    _, check = page(client, "brokerage:plan-check", plan.pk)
    assert "exception_request_reasons" not in check and "Submit for approval" in check
    _, done = page(client, "brokerage:plan-check", plan.pk, {})
    assert "Plan submitted" in done


def test_the_approver_sees_the_request_and_approves_only_with_an_exception(client, crew):
    plan = submitted_over_budget(crew)
    client.force_login(crew["approver"])
    _, decide = page(client, "brokerage:plan-decide", plan.pk)
    assert "The broker asks for an exception to the budget" in decide
    assert "£12,000.00 a year: £1,000.00 more than the budget of £11,000.00" in decide
    assert BROKERS_REASONS in decide and 'name="approve-exception_reasons"' in decide
    assert "raises the budget to £12,000.00 a year: the ICB funds the £1,000.00 over" in decide

    response, refused = page(
        client, "brokerage:plan-decide", plan.pk, {"action": "approve", "approve-exception_reasons": ""}
    )
    assert response.status_code == 200 and "nhsuk-error-summary" in refused
    assert "Enter your reasons for allowing an exception to the budget" in refused
    assert 'href="#id_approve-exception_reasons"' in refused
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED

    response, _ = page(
        client, "brokerage:plan-decide", plan.pk, {"action": "approve", "approve-exception_reasons": APPROVERS_REASONS}
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.status == PlanStatus.APPROVED and plan.exception_by == crew["approver"]
    _, summary = page(client, "brokerage:plan", plan.pk)
    assert APPROVERS_REASONS in summary and BROKERS_REASONS in summary
    assert f"allowed by {crew['approver'].full_name}" in summary
    assert "£1,000.00 added to the budget and the ICB share" in summary and "£12,000.00" in summary
    # The browser's back button, and Approve again: said plainly, not "enter your reasons".
    _, again = page(client, "brokerage:plan-decide", plan.pk, {"action": "approve", "approve-exception_reasons": ""})
    assert "This plan has already been approved" in again and "Enter your reasons" not in again


def test_the_approver_may_return_an_over_budget_plan(client, crew):
    plan = submitted_over_budget(crew)
    client.force_login(crew["approver"])
    response, _ = page(
        client, "brokerage:plan-decide", plan.pk, {"action": "return", "return-reasons": "Reduce the PA hours"}
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.status == PlanStatus.RETURNED and plan.exception_reasons == ""


# --- API ----------------------------------------------------------------------------------------------


def transition(client, plan, name, reasons=""):
    return client.post(
        f"/api/brokerage/plans/{plan.pk}/transition/",
        {"name": name, "reasons": reasons},
        content_type="application/json",
    )


def test_through_the_api_the_reasons_are_the_request_and_then_the_exception(client, crew):
    plan = over_budget(crew)
    client.force_login(crew["broker"])
    assert client.get(f"/api/brokerage/plans/{plan.pk}/").json()["allowed_transitions"] == ["submit"]
    refused = transition(client, plan, "submit")
    assert refused.status_code == 409 and "give your reasons" in refused.json()["detail"]
    assert transition(client, plan, "submit", BROKERS_REASONS).json()["status"] == "submitted"
    client.force_login(crew["approver"])
    refused = transition(client, plan, "approve")
    assert refused.status_code == 409 and "record the exception" in refused.json()["detail"]
    assert transition(client, plan, "approve", APPROVERS_REASONS).json()["status"] == "approved"
    plan.refresh_from_db()
    assert (plan.exception_request_reasons, plan.exception_reasons, plan.exception_by) == (
        BROKERS_REASONS,
        APPROVERS_REASONS,
        crew["approver"],
    )
    assert list(PlanEvent.objects.filter(plan=plan).values_list("transition", "reasons")) == [
        ("submit", BROKERS_REASONS),
        ("approve", APPROVERS_REASONS),
    ]
