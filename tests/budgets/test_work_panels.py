"""The finance dashboards list what waits on the finance team (runs to approve and to pay, invoices to approve,
agreed plans without a budget), and the approver's lists the connected people waiting for a necessity decision."""

import pytest
import time_machine

from accounts.roles import Role
from brokerage import services as people
from budgets import invoices, payment_runs, services
from budgets.models import PaymentRun
from providers.models import Provider
from tests.budgets.test_person_pages import TODAY
from tests.factories import user_with_role
from tests.mfa import TwoFactorClient

pytestmark = pytest.mark.django_db


def dashboard(user, role: str) -> str:
    client = TwoFactorClient()
    client.force_login(user)
    return client.get(f"/dashboard/{role}/").content.decode()


@time_machine.travel(TODAY, tick=False)
def test_finance_dashboards_list_runs_invoices_and_budgets_waiting_for_them(agreed):
    officer = agreed["finance"]
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    plan = agreed["plan"]
    waiting = dashboard(officer, "finance_officer")
    assert "Agreed plans whose budget is not set up yet" in waiting
    assert f"/plans/{plan.pk}/budget/set-up/" in waiting and plan.person.full_name in waiting

    budget = services.budget_set_up(plan=plan, acting_user=officer, start_date=TODAY.date())
    assert f"/plans/{plan.pk}/budget/set-up/" not in dashboard(officer, "finance_officer")
    line = budget.lines.get(management_type="notional")
    Provider.objects.filter(pk=line.plan_line.provider_id).update(sort_code="112233", account_number="44556677")
    invoices.invoice_record(
        line=line,
        provider=line.plan_line.provider,
        invoice_number="DN-1",
        invoice_date=TODAY.date(),
        amount_pence=5800,
        acting_user=officer,
    )
    assert "1 invoice recorded by someone else" in dashboard(manager, "finance_manager")
    assert "invoice recorded by someone else" not in dashboard(officer, "finance_officer")  # not their own

    run, _ = payment_runs.payment_run_create(run_date=TODAY.date(), acting_user=officer)
    link = f'<a href="/finance/payment-runs/{run.pk}/">Payment run {run.pk}</a>'
    for_manager = dashboard(manager, "finance_manager")
    assert link in for_manager.split("Payment runs to approve")[1].split("Approved payment runs")[0]
    assert link not in dashboard(officer, "finance_officer")  # rule 4: someone else approves it
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    for_officer = dashboard(officer, "finance_officer")
    assert link in for_officer.split("Approved payment runs to pay")[1]
    payment_runs.payment_run_post(run=PaymentRun.objects.get(pk=run.pk), acting_user=officer)
    assert link not in dashboard(officer, "finance_officer")


def test_the_approvers_dashboard_lists_connected_people_waiting_for_a_necessity_decision(agreed):
    provider = Provider.objects.create(name="Sam Robson", kind="personal_assistant")
    connection = people.connected_person_add(
        person=agreed["plan"].person,
        acting_user=agreed["broker"],
        provider=provider,
        relationship="spouse",
        lives_in_household=True,
    )
    link = f'/connected-people/{connection.pk}/necessity/">Sam Robson</a>, spouse or civil partner of Joan Robson'
    page = dashboard(agreed["approver"], "icb_approver")
    assert "Payments to connected people to decide" in page and link in page
    other_icb = user_with_role(Role.ICB_APPROVER)
    assert link not in dashboard(other_icb, "icb_approver")
    people.connected_person_approve_necessity(
        connection=connection, acting_user=agreed["approver"], reasons="No agency covers the village at night"
    )
    assert link not in dashboard(agreed["approver"], "icb_approver")
