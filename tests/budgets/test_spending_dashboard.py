"""The care coordinator's and broker's dashboards count the flagged spending waiting for them to check (rules 9 and
10), for the people assigned to them only, linking to each budget's monitoring page; in a fixed number of queries."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from brokerage.services import plan_approve, plan_record_agreement, plan_submit
from budgets import spending
from budgets.models import SpendCheck
from tests.brokerage.helpers import agreed_crew, complete_plan, make_person
from tests.budgets.test_person_pages import budget_in_use
from tests.budgets.test_spend_check_outcomes import _in_december, crew  # noqa: F401 - fixtures
from tests.budgets.test_spending_checks import START, holder_spend, item_for, purchase
from tests.mfa import TwoFactorClient

pytestmark = pytest.mark.django_db


def dashboard(user, role: str) -> str:
    client = TwoFactorClient()
    client.force_login(user)
    return re.sub(r"\s+", " ", client.get(f"/dashboard/{role}/").content.decode())


def another_budget(team, given_name: str):
    """Another person assigned to the same broker and coordinator, with a live budget."""
    person = make_person(icb_org=team["icb"], staff=[team["broker"], team["coordinator"]], given_name=given_name)
    plan = complete_plan(person=person, broker=team["broker"], coordinator=team["coordinator"])
    plan_submit(plan=plan, acting_user=team["broker"])
    plan_approve(plan=plan, acting_user=team["approver"])
    plan_record_agreement(
        plan=plan,
        acting_user=team["broker"],
        agreed_by_name=person.full_name,
        agreed_on=timezone.localdate(),
        icb_signatory=team["approver"],
    )
    return budget_in_use({**team, "plan": plan}, start=START)


def test_a_coordinator_and_a_broker_see_how_many_spending_items_wait_for_them(crew):  # noqa: F811
    budget = crew["budget"]
    monitoring = f'href="/budgets/{budget.pk}/monitoring/"'
    assert "No spending is waiting to be checked." in dashboard(crew["coordinator"], "care_coordinator")

    first = purchase(crew, "u1", amount=1_00)
    purchase(crew, "u2", amount=1_00)
    holder_spend(crew, "h1")
    purchase(crew, "fine", line=crew["dp_line"], amount=1_00)  # coded to a line: nothing to check
    for user, role in ((crew["coordinator"], "care_coordinator"), (crew["broker"], "care_broker")):
        page = dashboard(user, role)
        assert "3 spending items to check" in page, role
        assert re.search(monitoring + r">Joan Robson<span[^>]*>: spending to check</span></a>: 3 items", page), role
    assert "Spending to check" not in dashboard(crew["approver"], "icb_approver")  # approvers do not check it

    # Someone else's coordinator, with flagged spending of their own, sees only theirs.
    other = agreed_crew()
    other["budget"] = budget_in_use(other, start=START)
    spending.dp_spend_record(
        budget=other["budget"],
        line=None,
        payee="Elsewhere",
        spent_on=datetime.date(2026, 12, 5),
        amount_pence=100,
        key="other-u1",
        acting_user=other["finance"],
    )
    theirs = dashboard(other["coordinator"], "care_coordinator")
    assert "1 spending item to check" in theirs and monitoring not in theirs
    assert "3 spending items to check" in dashboard(crew["coordinator"], "care_coordinator")

    spending.spend_check(item=item_for(first), decision=SpendCheck.ACCEPTED, reasons="ok", acting_user=crew["broker"])
    assert "2 spending items to check" in dashboard(crew["coordinator"], "care_coordinator")


def test_the_count_takes_the_same_queries_however_many_people_and_items(crew):  # noqa: F811
    purchase(crew, "u1", amount=1_00)

    def queries(user, role) -> int:
        client = TwoFactorClient()
        client.force_login(user)
        client.get(f"/dashboard/{role}/")  # once first: a session touched after a while saves itself once
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/dashboard/{role}/").status_code == 200
        return len(captured)

    before = {
        role: queries(crew[key], role) for key, role in (("coordinator", "care_coordinator"), ("broker", "care_broker"))
    }
    for name in ("Ann", "Bea"):
        budget = another_budget(crew, name)
        for n in range(3):
            spending.dp_spend_record(
                budget=budget,
                line=None,
                payee=f"{name} {n}",
                spent_on=datetime.date(2026, 12, 5),
                amount_pence=100 + n,
                key=f"{name}-{n}",
                acting_user=crew["finance"],
            )
    holder_spend(crew, "h1")
    after = {
        role: queries(crew[key], role) for key, role in (("coordinator", "care_coordinator"), ("broker", "care_broker"))
    }
    assert after == before
    page = dashboard(crew["coordinator"], "care_coordinator")
    assert "8 spending items to check" in page
    assert page.index("Ann Robson") < page.index("Bea Robson") < page.index("Joan Robson")  # by family, then given name
