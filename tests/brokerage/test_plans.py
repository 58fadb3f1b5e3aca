"""Care and support plans: contents, the state machine, separation of duties, audit and variations."""

from decimal import Decimal

import pytest
from django.utils import timezone
from djmoney.money import Money

from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage import selectors, services
from brokerage import validation as v
from brokerage.models import ConnectedPerson, Person, PlanEvent, PlanStatus, Relationship
from tests.brokerage.helpers import complete_plan, icb, make_person, service, team
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    return people


def messages(plan):
    return [problem.message for problem in v.plan_problems(plan)]


def test_a_complete_three_line_plan_has_no_problems(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    assert messages(plan) == []
    assert plan.lines_total == Money("11428.00", "GBP")
    assert {line.management_type for line in plan.lines.all()} == {"notional", "third_party", "direct_payment"}


def test_an_empty_plan_lists_everything_rule_2_requires(crew):
    plan = services.plan_create(person=crew["person"], acting_user=crew["broker"])
    services.plan_update(
        plan=plan, acting_user=crew["broker"], section="coordination", care_coordinator=None, health_monitor=""
    )
    found = messages(plan)
    for expected in [
        v.ABOUT_MISSING,
        v.NEEDS_MISSING,
        v.OUTCOMES_MISSING,
        v.LINES_MISSING,
        v.BUDGET_MISSING,
        v.CONTINGENCY_MISSING,
        v.RISKS_MISSING,
        v.COORDINATOR_MISSING,
        v.MONITOR_MISSING,
        v.REVIEW_DATE_MISSING,
    ]:
        assert expected in found
    with pytest.raises(errors.TransitionRefused, match="not ready"):
        services.plan_submit(plan=plan, acting_user=crew["broker"])
    assert plan.status == PlanStatus.DRAFT


def test_prohibited_category_blocks_submission(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    beer = service("Real ale", "Alcohol", "The Crown")
    services.line_add(
        plan=plan,
        acting_user=crew["broker"],
        description="Beer",
        category=beer.category,
        outcome=plan.outcomes.first(),
        management_type="direct_payment",
        frequency="weekly",
        quantity=Decimal("1"),
        unit_cost=beer.unit_rate,
        service=beer,
    )
    assert any("cannot pay for" in m for m in messages(plan))
    with pytest.raises(errors.TransitionRefused):
        services.plan_submit(plan=plan, acting_user=crew["broker"])


def test_registered_category_needs_a_registered_provider(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    care = service("Personal care", "Personal care", "Unregistered Helpers")  # no CQC number
    services.line_add(
        plan=plan,
        acting_user=crew["broker"],
        description="Morning care",
        category=care.category,
        outcome=plan.outcomes.first(),
        management_type="notional",
        frequency="daily",
        quantity=Decimal("1"),
        unit_cost=care.unit_rate,
        service=care,
    )
    assert any("Care Quality Commission registration" in m for m in messages(plan))
    care.provider.cqc_registration = "1-2223334445"
    care.provider.save()
    bigger = Money(13000, "GBP")  # the morning care needs a bigger budget too
    services.plan_update(plan=plan, acting_user=crew["broker"], section="budget", budget=bigger, funding_icb=bigger)
    assert messages(plan) == []
    # Filing the service under a category that needs no registration would skip the check: refused.
    with pytest.raises(errors.TransitionRefused, match="keeps its own category, Personal care"):
        services.line_add(
            plan=plan,
            acting_user=crew["broker"],
            description="Morning care, filed elsewhere",
            category=service("Gym", "Leisure and wellbeing", "City Gym").category,
            outcome=plan.outcomes.first(),
            management_type="notional",
            frequency="daily",
            quantity=Decimal("1"),
            unit_cost=care.unit_rate,
            service=care,
        )


def test_lines_over_budget_need_an_approvers_exception(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    services.plan_update(
        plan=plan,
        acting_user=crew["broker"],
        section="budget",
        budget=Money(11000, "GBP"),
        funding_icb=Money(11000, "GBP"),
    )
    assert any("more than the budget" in m for m in messages(plan))
    # The broker may submit it only as a request for an exception, with reasons (test_budget_exception.py).
    with pytest.raises(errors.ReasonsRequired, match="give your reasons for asking for an exception"):
        services.plan_submit(plan=plan, acting_user=crew["broker"])
    assert plan.status == PlanStatus.DRAFT
    plan.exception_reasons = "Agreed at panel: short-term increase while Joan recovers from surgery"
    assert messages(plan) == []


def test_the_budget_must_cover_the_support_and_the_contingency_kept_apart(crew):
    """Setting the budget up puts the contingency in its own account: support costing the whole budget would run
    out before the year's end."""
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    assert plan.contingency_amount.amount > 0
    whole = plan.lines_total
    services.plan_update(plan=plan, acting_user=crew["broker"], section="budget", budget=whole, funding_icb=whole)
    both = whole + plan.contingency_amount
    assert f"and the contingency ({plan.contingency_amount}) come to {both} a year" in " ".join(messages(plan))
    services.plan_update(plan=plan, acting_user=crew["broker"], section="budget", budget=both, funding_icb=both)
    assert messages(plan) == []


def test_funding_split_must_add_up(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    services.plan_update(
        plan=plan,
        acting_user=crew["broker"],
        section="budget",
        funding_icb=Money(9000, "GBP"),
        funding_local_authority=Money(2000, "GBP"),
        funding_contribution=Money(500, "GBP"),
    )
    assert any("must add up to the budget" in m for m in messages(plan))
    services.plan_update(
        plan=plan, acting_user=crew["broker"], section="budget", funding_contribution=Money(1000, "GBP")
    )
    assert messages(plan) == []


def test_connected_person_needs_a_dated_necessity_approval(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    pa_line = plan.lines.get(management_type="third_party")
    link = ConnectedPerson.objects.create(
        person=crew["person"], provider=pa_line.provider, relationship=Relationship.FAMILY, lives_in_household=True
    )
    assert any("necessity approval" in m for m in messages(plan))
    services.connected_person_approve_necessity(
        connection=link, acting_user=crew["approver"], reasons="No agency covers the village at 6am"
    )
    assert messages(plan) == []


def test_a_friend_outside_the_household_needs_no_approval(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    pa_line = plan.lines.get(management_type="third_party")
    ConnectedPerson.objects.create(person=crew["person"], provider=pa_line.provider, relationship=Relationship.FRIEND)
    assert messages(plan) == []


def test_third_party_holder_must_be_independent(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    line = plan.lines.get(management_type="third_party")
    line.third_party_holder = crew["icb"]
    line.save()
    assert any("independent of the NHS" in m for m in messages(plan))


def submitted(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    return services.plan_submit(plan=plan, acting_user=crew["broker"])


def test_journey_submit_return_fix_approve_agree_with_an_audit_row_each(crew):
    plan = submitted(crew)
    with pytest.raises(errors.ReasonsRequired):
        services.plan_return(plan=plan, acting_user=crew["approver"], reasons=" ")
    services.plan_return(plan=plan, acting_user=crew["approver"], reasons="Add the cost of payroll for the PA")
    assert plan.status == PlanStatus.RETURNED
    services.plan_reopen(plan=plan, acting_user=crew["broker"])
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    services.plan_approve(plan=plan, acting_user=crew["approver"])
    services.plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    plan.refresh_from_db()
    assert plan.status == PlanStatus.AGREED
    assert (plan.approved_by, plan.icb_signatory, plan.agreed_by_name) == (
        crew["approver"],
        crew["approver"],
        "Joan Robson",
    )
    events = list(PlanEvent.objects.filter(plan=plan).values_list("transition", "from_status", "to_status", "by"))
    assert events == [
        ("submit", "draft", "submitted", crew["broker"].pk),
        ("return_to_broker", "submitted", "returned", crew["approver"].pk),
        ("reopen", "returned", "draft", crew["broker"].pk),
        ("submit", "draft", "submitted", crew["broker"].pk),
        ("approve", "submitted", "approved", crew["approver"].pk),
        ("record_agreement", "approved", "agreed", crew["broker"].pk),
    ]
    assert (
        PlanEvent.objects.get(plan=plan, transition="return_to_broker").reasons == "Add the cost of payroll for the PA"
    )


def test_approver_never_approves_their_own_plan(crew):
    person = make_person(icb_org=crew["icb"], staff=[crew["approver"]])
    crew["approver"].role_memberships.create(role=Role.CARE_BROKER)
    approver = type(crew["approver"]).objects.get(pk=crew["approver"].pk)  # fresh role cache
    plan = complete_plan(person=person, broker=approver)
    services.plan_submit(plan=plan, acting_user=approver)
    with pytest.raises(errors.TransitionRefused, match="cannot approve"):
        services.plan_approve(plan=plan, acting_user=approver)
    assert plan not in selectors.approval_queue(approver)
    services.plan_approve(plan=plan, acting_user=crew["approver2"])
    assert plan.status == PlanStatus.APPROVED


@pytest.mark.parametrize("role", [Role.CARE_BROKER, Role.FINANCE_OFFICER, Role.PATIENT, Role.AUDITOR])
def test_only_approvers_approve_or_return(crew, role):
    plan = submitted(crew)
    outsider = user_with_role(role, organisation=crew["icb"])
    for action in (
        lambda: services.plan_approve(plan=plan, acting_user=outsider),
        lambda: services.plan_return(plan=plan, acting_user=outsider, reasons="No"),
    ):
        with pytest.raises(errors.TransitionRefused):
            action()
    assert plan.status == PlanStatus.SUBMITTED


def test_an_approver_from_another_icb_cannot_decide(crew):
    plan = submitted(crew)
    elsewhere = user_with_role(Role.ICB_APPROVER, organisation=icb("Another ICB"))
    with pytest.raises(errors.TransitionRefused):
        services.plan_approve(plan=plan, acting_user=elsewhere)


def test_transitions_refused_from_the_wrong_state(crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"])
    with pytest.raises(errors.TransitionRefused):
        services.plan_approve(plan=plan, acting_user=crew["approver"])  # still a draft
    with pytest.raises(errors.TransitionRefused, match="cannot be agreed"):
        services.plan_record_agreement(
            plan=plan,
            acting_user=crew["broker"],
            agreed_by_name="Joan",
            agreed_on=timezone.localdate(),
            icb_signatory=crew["approver"],
        )
    with pytest.raises(errors.TransitionRefused):
        services.plan_transition(plan=plan, name="activate", acting_user=crew["broker"])


def test_a_submitted_plan_cannot_be_edited(crew):
    plan = submitted(crew)
    with pytest.raises(errors.PlanNotEditable):
        services.need_add(plan=plan, acting_user=crew["broker"], description="More help")


def test_two_approvers_at_once_exactly_one_wins(crew):
    plan = submitted(crew)
    first_copy = type(plan).objects.get(pk=plan.pk)
    second_copy = type(plan).objects.get(pk=plan.pk)
    services.plan_approve(plan=first_copy, acting_user=crew["approver"])
    with pytest.raises(errors.PlanChangedMeanwhile):
        services.plan_return(plan=second_copy, acting_user=crew["approver2"], reasons="Too late")
    plan.refresh_from_db()
    assert plan.status == PlanStatus.APPROVED
    assert PlanEvent.objects.filter(plan=plan, to_status__in=["approved", "returned"]).count() == 1


def test_money_side_transitions_for_the_budgets_app(crew):
    plan = submitted(crew)
    services.plan_approve(plan=plan, acting_user=crew["approver"])
    services.plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    finance = user_with_role(Role.FINANCE_OFFICER, organisation=crew["icb"])
    for name, status in [
        ("start_setting_up", "setting_up"),
        ("activate", "active"),
        ("suspend", "suspended"),
        ("resume", "active"),
        ("start_review", "under_review"),
        ("finish_review", "active"),
        ("stop", "stopping"),
        ("begin_final_audit", "final_audit"),
        ("close", "closed"),
    ]:
        actor = crew["coordinator"] if name in ("start_review", "finish_review") else finance
        services.plan_transition(plan=plan, name=name, acting_user=actor)
        assert plan.status == status
    with pytest.raises(errors.TransitionRefused):
        services.plan_transition(plan=plan, name="activate", acting_user=finance)


def active_plan(crew):
    plan = submitted(crew)
    services.plan_approve(plan=plan, acting_user=crew["approver"])
    services.plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    services.plan_transition(plan=plan, name="start_setting_up", acting_user=crew["coordinator"])
    return services.plan_transition(plan=plan, name="activate", acting_user=crew["coordinator"])


def test_a_variation_is_a_new_version_approved_again_and_the_old_stays_unchanged(crew):
    old = active_plan(crew)
    old_lines = list(old.lines.values_list("description", "quantity"))
    new = services.plan_create(person=crew["person"], acting_user=crew["broker"])
    assert (new.version, new.previous, new.status) == (2, old, PlanStatus.DRAFT)
    assert list(new.lines.values_list("description", "quantity")) == old_lines
    line = new.lines.get(management_type="direct_payment")
    services.plan_item_remove(plan=new, acting_user=crew["broker"], item=line)
    with pytest.raises(errors.PlanNotEditable):
        services.plan_item_remove(plan=old, acting_user=crew["broker"], item=old.lines.first())
    services.plan_submit(plan=new, acting_user=crew["broker"])
    services.plan_approve(plan=new, acting_user=crew["approver"])
    Person.objects.filter(pk=crew["person"].pk).update(care_coordinator=None, health_monitor="Not named")
    services.plan_record_agreement(
        plan=new,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    old.refresh_from_db()
    assert old.status == PlanStatus.ACTIVE  # its budget keeps paying until the new version's is set up
    crew["person"].refresh_from_db()  # the person's record names whom the agreed plan names
    assert crew["person"].care_coordinator_id == new.care_coordinator_id == crew["coordinator"].pk
    assert crew["person"].health_monitor == new.health_monitor
    services.plan_start_setting_up(plan=new, acting_user=crew["coordinator"])
    old.refresh_from_db()
    assert old.status == PlanStatus.VARIED
    event = old.transitions.last()
    assert (event.transition, event.reasons) == ("vary", "Replaced by version 2")
    assert list(old.lines.values_list("description", "quantity")) == old_lines
    assert new.lines.count() == 2


def test_reconsideration_is_recorded_and_decided_with_reasons(crew):
    plan = submitted(crew)
    services.plan_return(plan=plan, acting_user=crew["approver"], reasons="Singing is not a health need")
    request = services.reconsideration_request(
        plan=plan,
        acting_user=crew["broker"],
        requested_by_name="Joan Robson",
        reasons="My consultant recommends it for my COPD",
    )
    assert services.reconsideration_pending(plan)
    with pytest.raises(errors.ReasonsRequired):
        services.reconsideration_decide(request=request, acting_user=crew["approver2"], decision="changed", reasons="")
    services.reconsideration_decide(
        request=request, acting_user=crew["approver2"], decision="changed", reasons="Clinical evidence supplied"
    )
    assert not services.reconsideration_pending(plan)


def test_staff_see_only_their_people(crew):
    other_broker = user_with_role(Role.CARE_BROKER, organisation=crew["icb"])
    assert list(selectors.people_visible_to(crew["broker"])) == [crew["person"]]
    assert list(selectors.people_visible_to(other_broker)) == []
    with pytest.raises(type(crew["person"]).DoesNotExist):
        selectors.person_get(user=other_broker, pk=crew["person"].pk)
    elsewhere = user_with_role(Role.ICB_APPROVER, organisation=icb("Another ICB"))
    assert list(selectors.people_visible_to(elsewhere)) == []
    assert list(selectors.people_visible_to(crew["approver"])) == [crew["person"]]
