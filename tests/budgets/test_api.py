"""The budgets API: budgets scoped like their plans; invoices and payment runs for finance, with
Idempotency-Key on the POSTs that pay."""

import datetime

import pytest
import time_machine

from accounts.roles import Role
from budgets import services
from tests.budgets.test_payment_runs import set_up
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def post(client, url, body=None, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(url, body or {}, content_type="application/json", headers=headers)


@time_machine.travel(datetime.datetime(2026, 12, 28, 12, 0), tick=False)  # the invoices' date: never ahead of today
def test_invoice_and_run_through_the_api(client, agreed):
    budget = set_up(agreed)
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    nursing = budget.lines.get(management_type="notional")
    client.force_login(agreed["finance"])
    detail = client.get(f"/api/budgets/budgets/{budget.pk}/").json()
    assert {line["description"] for line in detail["lines"]} >= {"District nursing"}
    invoice = post(
        client,
        "/api/budgets/invoices/",
        {"budget_line": nursing.pk, "invoice_number": "A-1", "invoice_date": "2026-12-28", "amount_pence": 45_000},
    )
    assert invoice.status_code == 201
    bad = post(
        client,
        "/api/budgets/invoices/",
        {"budget_line": nursing.pk, "invoice_number": "A-2", "invoice_date": "2026-12-28", "amount_pence": -1},
    )
    assert bad.status_code == 400 and "between 1p" in bad.json()["detail"]
    assert post(client, f"/api/budgets/invoices/{invoice.json()['id']}/approve/").status_code == 409  # the maker
    run = post(client, "/api/budgets/payment-runs/", {"run_date": "2026-12-28"}).json()
    assert len(run["items"]) == 2 and run["status"] == "draft"

    client.force_login(manager)
    assert post(client, f"/api/budgets/invoices/{invoice.json()['id']}/approve/").json()["status"] == "approved"
    assert post(client, f"/api/budgets/payment-runs/{run['id']}/approve/").json()["status"] == "approved"
    assert post(client, f"/api/budgets/payment-runs/{run['id']}/pay/").status_code == 400  # no key
    paid = post(client, f"/api/budgets/payment-runs/{run['id']}/pay/", key="run-1")
    assert paid.json()["status"] == "posted"
    again = post(client, f"/api/budgets/payment-runs/{run['id']}/pay/", key="run-1")
    assert again.status_code == 200 and again.json()["status"] == "posted"

    # The approved invoice is paid by the next run, through the same maker-and-checker steps.
    second = post(client, "/api/budgets/payment-runs/", {"run_date": "2026-12-28"}).json()
    assert [item["paying_for"] for item in second["items"]] == ["Invoice A-1"]
    assert second["totals"]["by_type"] == {"Provider invoices": 45_000}
    assert sum(second["totals"]["by_funder"].values()) == 45_000
    client.force_login(agreed["finance"])
    post(client, f"/api/budgets/payment-runs/{second['id']}/approve/")
    assert post(client, f"/api/budgets/payment-runs/{second['id']}/pay/", key="run-2").json()["status"] == "posted"
    empty = post(client, "/api/budgets/payment-runs/", {"run_date": "2026-12-28"})
    assert empty.status_code == 409 and empty.json()["detail"].startswith("Nothing is due to be paid")
    assert client.get(f"/api/budgets/invoices/{invoice.json()['id']}/").json()["status"] == "paid"
    assert post(client, f"/api/budgets/invoices/{invoice.json()['id']}/pay/", key="x").status_code in (404, 405)


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_BROKER])
def test_outsiders_get_no_budgets_and_no_finance_endpoints(client, agreed, role):
    budget = services.budget_set_up(
        plan=agreed["plan"], acting_user=agreed["finance"], start_date=datetime.date(2026, 12, 1)
    )
    client.force_login(user_with_role(role))
    assert client.get(f"/api/budgets/budgets/{budget.pk}/").status_code == 404
    assert client.get("/api/budgets/invoices/").status_code == 403
    assert post(client, "/api/budgets/payment-runs/", {"run_date": "2026-12-01"}).status_code == 403


def test_auditors_read_budgets_invoices_and_runs_but_change_nothing(client, agreed):
    budget = services.budget_set_up(
        plan=agreed["plan"], acting_user=agreed["finance"], start_date=datetime.date(2026, 12, 1)
    )
    client.force_login(user_with_role(Role.AUDITOR))
    assert client.get(f"/api/budgets/budgets/{budget.pk}/").status_code == 200
    assert client.get("/api/budgets/invoices/").status_code == 200
    assert post(client, "/api/budgets/payment-runs/", {"run_date": "2026-12-01"}).status_code == 403


def test_the_plan_api_cannot_suspend_stop_or_close_a_live_budget(client, agreed):
    """Suspending, stopping and closing each need what only the budget services record (reasons, a decision, the
    arrears skipped, a final audit), so the plan API refuses them with a reason and the plan stays as it was."""
    from brokerage.models import CarePlan, PlanStatus
    from tests.budgets.test_person_pages import budget_in_use

    budget = budget_in_use(agreed, start=datetime.date(2026, 12, 1))
    url = f"/api/brokerage/plans/{budget.plan_id}/"
    client.force_login(agreed["broker"])
    assert client.get(url).json()["allowed_transitions"] == []  # reviews and suspensions are made on their pages
    for step in ("suspend", "stop", "begin_final_audit", "close", "vary", "start_review", "record_agreement"):
        refused = post(client, url + "transition/", {"name": step})
        assert refused.status_code == 400, step
        assert "this API makes only: approve, reopen, return_to_broker, submit" in refused.json()["detail"]
    assert CarePlan.objects.get(pk=budget.plan_id).status == PlanStatus.ACTIVE
