"""What a payment run must refuse, and what it does with a payment the ledger refuses (QA's demo findings):

1. the BACS file and the bank CSV hold only what the ledger paid, with totals to match, and the run page says why
   a payment was not paid in plain English, without account codes;
2. a provider invoice for more than its plan line has left for the year is refused when recorded and when
   approved, and a payment the run could not pay can be taken out of the run, so its invoice can be rejected;
3. a run's date is today or up to 60 days ahead, it gathers only what is due by then, and paying it never dates
   the money leaving the bank before today.

The district-nursing line is £6,032 a year, £464 committed per 4 weeks; the budget starts on 1 December 2026."""

import datetime
import re

import pytest
import time_machine
from django.urls import reverse

from accounts.roles import Role
from budgets import dp_invoices, invoices, payment_runs, selectors, services
from budgets.cash import run_reference
from budgets.models import (
    DirectPaymentInvoice,
    Invoice,
    InvoiceStatus,
    PaymentRun,
    PaymentRunItem,
    RunStatus,
    ScheduledPayment,
)
from ledger.models import Account, Transfer
from ledger.verification import ledger_verify
from tests.budgets.test_payment_runs import START, set_up
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
NOON = datetime.time(12)


def at(day: datetime.date):
    return time_machine.travel(datetime.datetime.combine(day, NOON), tick=False)


@pytest.fixture(autouse=True)
def on_the_first_day():
    with at(START):
        yield


@pytest.fixture
def crew(agreed):
    agreed["budget"] = set_up(agreed)
    agreed["manager"] = user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    agreed["line"] = agreed["budget"].lines.select_related("plan_line").get(management_type="notional")
    return agreed


def record(crew, amount, number="NN-1", day=START):
    line = crew["line"]
    return invoices.invoice_record(
        line=line,
        provider=line.plan_line.provider,
        invoice_number=number,
        invoice_date=day,
        amount_pence=amount,
        acting_user=crew["finance"],
    )


def approved(crew, amount, number="NN-1"):
    return invoices.invoice_approve(invoice=record(crew, amount, number), acting_user=crew["manager"])


def held(budget) -> Account:
    return Account.objects.get(code=f"{budget.owner_ref}:held:icb")


def leave_the_icb_holding(crew, pence: int) -> ScheduledPayment:
    """One more direct-payment instalment due on the first day, large enough that once the day's instalments are
    paid the ICB holds only `pence` for this budget (beyond the nursing line's commitment)."""
    budget = crew["budget"]
    due = sum(ScheduledPayment.objects.filter(budget=budget, due_on=START).values_list("amount_pence", flat=True))
    return ScheduledPayment.objects.create(
        budget=budget,
        kind="direct_payment",
        due_on=START,
        amount_pence=held(budget).available_balance - due - pence,
        transfer_key=f"{budget.owner_ref}:extra:1",
    )


def paid_run(crew) -> PaymentRun:
    run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    assert left_out == []
    payment_runs.payment_run_approve(run=run, acting_user=crew["manager"])
    return payment_runs.payment_run_post(run=run, acting_user=crew["finance"])


@pytest.fixture
def short_run(crew):
    """An invoice of £5,000, within the line's £6,032, in a run whose instalments leave the ICB holding £1,000:
    with the £464 commitment, £1,464 can pay it, so the ledger refuses it and pays everyone else."""
    invoice = approved(crew, 500_000)
    leave_the_icb_holding(crew, 100_000)
    crew["run"], crew["invoice"] = paid_run(crew), invoice
    return crew


def bacs_credits(data: bytes) -> list[str]:
    return [line for line in data.decode("ascii").split("\r\n") if len(line) == 100 and line[15:17] == "99"]


# --- 1. The bank files hold only what the ledger paid -----------------------------------------------------------


def test_the_bank_files_hold_only_the_payments_the_ledger_paid_with_totals_to_match(short_run):
    run, invoice = short_run["run"], short_run["invoice"]
    refused = run.items.get(invoice=invoice)
    assert run.status == RunStatus.APPROVED and refused.paid_at is None
    assert refused.failure == "The budget does not hold enough for this (£1,464.00 is left)"
    assert not Transfer.objects.filter(idempotency_key__startswith=f"{invoice.ledger_key}:").exists()

    paid = list(run.items.filter(paid_at__isnull=False).order_by("id"))
    assert len(paid) == 3 and sum(item.amount_pence for item in paid) == payment_runs.paid_by_bacs_pence(run)
    data = payment_runs.payment_run_bacs_file(run)
    lines = data.decode("ascii").split("\r\n")[:-1]
    assert b"NORTH NURSING" not in data and len(bacs_credits(data)) == 3
    total = sum(item.amount_pence for item in paid)
    contra = next(line for line in lines if len(line) == 100 and line[15:17] == "17")
    assert int(contra[35:46]) == total
    assert lines[-1].startswith("UTL1") and int(lines[-1][4:17]) == int(lines[-1][17:30]) == total
    assert int(lines[-1][37:44]) == 3  # the count of credits
    csv_rows = payment_runs.payment_run_csv(run).decode("utf-8").splitlines()[1:]
    assert len(csv_rows) == 3 and "NORTH NURSING" not in "".join(csv_rows)
    assert sum(round(float(row.split(",")[3]) * 100) for row in csv_rows) == total
    # The money that left the bank, in the ledger, is what the file pays.
    cash_out = Transfer.objects.filter(reference=run_reference(run.pk), code="bacs_payment")
    assert sum(cash_out.values_list("amount", flat=True)) == total
    assert ledger_verify().ok


def test_the_run_page_says_in_plain_english_why_a_payment_was_not_paid(client, short_run):
    run = short_run["run"]
    client.force_login(short_run["finance"])
    page = client.get(reverse("budgets:payment-run", kwargs={"pk": run.pk})).content.decode()
    assert "Not paid</strong> The budget does not hold enough for this (£1,464.00 is left)" in page
    assert "held:icb" not in page and "does not have enough money for this transfer" not in page
    assert "budget:" not in re.sub(r"<[^>]+>", "", page)  # no account codes in the text
    assert "Pay again to retry what was not sent" not in page and "Take out of this run" in page
    assert "The files hold only the payments marked paid above." in page
    listed = client.get(reverse("budgets:invoices")).content.decode()
    assert f"payment run {run.pk}</a>: The budget does not hold enough for this" in listed


def test_with_nothing_paid_by_bacs_the_page_says_so_rather_than_offering_an_empty_file(client, crew):
    leave_the_icb_holding(crew, 100_000)
    first = paid_run(crew)  # the day's instalments, all paid
    assert first.status == RunStatus.POSTED
    approved(crew, 500_000)
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    assert run.items.count() == 1  # only the invoice, which the ledger will refuse
    client.force_login(crew["manager"])
    run_url = reverse("budgets:payment-run", kwargs={"pk": run.pk})
    client.post(run_url, {"action": "approve"})
    nothing_yet = client.get(reverse("budgets:payment-run-bacs", kwargs={"pk": run.pk}), follow=True)
    assert f"Nothing in payment run {run.pk} has been paid by BACS yet" in nothing_yet.content.decode()
    client.post(run_url, {"action": "pay"})
    for name in ("budgets:payment-run-bacs", "budgets:payment-run-csv"):
        answer = client.get(reverse(name, kwargs={"pk": run.pk}))
        assert answer.status_code == 302 and answer["Location"] == run_url
    page = client.get(run_url).content.decode()
    assert "there is no bank file to download" in page and "bacs.txt" not in page
    assert f"Nothing in payment run {run.pk} has been paid by BACS yet" in page  # the message from the redirect


# --- 2. An invoice can be no larger than what its line has left; a payment not paid can be taken out -------------


def test_an_invoice_for_more_than_the_line_has_left_is_refused_with_the_figure(crew):
    line = crew["line"]
    figures = next(f for f in selectors.line_figures(crew["budget"]) if f.description == "District nursing")
    assert invoices.line_money_left(line) == figures.remaining + figures.committed == 603_200
    with pytest.raises(invoices.InvoiceAmountRefused) as refused:
        record(crew, 9_999_900)
    assert str(refused.value) == "This is more than the £6,032.00 left on District nursing for the year"
    assert not Invoice.objects.exists()

    paid = approved(crew, 45_000, "NN-1")
    invoices.invoice_pay(invoice=paid, acting_user=crew["finance"])
    record(crew, 500_000, "NN-2")  # waiting for approval: counted as taken
    figures = next(f for f in selectors.line_figures(crew["budget"]) if f.description == "District nursing")
    assert invoices.line_money_left(line) == figures.remaining + figures.committed - 500_000 == 558_200 - 500_000
    with pytest.raises(invoices.InvoiceAmountRefused, match=re.escape("more than the £582.00 left")) as refused:
        record(crew, 58_201, "NN-3")
    assert "counting the £5,000.00 of invoices already waiting to be paid from it" in str(refused.value)
    assert record(crew, 58_200, "NN-3").amount_pence == 58_200  # exactly what is left


def test_an_invoice_recorded_before_the_check_is_refused_at_approval_and_left_out_of_runs(crew):
    """QA's £99,999 invoice, recorded before the line's limit was checked."""
    line = crew["line"]
    too_big = Invoice.objects.create(
        budget_line=line,
        provider=line.plan_line.provider,
        invoice_number="NN-99",
        invoice_date=START,
        amount_pence=9_999_900,
        recorded_by=crew["finance"],
    )
    with pytest.raises(invoices.InvoiceAmountRefused, match=r"more than the £6,032\.00 left on District nursing"):
        invoices.invoice_approve(invoice=too_big, acting_user=crew["manager"])
    too_big.refresh_from_db()
    assert too_big.status == InvoiceStatus.RECORDED
    Invoice.objects.filter(pk=too_big.pk).update(status=InvoiceStatus.APPROVED, approved_by=crew["manager"])
    run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    assert left_out == [too_big] and not run.items.filter(invoice=too_big).exists()
    assert payment_runs.left_out_reason(too_big) == (
        "Invoice NN-99 from Northumbria Nursing: this is more than the £6,032.00 left on District nursing for the "
        "year. Reject it, or ask the provider for a corrected one"
    )


def test_the_invoice_page_shows_the_limit_beside_the_amount(client, crew):
    client.force_login(crew["finance"])
    url = reverse("budgets:invoice-record", kwargs={"pk": crew["budget"].pk})
    body = {"line": crew["line"].pk, "invoice_number": "NN-1", "invoice_date": "2026-12-01", "amount": "99999.00"}
    page = client.post(url, body).content.decode()
    assert "This is more than the £6,032.00 left on District nursing for the year" in page
    assert 'href="#id_amount"' in page and not Invoice.objects.exists()
    client.force_login(crew["manager"])
    mine = Invoice.objects.create(
        budget_line=crew["line"],
        provider=crew["line"].plan_line.provider,
        invoice_number="NN-99",
        invoice_date=START,
        amount_pence=9_999_900,
        recorded_by=crew["finance"],
    )
    listed = client.post(reverse("budgets:invoices"), {"invoice": mine.pk, "action": "approve"}).content.decode()
    assert "This is more than the £6,032.00 left on District nursing for the year" in listed
    assert "nhsuk-error-summary" in listed


def test_a_payment_that_could_not_be_paid_is_taken_out_and_its_invoice_rejected(client, short_run):
    run, invoice = short_run["run"], short_run["invoice"]
    item = run.items.get(invoice=invoice)
    run_url = reverse("budgets:payment-run", kwargs={"pk": run.pk})
    # Before: the invoice sits in the run, and cannot be rejected.
    with pytest.raises(services.BudgetError, match="not yet in a payment run"):
        invoices.invoice_reject(invoice=invoice, acting_user=short_run["manager"], reasons="Too much")
    paid_item = run.items.filter(paid_at__isnull=False).first()
    with pytest.raises(services.BudgetError, match="could not pay"):
        payment_runs.payment_run_item_remove(run=run, item_id=paid_item.pk, acting_user=short_run["manager"])
    client.force_login(user_with_role(Role.AUDITOR))
    assert client.post(run_url, {"action": "remove", "item": item.pk}).status_code == 404

    client.force_login(short_run["manager"])
    for junk in ("", "abc", "99999999999999999999", str(paid_item.pk)):
        refused = client.post(run_url, {"action": "remove", "item": junk})
        assert refused.status_code == 200 and "nhsuk-error-summary" in refused.content.decode()
    taken = client.post(run_url, {"action": "remove", "item": item.pk}, follow=True).content.decode()
    assert f"Invoice NN-1 is taken out of payment run {run.pk}. The invoice can now be rejected" in taken
    assert "Taken out of this run" in taken and "It was not paid: the budget does not hold enough" in taken
    assert not PaymentRunItem.objects.filter(pk=item.pk).exists()
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED  # everything left in it is paid

    # The audit trail: the item's last state, under a context naming who took it out.
    event = PaymentRunItem.pgh_event_model.objects.get(
        pgh_obj_id=item.pk, pgh_context__metadata__action="payment_run_item_remove"
    )
    assert event.invoice_id == invoice.pk and event.run_id == run.pk and event.paid_at is None
    assert event.pgh_context.metadata["action"] == "payment_run_item_remove"
    assert event.pgh_context.metadata["user"] == short_run["manager"].pk
    assert event.failure.startswith(f"Taken out of payment run {run.pk} by {short_run['manager'].full_name}")
    assert Transfer.objects.filter(idempotency_key__startswith=f"{invoice.ledger_key}:").count() == 0

    listed = client.get(reverse("budgets:invoices")).content.decode()
    reject_url = reverse("budgets:invoice-reject", kwargs={"pk": invoice.pk})
    assert reject_url in listed and "Paid in the next payment run" in listed
    assert client.post(reject_url, {"reasons": "The budget cannot pay £5,000"}).status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REJECTED and ledger_verify().ok


def test_an_invoice_taken_out_of_a_run_is_paid_by_a_later_run_once_the_money_is_there(short_run):
    run, invoice = short_run["run"], short_run["invoice"]
    item = run.items.get(invoice=invoice)
    payment_runs.payment_run_item_remove(run=run, item_id=item.pk, acting_user=short_run["finance"])
    with pytest.raises(services.BudgetError, match="no longer in this run"):
        payment_runs.payment_run_item_remove(run=run, item_id=item.pk, acting_user=short_run["finance"])
    budget = short_run["budget"]
    # The ICB adds to its holding for the budget (as the notice-period funding does): now the invoice can be paid.
    from ledger import services as ledger

    ledger.transfer_post(
        key=f"{budget.owner_ref}:allocation:top-up",
        debit_account_id=held(budget).pk,
        credit_account_id=budget.accounts.get(purpose="funding:icb").account_id,
        amount=500_000,
        code="allocation",
        effective_date=START,
        reference=budget.owner_ref,
        acting_user=short_run["finance"],
    )
    later = paid_run(short_run)
    assert list(later.items.values_list("invoice", flat=True)) == [invoice.pk]
    invoice.refresh_from_db()
    assert later.status == RunStatus.POSTED and invoice.status == InvoiceStatus.PAID
    assert b"NORTH NURSING" in payment_runs.payment_run_bacs_file(later)
    assert ledger_verify().ok


# --- 3. A run's date, what it gathers, and how its money is dated -----------------------------------------------


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ({"run_date[day]": "1", "run_date[month]": "1", "run_date[year]": "1900"}, "The date must be today or later"),
        ("2026-11-30", "The date must be today or later"),
        ("2027-01-31", "The date must be no more than 60 days from today, so 30 January 2027 or earlier"),
    ],
)
def test_a_run_date_before_today_or_more_than_60_days_ahead_is_refused_on_the_date_field(client, crew, typed, error):
    client.force_login(crew["finance"])
    body = typed if isinstance(typed, dict) else {"run_date": typed}
    page = client.post(reverse("budgets:payment-runs"), body)
    assert page.status_code == 200 and not PaymentRun.objects.exists()
    text = page.content.decode()
    assert error in text and 'href="#id_run_date' in text


def test_today_and_the_furthest_date_allowed_are_taken(client, crew):
    assert payment_runs.run_date_problem(START) is None
    client.force_login(crew["finance"])
    created = client.post(reverse("budgets:payment-runs"), {"run_date": "2027-01-30"})
    assert created.status_code == 302 and PaymentRun.objects.get().run_date == datetime.date(2027, 1, 30)


def test_the_api_refuses_a_run_date_in_the_past(client, crew):
    from tests.mfa import TwoFactorClient

    api = TwoFactorClient()
    api.force_login(crew["finance"])
    answer = api.post("/api/budgets/payment-runs/", {"run_date": "1900-01-01"}, content_type="application/json")
    assert answer.status_code == 400 and answer.json()["run_date"] == ["The date must be today or later"]
    assert not PaymentRun.objects.exists()


def test_a_run_gathers_only_what_is_due_by_its_date(crew):
    """Invoices are due on their date, and an invoice the person paid from their direct payment on the day they
    confirmed it: a run prepared for an earlier day leaves both for a later run."""
    budget = crew["budget"]
    dp_line = budget.lines.get(management_type="direct_payment")
    provider = dp_line.plan_line.provider
    provider.sort_code, provider.account_number = "112233", "44556677"
    provider.save()
    paid_run(crew)  # the first day's instalments, so the person has money to pay with
    later = START + datetime.timedelta(days=3)
    with at(later):
        nursing = approved(crew, 45_000, "NN-4")
        Invoice.objects.filter(pk=nursing.pk).update(invoice_date=later)
        person_invoice = dp_invoices.dp_invoice_pay(
            budget=budget,
            line=dp_line,
            provider=provider,
            invoice_number="HS-1",
            amount_pence=1_200,
            key="k-1",
            acting_user=crew["finance"],
        )
    with at(START + datetime.timedelta(days=1)):
        assert not payment_runs.anything_due(START + datetime.timedelta(days=2))
        early, _ = payment_runs.payment_run_create(
            run_date=START + datetime.timedelta(days=2), acting_user=crew["finance"]
        )
    assert early.items.count() == 0
    with at(later):
        run, _ = payment_runs.payment_run_create(run_date=later, acting_user=crew["finance"])
    assert {item.paying_for for item in run.items.all()} == {"Invoice NN-4", "Invoice HS-1 (direct payment)"}
    assert {item.due_on for item in run.items.all()} == {later}
    assert DirectPaymentInvoice.objects.get(pk=person_invoice.pk).run_item.run == run


def test_a_run_paid_after_its_date_is_dated_the_day_it_is_paid_never_before(crew):
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    payment_runs.payment_run_approve(run=run, acting_user=crew["manager"])
    paid_on = START + datetime.timedelta(days=4)
    with at(paid_on):
        payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    cash_out = Transfer.objects.filter(reference=run_reference(run.pk))
    assert cash_out.count() == 2 and set(cash_out.values_list("effective_date", flat=True)) == {paid_on}
    assert payment_runs.payment_day(run) == paid_on
    assert f"{paid_on:%y}{paid_on.timetuple().tm_yday:03d}" in payment_runs.payment_run_bacs_file(run).decode()
    assert payment_runs.payment_run_csv(run).decode().splitlines()[1].endswith(paid_on.isoformat())


def test_a_run_dated_1900_before_the_fix_pays_nothing_dated_before_today_or_the_budget(crew):
    """QA's run 'Pays what is due by 1 January 1900', prepared before dates were checked, then paid."""
    budget = crew["budget"]
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    PaymentRun.objects.filter(pk=run.pk).update(run_date=datetime.date(1900, 1, 1))
    payment_runs.payment_run_approve(run=run, acting_user=crew["manager"])
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    assert not Transfer.objects.filter(effective_date__lt=budget.start_date).exists()
    assert set(Transfer.objects.filter(reference=run_reference(run.pk)).values_list("effective_date", flat=True)) == {
        START
    }
    assert "1900" not in payment_runs.payment_run_csv(run).decode() and payment_runs.payment_day(run) == START


# --- 4. The API takes a payment out of a run as the page does; 5. preparing a run reads once per run ---------------


def api_client(user):
    from tests.mfa import TwoFactorClient

    api = TwoFactorClient()  # finance staff have passed their second factor
    api.force_login(user)
    return api


def take_out(api, run_id: int, body: dict):
    url = reverse("budgets-api:payment-run-take-out", kwargs={"pk": run_id})
    return api.post(url, body, content_type="application/json")


def test_the_api_takes_a_payment_that_could_not_be_paid_out_of_the_run_with_the_same_audit(short_run):
    run, invoice = short_run["run"], short_run["invoice"]
    item = run.items.get(invoice=invoice)
    paid_item = run.items.filter(paid_at__isnull=False).first()
    manager = api_client(short_run["manager"])

    # Refusals: 4xx with the reason, and nothing changes.
    assert take_out(api_client(user_with_role(Role.AUDITOR)), run.pk, {"item": item.pk}).status_code == 403
    assert take_out(manager, 2_000_000_000, {"item": item.pk}).status_code == 404
    for body in ({}, {"item": "abc"}, {"item": 0}, {"item": 99_999_999_999_999_999_999}):
        answer = take_out(manager, run.pk, body)
        assert answer.status_code == 400 and "item" in answer.json()
    answer = take_out(manager, run.pk, {"item": paid_item.pk})
    assert answer.status_code == 409 and answer.json() == {"detail": payment_runs.TAKE_OUT_ONLY_UNPAID}
    answer = take_out(manager, run.pk, {"item": 2_000_000_000})
    assert answer.status_code == 409 and answer.json() == {"detail": payment_runs.NOT_IN_RUN}
    assert PaymentRunItem.objects.filter(pk=item.pk).exists()

    answer = take_out(manager, run.pk, {"item": item.pk})
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["id"] == run.pk and data["status"] == RunStatus.POSTED  # everything left in it is paid
    assert all(listed["paid"] for listed in data["items"]) and len(data["items"]) == 3
    assert data["taken_out"]["item"] == item.pk and data["taken_out"]["paying_for"] == "Invoice NN-1"
    assert data["taken_out"]["record"].startswith(f"Taken out of payment run {run.pk} by ")
    assert not PaymentRunItem.objects.filter(pk=item.pk).exists()
    # The same audit as the page: the item's last state, under a context naming who took it out.
    event = PaymentRunItem.pgh_event_model.objects.get(
        pgh_obj_id=item.pk, pgh_context__metadata__action="payment_run_item_remove"
    )
    assert event.pgh_context.metadata["user"] == short_run["manager"].pk and event.invoice_id == invoice.pk
    assert [e.pgh_obj_id for e in payment_runs.items_taken_out(run)] == [item.pk]
    again = take_out(manager, run.pk, {"item": item.pk})
    assert again.status_code == 409 and again.json() == {"detail": payment_runs.NOT_IN_RUN}
    assert not Transfer.objects.filter(idempotency_key__startswith=f"{invoice.ledger_key}:").exists()
    invoices.invoice_reject(invoice=invoice, acting_user=short_run["manager"], reasons="Too much")  # free again
    assert ledger_verify().ok


def test_the_take_out_endpoint_is_in_the_openapi_schema(short_run):
    schema = api_client(short_run["finance"]).get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/budgets/payment-runs/{id}/take-out/"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][body]["required"] == ["item"]
    assert {"200", "400", "409"} <= set(operation["responses"])
    refusal = operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][refusal]["properties"]) == {"detail"}
    assert "Take out of this run" in operation["description"]


def test_preparing_a_run_makes_as_many_queries_for_10_invoices_as_for_3(crew):
    """The lines' money left, the blocked payees and the bank details are read once per run, and the items are
    saved at once: nothing is read or written once an invoice."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def prepare(invoices_approved: int) -> tuple[int, dict]:
        with CaptureQueriesContext(connection) as queries:
            run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
        assert left_out == []
        counts = {
            "invoices": run.items.filter(invoice__isnull=False).count(),
            "instalments": run.items.filter(scheduled_payment__isnull=False).count(),
        }
        assert counts["invoices"] == invoices_approved and counts["instalments"] > 0
        payment_runs.payment_run_discard(run=run, acting_user=crew["finance"])  # all of it waits again
        return len(queries), counts

    for number in range(1, 4):
        approved(crew, 1_000 + number, f"NN-{number}")
    with_three, gathered_three = prepare(3)
    for number in range(4, 11):
        approved(crew, 1_000 + number, f"NN-{number}")
    with_ten, gathered_ten = prepare(10)
    assert gathered_ten["instalments"] == gathered_three["instalments"]
    assert with_ten == with_three, f"{with_three} queries for 3 invoices, {with_ten} for 10"
