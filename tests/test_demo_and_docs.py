"""The demo seed (every app adds its part, deterministic, safe to re-run), the state graph and the API schema."""

import pytest
from django.core.management import call_command

from accounts.demo import DEMO_USERS, demo_email
from accounts.models import User
from accounts.roles import Role
from brokerage.models import CarePlan, PlanStatus
from budgets.models import (
    Budget,
    DirectPaymentReturn,
    DirectPaymentSpend,
    HolderSpend,
    Invoice,
    Recovery,
    ReductionNotice,
    Review,
    StopDecision,
    Suspension,
)
from ledger.verification import ledger_verify
from providers.models import Provider
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def test_demo_seed_gives_every_role_a_sign_in_and_every_plan_state(capsys):
    call_command("seed_demo", "--people", "14")
    assert {u.email for u in User.objects.all()} >= {demo_email(local) for _, local, _, _ in DEMO_USERS}
    assert set(CarePlan.objects.values_list("status", flat=True)) == set(PlanStatus)
    assert Provider.objects.count() >= 10
    assert ledger_verify().ok
    money_states = {
        PlanStatus.SETTING_UP,
        PlanStatus.ACTIVE,
        PlanStatus.UNDER_REVIEW,
        PlanStatus.SUSPENDED,
        PlanStatus.STOPPING,
        PlanStatus.FINAL_AUDIT,
        PlanStatus.CLOSED,
        PlanStatus.VARIED,
    }
    for plan in CarePlan.objects.filter(status__in=money_states):
        assert Budget.objects.filter(plan=plan).exists(), plan.status  # set up for real, not just walked
    active = Budget.objects.filter(plan__status=PlanStatus.ACTIVE)
    assert active.exists() and all(budget.first_paid_on for budget in active)
    assert Invoice.objects.filter(status="paid").exists()
    assert DirectPaymentSpend.objects.exists() and HolderSpend.objects.exists()  # the payments are being spent
    # Monitoring and endings: reviews, returns, a suspension, stops, a closing, recoveries and a reduction notice.
    assert Review.objects.exists() and DirectPaymentReturn.objects.exists() and Suspension.objects.exists()
    assert StopDecision.objects.exists() and Recovery.objects.exists() and ReductionNotice.objects.exists()
    plans_before = CarePlan.objects.count()
    call_command("seed_demo", "--people", "14")  # a second run adds nothing twice
    assert CarePlan.objects.count() == plans_before
    assert User.objects.get(email=demo_email("patient")).person.plans.exists()


def test_graph_transitions_draws_every_state(capsys):
    call_command("graph_transitions", "brokerage.CarePlan")
    dot = capsys.readouterr().out
    for status in PlanStatus:
        assert f"status.{status.value}" in dot


def test_the_openapi_schema_is_served(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    response = client.get("/api/schema/")
    schema = response.content.decode()
    assert response.status_code == 200
    for path in ["/api/ledger/transfers/", "/api/brokerage/plans/{id}/transition/", "/api/brokerage/plans/{id}/fhir/"]:
        assert path in schema
