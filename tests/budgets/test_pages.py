"""Setting up a budget through its check-your-answers page, and the budget page's figures by line."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from accounts.roles import Role
from brokerage.models import PlanStatus
from budgets.models import Budget
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def test_broker_checks_then_sets_up_the_budget_and_sees_it_by_line(client, agreed):
    plan = agreed["plan"]
    client.force_login(agreed["broker"])
    summary = client.get(reverse("brokerage:plan", kwargs={"pk": plan.pk})).content.decode()
    assert "Set up the budget" in summary
    url = reverse("budgets:set-up", kwargs={"plan_pk": plan.pk})
    check = client.post(url, {"start_date": "2026-12-01"}).content.decode()
    assert "Check before you set up the budget" in check and "1 December 2026" in check
    assert not Budget.objects.exists()  # nothing happens before the check step is confirmed
    done = client.post(url, {"start_date": "2026-12-01", "confirm": "yes"})
    budget = Budget.objects.get(plan=plan)
    assert done["Location"] == reverse("budgets:budget", kwargs={"pk": budget.pk})
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SETTING_UP
    page = client.get(done["Location"]).content.decode()
    assert "£6,032.00" in page and "£464.00" in page  # nursing planned, and its first period committed
    assert "The budget is set up from 1 December 2026." in page
    assert "ledger account" not in page and ">Accounts<" not in page  # the ledger's codes are for finance
    assert client.get(url).status_code == 404  # cannot be set up twice
    client.force_login(agreed["finance"])
    assert "ledger account budget:" in client.get(done["Location"]).content.decode()


def test_finance_finds_a_budget_by_name_or_nhs_number_to_record_an_invoice(client, agreed):
    from budgets import services

    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"])
    person = agreed["person"]
    url = reverse("budgets:budget-list")
    client.force_login(agreed["finance"])
    invoices = client.get(reverse("budgets:invoices")).content.decode()
    assert f'href="{url}"' in invoices
    for query in (person.family_name.upper(), person.nhs_number_display, person.nhs_number):
        found = client.get(url, {"q": query}).content.decode()
        assert "1 budget for" in found, query
        assert reverse("budgets:invoice-record", kwargs={"pk": budget.pk}) in found
    assert "0 budgets for" in client.get(url, {"q": "Nobody Like This"}).content.decode()
    client.force_login(user_with_role(Role.AUDITOR))
    read_only = client.get(url, {"q": person.family_name}).content.decode()
    assert "1 budget for" in read_only and "invoices/new/" not in read_only
    client.force_login(agreed["broker"])
    assert client.get(url).status_code == 404


def test_bad_start_dates_are_explained(client, agreed):
    client.force_login(agreed["broker"])
    page = client.post(
        reverse("budgets:set-up", kwargs={"plan_pk": agreed["plan"].pk}), {"start_date": "yesterday"}
    ).content.decode()
    assert "Enter a real date" in page and "nhsuk-error-summary" in page


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_BROKER, Role.THIRD_PARTY_STAFF])
def test_others_cannot_set_up_or_see_the_budget(client, agreed, role):
    from budgets import services

    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"])
    client.force_login(user_with_role(role))
    assert client.get(reverse("budgets:budget", kwargs={"pk": budget.pk})).status_code == 404
    assert client.get(reverse("budgets:set-up", kwargs={"plan_pk": agreed["plan"].pk})).status_code == 404


@time_machine.travel(datetime.datetime(2026, 12, 1, 12, 0), tick=False)  # a run's date is never in the past
def test_finance_prepares_approves_pays_and_downloads_a_run(client, agreed):
    from budgets.models import PaymentRun
    from tests.budgets.test_payment_runs import set_up

    set_up(agreed)
    client.force_login(agreed["finance"])
    created = client.post(reverse("budgets:payment-runs"), {"run_date": "2026-12-01"})
    run = PaymentRun.objects.get()
    page = client.get(created["Location"]).content.decode()
    assert "another finance officer or manager must approve it" in page and "Approve this payment run" not in page
    assert client.get(reverse("budgets:payment-run-bacs", kwargs={"pk": run.pk})).status_code == 404  # not yet
    client.force_login(user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"]))
    client.post(created["Location"], {"action": "approve"})
    client.post(created["Location"], {"action": "pay"})
    run.refresh_from_db()
    assert run.status == "posted"
    bacs_file = client.get(reverse("budgets:payment-run-bacs", kwargs={"pk": run.pk}))
    assert bacs_file.content.startswith(b"VOL1") and b"JOAN ROBSON PHB" in bacs_file.content
    assert "TYNESIDE IUT" in client.get(reverse("budgets:payment-run-csv", kwargs={"pk": run.pk})).content.decode()

    # Everything due on 1 December is paid: another run for that day would be empty, so none is made.
    again = client.post(reverse("budgets:payment-runs"), {"run_date": "2026-12-01"})
    assert again.status_code == 200
    assert "Nothing is due to be paid on or before 1 December 2026" in again.content.decode()
    assert PaymentRun.objects.count() == 1


@pytest.mark.parametrize("role", [Role.CARE_BROKER, Role.PATIENT, Role.ICB_APPROVER])
def test_payment_runs_are_for_finance_and_auditors_only(client, role):
    client.force_login(user_with_role(role))
    assert client.get(reverse("budgets:payment-runs")).status_code == 404


def test_an_auditor_reads_payment_runs_and_invoices_but_cannot_act_on_them(client, agreed):
    from budgets import payment_runs
    from tests.budgets.test_payment_runs import set_up

    set_up(agreed)
    run, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 1), acting_user=agreed["finance"])
    auditor = user_with_role(Role.AUDITOR)
    client.force_login(auditor)
    dashboard = client.get(reverse("accounts:role-dashboard", kwargs={"role": "auditor"})).content.decode()
    assert reverse("budgets:payment-runs") in dashboard and reverse("budgets:invoices") in dashboard
    listed = client.get(reverse("budgets:payment-runs")).content.decode()
    assert f"/finance/payment-runs/{run.pk}/" in listed and "Prepare a payment run" not in listed
    page = client.get(reverse("budgets:payment-run", kwargs={"pk": run.pk})).content.decode()
    assert agreed["finance"].full_name in page and "Approve this payment run" not in page
    assert "Waiting for a finance officer or manager other than the one who prepared it" in page
    assert client.get(reverse("budgets:invoices")).status_code == 200
    # Reading only: every action answers as if the page were not there.
    assert client.post(reverse("budgets:payment-run", kwargs={"pk": run.pk}), {"action": "approve"}).status_code == 404
    assert client.post(reverse("budgets:payment-runs"), {"run_date": "2026-12-01"}).status_code == 404
    run.refresh_from_db()
    assert run.status == "draft"
