"""Shared budget fixtures: journey 1's three-line plan, agreed and ready to set up."""

import datetime

import pytest

from accounts.roles import Role
from brokerage import services as plans
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.factories import user_with_role


@pytest.fixture
def agreed():
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]])
    plan = complete_plan(person=person, broker=crew["broker"], coordinator=crew["coordinator"])
    plans.plan_submit(plan=plan, acting_user=crew["broker"])
    plans.plan_approve(plan=plan, acting_user=crew["approver"])
    plans.plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=datetime.date(2026, 11, 24),
        icb_signatory=crew["approver"],
    )
    crew["plan"] = plan
    crew["finance"] = user_with_role(Role.FINANCE_OFFICER, organisation=crew["icb"])
    return crew
