"""Rule 11 holds all the way to the payment run: a spouse is paid only while the ICB's necessity approval stands.
Withdrawing it stops an invoice waiting for a run (a direct-payment one gives the money back to the account) and
a run prepared before the withdrawal cannot be approved."""

import pytest
import time_machine
from django.urls import reverse

from brokerage import necessity
from brokerage import services as people
from budgets import dp_invoices, invoices, payment_runs
from budgets.models import DirectPaymentInvoiceStatus
from budgets.services import BudgetError
from budgets.spending import CONNECTED_REFUSED
from providers.models import Provider
from tests.budgets.test_person_pages import TODAY, budget_in_use, dp_available
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def spouse(agreed):
    """Joan's live budget, her sign-in, and Sam, her husband, recorded by the broker as a connected person."""
    mine = agreed
    budget = budget_in_use(mine)
    patient = user_with_role("patient")
    mine["plan"].person.user = patient
    mine["plan"].person.save(update_fields=["user"])
    mine.update(budget=budget, patient=patient, dp_line=budget.lines.get(management_type="direct_payment"))
    provider = Provider.objects.create(
        name="Sam Robson", kind="personal_assistant", sort_code="200000", account_number="11223344"
    )
    connection = people.connected_person_add(
        person=mine["plan"].person,
        acting_user=mine["broker"],
        provider=provider,
        relationship="spouse",
        lives_in_household=True,
    )
    mine.update(provider=provider, connection=connection)
    return mine


def approve(crew) -> None:
    people.connected_person_approve_necessity(
        connection=crew["connection"], acting_user=crew["approver"], reasons="No agency covers the village at night"
    )


def withdraw(crew) -> None:
    crew["connection"].refresh_from_db()
    necessity.connected_person_withdraw_necessity(
        connection=crew["connection"], acting_user=crew["approver2"], reasons="An agency now covers nights"
    )


def notional_invoice(crew, number: str):
    line = crew["budget"].lines.get(management_type="notional")
    return invoices.invoice_record(
        line=line,
        provider=crew["provider"],
        invoice_number=number,
        invoice_date=TODAY.date(),
        amount_pence=5_000,
        acting_user=crew["finance"],
    )


@time_machine.travel(TODAY, tick=False)
def test_an_invoice_from_a_spouse_is_refused_without_approval_and_left_out_of_a_run_once_it_is_withdrawn(spouse):
    manager = user_with_role("finance_manager", organisation=spouse["icb"])
    with pytest.raises(BudgetError, match=CONNECTED_REFUSED):
        notional_invoice(spouse, "SR-1")
    approve(spouse)
    invoice = invoices.invoice_approve(invoice=notional_invoice(spouse, "SR-1"), acting_user=manager)

    prepared, left_out = payment_runs.payment_run_create(run_date=TODAY.date(), acting_user=spouse["finance"])
    assert left_out == [] and prepared.items.filter(invoice=invoice).exists()
    withdraw(spouse)
    with pytest.raises(BudgetError, match=r"Sam Robson \(paying them needs the ICB's approval that it is necessary"):
        payment_runs.payment_run_approve(run=prepared, acting_user=manager)  # prepared before the withdrawal
    payment_runs.payment_run_discard(run=prepared, acting_user=spouse["finance"])

    run, left_out = payment_runs.payment_run_create(run_date=TODAY.date(), acting_user=spouse["finance"])
    assert left_out == [invoice] and not run.items.filter(invoice=invoice).exists()
    assert payment_runs.left_out_reason(invoice) == (
        "Invoice SR-1 from Sam Robson: paying Sam Robson needs the ICB's approval that it is necessary (rule 11)"
    )
    with pytest.raises(BudgetError, match=CONNECTED_REFUSED):
        invoices.invoice_approve(invoice=notional_invoice(spouse, "SR-2"), acting_user=manager)


@time_machine.travel(TODAY, tick=False)
def test_a_direct_payment_invoice_waiting_for_a_run_is_released_when_the_approval_is_withdrawn(spouse):
    approve(spouse)
    before = dp_available(spouse["budget"])
    invoice = dp_invoices.dp_invoice_pay(
        budget=spouse["budget"],
        line=spouse["dp_line"],
        provider=spouse["provider"],
        invoice_number="SR-9",
        amount_pence=1_500,
        key="person:sr-9",
        acting_user=spouse["patient"],
    )
    assert invoice.status == DirectPaymentInvoiceStatus.QUEUED and dp_available(spouse["budget"]) == before - 1_500
    withdraw(spouse)

    run, _ = payment_runs.payment_run_create(run_date=TODAY.date(), acting_user=spouse["finance"])
    invoice.refresh_from_db()
    assert not run.items.filter(dp_invoice=invoice).exists()
    assert invoice.status == DirectPaymentInvoiceStatus.FAILED
    assert invoice.failure == (
        "Not paid: paying Sam Robson needs the ICB's approval that it is necessary (rule 11). "
        "The money is back in the direct-payment account"
    )
    assert dp_available(spouse["budget"]) == before  # free to spend again
    payment_runs.payment_run_create(run_date=TODAY.date(), acting_user=spouse["finance"])  # released once only
    assert dp_available(spouse["budget"]) == before


@time_machine.travel(TODAY, tick=False)
def test_the_run_page_says_why_an_invoice_was_left_out(client, spouse):
    manager = user_with_role("finance_manager", organisation=spouse["icb"])
    approve(spouse)
    invoices.invoice_approve(invoice=notional_invoice(spouse, "SR-3"), acting_user=manager)
    withdraw(spouse)
    client.force_login(spouse["finance"])
    created = client.post(reverse("budgets:payment-runs"), {"run_date": TODAY.date().isoformat()})
    page = " ".join(client.get(created["Location"]).content.decode().split())
    assert "1 payment is not in this run:" in page
    assert "Invoice SR-3 from Sam Robson: paying Sam Robson needs the ICB&#39;s approval that it is necessary" in page
