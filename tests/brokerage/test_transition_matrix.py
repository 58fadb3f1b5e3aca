"""Every transition, tried by every role from its source state: only the intended roles succeed, and from any
other state nobody can make it."""

import pytest
from django.utils import timezone

from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage import services
from brokerage.demo import PATHS
from brokerage.models import CarePlan, PlanStatus
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db

# transition -> (state to start from, roles allowed: those assigned to the person or in its ICB)
ALLOWED = {
    "submit": (PlanStatus.DRAFT, {Role.CARE_BROKER, Role.CARE_COORDINATOR}),
    "return_to_broker": (PlanStatus.SUBMITTED, {Role.ICB_APPROVER}),
    "reopen": (PlanStatus.RETURNED, {Role.CARE_BROKER, Role.CARE_COORDINATOR}),
    "approve": (PlanStatus.SUBMITTED, {Role.ICB_APPROVER}),
    "start_setting_up": (
        PlanStatus.AGREED,
        {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER},
    ),
    "activate": (
        PlanStatus.SETTING_UP,
        {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER},
    ),
    "start_review": (PlanStatus.ACTIVE, {Role.CARE_BROKER, Role.CARE_COORDINATOR}),
    "finish_review": (PlanStatus.UNDER_REVIEW, {Role.CARE_BROKER, Role.CARE_COORDINATOR}),
    "suspend": (
        PlanStatus.ACTIVE,
        {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER},
    ),
    "resume": (
        PlanStatus.SUSPENDED,
        {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER},
    ),
    "stop": (PlanStatus.ACTIVE, {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER}),
    # Only on a reconsideration decided by an approver (budgets.monitoring.stop_reconsider_decide).
    "reinstate": (PlanStatus.STOPPING, {Role.ICB_APPROVER}),
    "reinstate_suspended": (PlanStatus.STOPPING, {Role.ICB_APPROVER}),
    "begin_final_audit": (
        PlanStatus.STOPPING,
        {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER},
    ),
    "close": (
        PlanStatus.FINAL_AUDIT,
        {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER},
    ),
}


def plan_in(status, crew):
    plan = complete_plan(person=crew["person"], broker=crew["broker"], coordinator=crew["coordinator"])
    for name in PATHS[status]:
        if name == "return_to_broker":
            services.plan_return(plan=plan, acting_user=crew["approver"], reasons="Needs more detail")
        elif name == "record_agreement":
            services.plan_record_agreement(
                plan=plan,
                acting_user=crew["broker"],
                agreed_by_name="Joan",
                agreed_on=timezone.localdate(),
                icb_signatory=crew["approver"],
            )
        else:
            actor = crew["approver"] if name == "approve" else crew["coordinator"]
            services.plan_transition(plan=plan, name=name, acting_user=actor)
    assert plan.status == status
    return plan


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_each_transition_by_role(name):
    source, allowed = ALLOWED[name]
    for role in Role:
        crew = team()
        crew["person"] = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]])
        plan = plan_in(source, crew)
        actor = user_with_role(role, organisation=crew["icb"])
        if role in (Role.CARE_BROKER, Role.CARE_COORDINATOR):
            crew["person"].assigned_staff.add(actor)
        reasons = "Reasons given" if name == "return_to_broker" else ""
        if role in allowed:
            services.plan_transition(plan=plan, name=name, acting_user=actor, reasons=reasons)
            assert plan.transitions.last().transition == name
        else:
            with pytest.raises(errors.TransitionRefused):
                services.plan_transition(plan=plan, name=name, acting_user=actor, reasons=reasons)
            plan.refresh_from_db()
            assert plan.status == source


def sources(name: str) -> set[str]:
    return {t.source for t in CarePlan(status=PlanStatus.DRAFT).get_all_status_transitions() if t.name == name}


@pytest.mark.parametrize("status", [s for s in PlanStatus if s in PATHS])
def test_nothing_happens_from_the_wrong_state(status):
    crew = team()
    crew["person"] = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]])
    plan = plan_in(status, crew)
    for name in ALLOWED:
        if status in sources(name):
            continue
        # "A plan that is draft cannot be approved"; or, already in the state it leads to, "This plan has already
        # been closed" (a second click, or the browser's back button).
        with pytest.raises(errors.TransitionRefused, match=r"cannot be|already"):
            services.plan_transition(plan=plan, name=name, acting_user=crew["coordinator"], reasons="x")
    assert plan.status == status
