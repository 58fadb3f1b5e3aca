"""Provider invoices on the notional district-nursing line (£6,032 a year, £464 committed per 4 weeks),
as accounting exercises."""

import datetime

import pytest
import time_machine

from accounts.roles import Role
from budgets import invoices, services
from budgets.models import InvoiceStatus
from ledger.models import Account, Transfer
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


@pytest.fixture(autouse=True)
def end_of_the_first_month():
    """Invoices are recorded once they are issued: the clock is at the end of the budget's first month."""
    with time_machine.travel(datetime.datetime(2026, 12, 31, 12, 0), tick=False):
        yield


@pytest.fixture
def nursing(agreed):
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    line = budget.lines.get(management_type="notional")
    agreed["line"] = line
    agreed["checker"] = user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    return agreed


def account(pk) -> Account:
    return Account.objects.get(pk=pk)


def record(crew, amount, number="INV-1"):
    line = crew["line"]
    return invoices.invoice_record(
        line=line,
        provider=line.plan_line.provider,
        invoice_number=number,
        invoice_date=START + datetime.timedelta(days=27),
        amount_pence=amount,
        acting_user=crew["finance"],
    )


def test_an_invoice_under_the_commitment_posts_it_and_releases_the_rest(nursing):
    line = nursing["line"]
    held_before = account(nursing["line"].budget.accounts.get(purpose="held:icb").account_id).posted_balance
    invoice = record(nursing, 45_000)
    with pytest.raises(services.BudgetError, match="someone else"):
        invoices.invoice_approve(invoice=invoice, acting_user=nursing["finance"])
    invoices.invoice_approve(invoice=invoice, acting_user=nursing["checker"])
    invoices.invoice_pay(invoice=invoice, acting_user=nursing["finance"])
    invoices.invoice_pay(invoice=invoice, acting_user=nursing["finance"])  # paying twice pays once
    spend = account(line.spend_account_id)
    # Dr spend £450 / Cr held £450; the £14 left of the first commitment released; period 2's £464 committed.
    assert (spend.posted_balance, spend.pending_balance) == (45_000, 46_400)
    held = account(line.budget.accounts.get(purpose="held:icb").account_id)
    assert held.posted_balance == held_before - 45_000
    assert Transfer.objects.filter(idempotency_key__startswith=f"invoice:{invoice.pk}").count() == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_an_invoice_above_the_commitment_pays_the_difference_from_the_budget(nursing):
    invoice = record(nursing, 50_000)
    invoices.invoice_approve(invoice=invoice, acting_user=nursing["checker"])
    invoices.invoice_pay(invoice=invoice, acting_user=nursing["finance"])
    spend = account(nursing["line"].spend_account_id)
    assert spend.posted_balance == 50_000
    assert Transfer.objects.get(idempotency_key=f"invoice:{invoice.pk}:beyond-commitment").amount == 3_600


@pytest.mark.parametrize("amount", [0, -100, 100_000_01])
def test_zero_negative_or_absurd_amounts_are_refused(nursing, amount):
    with pytest.raises(services.BudgetError, match="between 1p"):
        record(nursing, amount)


def test_the_same_invoice_number_twice_and_other_lines_are_refused(nursing):
    record(nursing, 100)
    with pytest.raises(services.BudgetError, match="already recorded"):
        record(nursing, 200)
    direct = nursing["line"].budget.lines.get(management_type="direct_payment")
    with pytest.raises(services.BudgetError, match="only for notional lines"):
        invoices.invoice_record(
            line=direct,
            provider=direct.plan_line.provider,
            invoice_number="X",
            invoice_date=START,
            amount_pence=100,
            acting_user=nursing["finance"],
        )


def test_an_invoice_dated_after_today_is_refused(nursing):
    with pytest.raises(services.BudgetError, match="The invoice date must be today or in the past"):
        invoices.invoice_record(
            line=nursing["line"],
            provider=nursing["line"].plan_line.provider,
            invoice_number="AHEAD-1",
            invoice_date=datetime.date(2027, 1, 1),
            amount_pence=100,
            acting_user=nursing["finance"],
        )
    assert not nursing["line"].invoices.exists()


def test_an_unapproved_invoice_cannot_be_paid(nursing):
    invoice = record(nursing, 100)
    with pytest.raises(services.BudgetError, match="Approve"):
        invoices.invoice_pay(invoice=invoice, acting_user=nursing["finance"])
    assert not Transfer.objects.filter(idempotency_key__startswith="invoice:").exists()


def test_invoice_pages_record_and_approve(client, nursing):
    from django.urls import reverse

    budget = nursing["line"].budget
    client.force_login(nursing["finance"])
    url = reverse("budgets:invoice-record", kwargs={"pk": budget.pk})
    bad = client.post(
        url, {"line": nursing["line"].pk, "invoice_number": "N-1", "invoice_date": "2026-12-28", "amount": "-5"}
    ).content.decode()
    assert "The amount must be more than £0" in bad and "nhsuk-error-summary" in bad
    absurd = client.post(
        url, {"line": nursing["line"].pk, "invoice_number": "N-1", "invoice_date": "2026-12-28", "amount": "250000.00"}
    ).content.decode()
    assert "between 1p and £100,000.00" in absurd
    client.post(
        url, {"line": nursing["line"].pk, "invoice_number": "N-1", "invoice_date": "2026-12-28", "amount": "450.00"}
    )
    invoice = nursing["line"].invoices.get()
    page = client.get(reverse("budgets:invoices")).content.decode()
    assert "N-1" in page and "Someone else must approve it" in page
    client.force_login(nursing["checker"])
    client.post(reverse("budgets:invoices"), {"invoice": invoice.pk, "action": "approve"})
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.APPROVED
    assert "Paid in the next payment run" in client.get(reverse("budgets:invoices")).content.decode()
    client.post(reverse("budgets:invoices"), {"invoice": invoice.pk, "action": "pay"})  # no longer paid from here
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.APPROVED
    assert account(nursing["line"].spend_account_id).posted_balance == 0


def test_an_invoice_recorded_by_mistake_is_rejected_with_reasons_and_can_be_recorded_again(client, nursing):
    from django.urls import reverse

    budget = nursing["line"].budget
    with pytest.raises(services.BudgetError, match="dated before the budget started on 1 December 2026"):
        invoices.invoice_record(
            line=nursing["line"],
            provider=nursing["line"].plan_line.provider,
            invoice_number="EARLY",
            invoice_date=START - datetime.timedelta(days=1),
            amount_pence=100,
            acting_user=nursing["finance"],
        )
    mistake = record(nursing, 500_000, number="N-7")  # £5,000: a typing slip
    client.force_login(nursing["checker"])
    url = reverse("budgets:invoice-reject", kwargs={"pk": mistake.pk})
    assert url in client.get(reverse("budgets:invoices")).content.decode()
    empty = client.post(url, {"reasons": "  "}).content.decode()
    assert "Enter why the invoice is rejected" in empty and 'href="#id_reasons"' in empty
    assert client.post(url, {"reasons": "Recorded £5,000 instead of £50.00"}).status_code == 302
    mistake.refresh_from_db()
    assert (mistake.status, mistake.reasons) == (InvoiceStatus.REJECTED, "Recorded £5,000 instead of £50.00")
    listed = client.get(reverse("budgets:invoices")).content.decode()
    assert "Invoice N-7 is rejected." in listed and "N-7, " not in listed  # no longer waiting
    again = client.post(url, {"reasons": "twice"}).content.decode()
    assert "Only an invoice not yet in a payment run can be rejected" in again
    corrected = record(nursing, 5_000, number="N-7")  # the same number, now right
    assert corrected.status == InvoiceStatus.RECORDED and budget.lines.get(pk=nursing["line"].pk).invoices.count() == 2
    client.force_login(user_with_role(Role.AUDITOR))
    assert client.get(url).status_code == 404  # auditors read invoices; they do not reject them
