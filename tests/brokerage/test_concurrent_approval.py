"""Two approvers decide the same plan at the same moment, on separate database connections: exactly one wins."""

import threading

import pytest
from django.db import connection

from brokerage import exceptions as errors
from brokerage import services
from brokerage.models import CarePlan, PlanEvent, PlanStatus
from tests.brokerage.helpers import complete_plan, make_person, team

pytestmark = [pytest.mark.dblevel, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("second", ["approve", "return"])
def test_two_approvers_at_once_exactly_one_wins(second):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    plan = complete_plan(person=person, broker=crew["broker"])
    services.plan_submit(plan=plan, acting_user=crew["broker"])
    start = threading.Barrier(2)
    outcomes = {}

    def decide(who, action):
        try:
            mine = CarePlan.objects.get(pk=plan.pk)  # each approver has the page open
            start.wait(timeout=10)
            if action == "approve":
                services.plan_approve(plan=mine, acting_user=crew[who])
            else:
                services.plan_return(plan=mine, acting_user=crew[who], reasons="Needs more detail")
            outcomes[who] = "won"
        except errors.PlanChangedMeanwhile:
            outcomes[who] = "lost"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=("approver", "approve")),
        threading.Thread(target=decide, args=("approver2", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["lost", "won"]
    plan.refresh_from_db()
    assert plan.status in (PlanStatus.APPROVED, PlanStatus.RETURNED)
    decisions = PlanEvent.objects.filter(plan=plan).exclude(transition="submit")
    assert decisions.count() == 1
    winner = next(who for who, result in outcomes.items() if result == "won")
    assert decisions.get().by == crew[winner]
