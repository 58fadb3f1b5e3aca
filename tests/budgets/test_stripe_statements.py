"""Stripe's statements (balance transactions and payouts) brought in through the payments gateway and reconciled
like a bank's; payment runs recorded on the real account the money left (the ICB's bank or the Stripe balance).

The gateway is checked against localstripe (charges and refunds on its balance history), against recorded
Stripe JSON for what localstripe lacks (filters, expansion, paging, payouts in pounds), and the whole flow with
the in-memory fake, which keeps a Stripe-shaped balance with UK card fees."""

from __future__ import annotations

import datetime
import json
import urllib.parse

import pytest
import responses
import time_machine
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse

from accounts.roles import Role
from budgets import cash, payment_runs, payments
from budgets.card_payments import card_payment_refund, stripe_balance_account
from budgets.ending import icb_bank_account
from budgets.models import HolderBankAccount, PayoutMethod
from budgets.payments import StripeGateway
from config.formatting import format_date
from ledger import matching, reconciliation
from ledger.models import CashAccount, CsvMapping, Match, StatementLine, StatementSource, Transfer
from ledger.statements_import import ImportRefused, statement_import
from ledger.verification import ledger_verify
from tests.budgets.test_card_payments import crew_with_patient, deliver, paid_event
from tests.budgets.test_payment_runs import START
from tests.factories import user_with_role

UTC = datetime.UTC


def stripe_cash(start: datetime.date) -> CashAccount:
    return CashAccount.objects.create(
        account=stripe_balance_account(), name="Stripe (GBP)", source=StatementSource.STRIPE, reconcile_from=start
    )


def card_paid(client, crew, fake, amount_pence):
    payment, event = paid_event(crew, fake, amount_pence)
    assert deliver(client, fake, event).status_code == 200
    payment.refresh_from_db()
    return payment


# --- The whole flow, with the fake ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_card_payments_refunds_fees_and_a_payout_reconcile_and_importing_again_adds_nothing(client, fake_payments):
    today = datetime.date.today()
    crew = crew_with_patient()
    account = stripe_cash(today - datetime.timedelta(days=7))
    paid = [card_paid(client, crew, fake_payments, amount) for amount in (2500, 4000, 2500)]
    card_payment_refund(payment=paid[1], amount_pence=1000, acting_user=crew["finance"])
    fees = sum(payments.uk_card_fee(p.amount_pence) for p in paid)
    payout = fake_payments.payout(2500 + 4000 + 2500 - 1000 - fees)

    record = cash.stripe_statement_import(cash_account=account, start=today, end=today, acting_user=crew["finance"])

    assert record.lines_added == 8  # 3 charges, their 3 fees, 1 refund, 1 payout
    lines = StatementLine.objects.filter(cash_account=account)
    assert sorted(lines.values_list("amount", flat=True)) == sorted(
        [2500, 4000, 2500, -1000, -payout.amount_pence] + [-payments.uk_card_fee(p.amount_pence) for p in paid]
    )
    charges = lines.filter(amount__gt=0)
    assert set(charges.values_list("reference", flat=True)) == {crew["budget"].owner_ref}
    assert Transfer.objects.filter(code="stripe_fee").count() == 3
    [moved] = Transfer.objects.filter(code="stripe_payout")
    assert (moved.debit_account_id, moved.reference, moved.amount) == (
        icb_bank_account().pk,
        payout.id,
        payout.amount_pence,
    )

    counts = matching.auto_match(account)
    assert counts["reference"] == 8 and matching.unmatched_lines(account).count() == 0
    assert Match.objects.filter(line__cash_account=account, automatic=True).count() == 8
    report = reconciliation.report(account, today)
    assert report.reconciled and report.statement_balance == report.ledger_balance == 0

    # The payout is also a line on the bank's statement: the same transfer matches there too, once.
    mapping = CsvMapping.objects.create(
        name="Bank", date_column="Date", description_column="Details", amount_column="Amount", date_format="%Y-%m-%d"
    )
    bank = CashAccount.objects.create(
        account=icb_bank_account(), name="Bank", csv_mapping=mapping, reconcile_from=today - datetime.timedelta(days=7)
    )
    csv = f"Date,Details,Amount\n{today.isoformat()},STRIPE PAYMENTS UK,{payout.amount_pence / 100:.2f}\n"
    statement_import(cash_account=bank, filename="bank.csv", data=csv.encode(), acting_user=crew["finance"])
    assert matching.auto_match(bank)["amount_date"] == 1
    assert reconciliation.report(bank, today).reconciled and reconciliation.report(account, today).reconciled

    again = cash.stripe_statement_import(
        cash_account=account, start=today - datetime.timedelta(days=3), end=today, acting_user=crew["finance"]
    )
    assert (again.lines_added, again.lines_already_imported) == (0, 8)
    assert Transfer.objects.filter(code__in=["stripe_fee", "stripe_payout"]).count() == 4
    assert ledger_verify().ok


@pytest.mark.django_db
def test_a_payment_run_leaves_the_bank_as_one_bacs_line_and_stripe_as_a_connect_transfer(fake_payments):
    agreed = crew_with_patient()
    budget = agreed["budget"]
    HolderBankAccount.objects.filter(organisation__isnull=False).update(stripe_account_id="acct_tyneside")
    officer, manager = agreed["finance"], user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    with time_machine.travel(datetime.datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False):
        run, _ = payment_runs.payment_run_create(run_date=START, acting_user=officer)
        payment_runs.payment_run_approve(run=run, acting_user=manager)
        payment_runs.payment_run_post(run=run, acting_user=officer)
    bacs_items = run.items.filter(method=PayoutMethod.BACS)
    [connect_item] = run.items.filter(method=PayoutMethod.CONNECT)
    bank_out = Transfer.objects.filter(credit_account=icb_bank_account(), code="bacs_payment")
    assert bank_out.count() == bacs_items.count() >= 1
    assert set(bank_out.values_list("reference", flat=True)) == {cash.run_reference(run.pk)}
    bacs_total = sum(item.amount_pence for item in bacs_items)

    # The bank prints the whole file as one line: the group rule matches it to every item of the run.
    mapping = CsvMapping.objects.create(
        name="Test bank", date_column="Date", description_column="Details", amount_column="Amount",
        reference_column="Reference", date_format="%Y-%m-%d",
    )  # fmt: skip
    bank = CashAccount.objects.create(
        account=icb_bank_account(), name="ICB bank", source=StatementSource.CSV, csv_mapping=mapping,
        reconcile_from=datetime.date(2026, 11, 1),
    )  # fmt: skip
    csv = f"Date,Details,Reference,Amount\n2026-12-01,BACS FILE,PHB RUN {run.pk},-{bacs_total / 100:.2f}\n"
    statement_import(cash_account=bank, filename="dec.csv", data=csv.encode(), acting_user=officer)
    counts = matching.auto_match(bank)
    assert counts["group" if bacs_items.count() > 1 else "reference"] == 1
    assert matching.unmatched_lines(bank).count() == 0
    assert reconciliation.report(bank, datetime.date(2026, 12, 31)).reconciled

    account = stripe_cash(datetime.date(2026, 11, 1))
    cash.stripe_statement_import(
        cash_account=account, start=datetime.date(2026, 12, 1), end=datetime.date(2026, 12, 1), acting_user=officer
    )
    [line] = StatementLine.objects.filter(cash_account=account)
    connect_item.refresh_from_db()
    assert (line.amount, line.reference) == (-connect_item.amount_pence, connect_item.gateway_transfer_id)
    assert matching.auto_match(account)["reference"] == 1
    assert budget.pk and ledger_verify().ok


@pytest.mark.django_db
@pytest.mark.parametrize("cancelled", [False, True], ids=["failed", "cancelled"])
def test_a_payout_fetched_on_its_way_that_then_fails_is_reversed_and_cancels_out_at_the_bank(
    client, fake_payments, cancelled
):
    today = datetime.date.today()
    crew = crew_with_patient()
    finance = crew["finance"]
    account = stripe_cash(today - datetime.timedelta(days=7))
    bank = CashAccount.objects.create(
        account=icb_bank_account(), name="Bank", reconcile_from=today - datetime.timedelta(days=7)
    )
    card_paid(client, crew, fake_payments, 5000)
    payout = fake_payments.payout(5000 - payments.uk_card_fee(5000), status="pending" if cancelled else "in_transit")
    cash.stripe_statement_import(cash_account=account, start=today, end=today, acting_user=finance)
    [sent] = Transfer.objects.filter(code="stripe_payout")
    # On its way: the bank has not shown it yet, so the bank's reconciliation lists it.
    assert [item.id for item in reconciliation.report(bank, today).ledger_only] == [sent.pk]

    fake_payments.payout_fails(payout.id, cancelled=cancelled)
    record = cash.stripe_statement_import(cash_account=account, start=today, end=today, acting_user=finance)

    assert record.lines_added == 1
    [reversal] = Transfer.objects.filter(reverses=sent)
    assert (reversal.debit_account_id, reversal.credit_account_id, reversal.amount) == (
        account.account_id,
        icb_bank_account().pk,
        payout.amount_pence,
    )
    back = StatementLine.objects.get(cash_account=account, amount=payout.amount_pence)
    assert back.reference == payout.id and ("cancelled" if cancelled else "failed") in back.description
    assert matching.auto_match(account)["reference"] == 4  # the charge, its fee, the payout and its return
    assert reconciliation.report(account, today).reconciled
    at_the_bank = reconciliation.report(bank, today)
    assert at_the_bank.ledger_only == [] and at_the_bank.reconciled and at_the_bank.ledger_balance == 0

    again = cash.stripe_statement_import(cash_account=account, start=today, end=today, acting_user=finance)
    assert again.lines_added == 0 and Transfer.objects.filter(reverses=sent).count() == 1
    assert ledger_verify().ok


@pytest.mark.django_db
def test_payouts_that_failed_are_left_out_and_other_currencies_are_listed(fake_payments):
    finance = user_with_role(Role.FINANCE_OFFICER)
    today = datetime.date.today()
    account = stripe_cash(today)
    fake_payments.payout(1200, status="failed")
    with pytest.raises(ImportRefused, match="no movements"):
        cash.stripe_statement_import(cash_account=account, start=today, end=today, acting_user=finance)
    now = datetime.datetime.now(tz=UTC)
    fake_payments.movements.append(
        payments.BalanceTransaction("txn_eur", now, "adjustment", 500, 0, "eur", "Adjustment", "adj_1")
    )
    fake_payments.movements.append(
        payments.BalanceTransaction("txn_gbp", now, "adjustment", -300, 0, "gbp", "Dispute fee", "adj_2")
    )
    record = cash.stripe_statement_import(cash_account=account, start=today, end=today, acting_user=finance)
    assert record.lines_added == 1
    assert record.bad_lines and "EUR, not pounds" in record.bad_lines[0][1]
    assert Transfer.objects.filter(code="stripe_payout").count() == 0


# --- The finance page -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_fetch_page_is_for_finance_only_and_explains_bad_dates_and_outages(client, fake_payments, monkeypatch):
    today = datetime.date.today()
    account = stripe_cash(today)
    url = reverse("budgets:stripe-import", kwargs={"pk": account.pk})
    for role in (Role.AUDITOR, Role.PATIENT, Role.CARE_BROKER):
        client.force_login(user_with_role(role))
        assert client.get(url).status_code == 404
    finance = user_with_role(Role.FINANCE_OFFICER)
    client.force_login(finance)
    page = client.get(reverse("ledger:reconcile-account", kwargs={"pk": account.pk})).content.decode()
    assert f'href="{url}"' in page and "Fetch Stripe" in page
    assert client.get(url).status_code == 200

    bad = client.post(url, {"start": today.isoformat(), "end": (today - datetime.timedelta(days=1)).isoformat()})
    assert bad.status_code == 200 and "The last day must be the same as or after the first day" in bad.content.decode()
    assert "nhsuk-error-summary" in bad.content.decode()

    def outage(**_kwargs):
        raise payments.GatewayError("Stripe is not answering; try again in a few minutes")

    monkeypatch.setattr(fake_payments, "balance_transactions", outage)
    down = client.post(url, {"start": today.isoformat(), "end": today.isoformat()})
    assert down.status_code == 200 and "Stripe could not be reached" in down.content.decode()
    monkeypatch.undo()

    nothing = client.post(url, {"start": today.isoformat(), "end": today.isoformat()}, follow=True).content.decode()
    assert f"Stripe has no movements from {format_date(today)} to {format_date(today)}" in nothing
    assert "there was nothing to fetch" in nothing and "nhsuk-error-summary" not in nothing

    fake_payments.payout(700)
    done = client.post(url, {"start": today.isoformat(), "end": today.isoformat()}, follow=True)
    assert "Fetched 1 new line from Stripe" in done.content.decode()
    assert StatementLine.objects.filter(cash_account=account).count() == 1

    bank = CashAccount.objects.create(account=icb_bank_account(), name="Bank", reconcile_from=today)
    assert client.get(reverse("budgets:stripe-import", kwargs={"pk": bank.pk})).status_code == 404


# --- The gateway against localstripe and recorded Stripe responses -----------------------------------------------


def test_localstripe_balance_history_gives_charges_and_refunds_with_their_payment_intents(localstripe):
    gateway = StripeGateway("sk_test_local", api_base=localstripe)
    since = datetime.datetime.now(tz=UTC) - datetime.timedelta(seconds=5)
    intent = gateway.create_intent(
        amount_pence=3100,
        description="",
        metadata={"budget": "1"},
        idempotency_key=f"bt-{since.timestamp()}",
        payment_method="pm_card_visa",
        confirm=True,
    )
    gateway.refund(intent_id=intent.id, amount_pence=3100, idempotency_key=f"bt-refund-{since.timestamp()}")
    until = datetime.datetime.now(tz=UTC) + datetime.timedelta(seconds=5)
    mine = [m for m in gateway.balance_transactions(since=since, until=until) if m.payment_intent_id == intent.id]
    assert sorted((m.type, m.amount_pence) for m in mine) == [("charge", 3100), ("refund", -3100)]
    assert all(m.currency == "gbp" and m.id.startswith("txn_") for m in mine)
    assert gateway.balance_transactions(since=until, until=until + datetime.timedelta(hours=1)) == []


STRIPE_API = "https://api.stripe.com/v1"


def _page(objects, has_more):
    return {"object": "list", "data": objects, "has_more": has_more, "url": "/v1/balance_transactions"}


@responses.activate
def test_real_stripe_is_asked_for_the_dates_with_sources_expanded_and_every_page_is_read():
    since = datetime.datetime(2026, 10, 1, tzinfo=UTC)
    until = datetime.datetime(2026, 11, 1, tzinfo=UTC)
    created = int(since.timestamp()) + 3600
    charge = {
        "id": "txn_1", "object": "balance_transaction", "amount": 5000, "fee": 95, "currency": "gbp",
        "created": created + 10, "type": "charge", "description": None,
        "source": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"},
    }  # fmt: skip
    payout_txn = {
        "id": "txn_2", "object": "balance_transaction", "amount": -4905, "fee": 0, "currency": "gbp",
        "created": created, "type": "payout", "description": "STRIPE PAYOUT", "source": {"id": "po_1"},
    }  # fmt: skip
    responses.get(f"{STRIPE_API}/balance_transactions", json=_page([charge], True))
    responses.get(f"{STRIPE_API}/balance_transactions", json=_page([payout_txn], False))
    payout = {
        "id": "po_1", "object": "payout", "amount": 4905, "currency": "gbp", "created": created,
        "arrival_date": created + 2 * 86400, "status": "paid", "balance_transaction": "txn_2",
    }  # fmt: skip
    responses.get(f"{STRIPE_API}/payouts", json={"object": "list", "data": [payout], "has_more": False})

    gateway = StripeGateway("sk_test_recorded")
    movements = gateway.balance_transactions(since=since, until=until)
    [paid_out] = gateway.payouts(since=since, until=until)

    assert [(m.id, m.type, m.amount_pence, m.fee_pence, m.source, m.payment_intent_id) for m in movements] == [
        ("txn_1", "charge", 5000, 95, "ch_1", "pi_1"),
        ("txn_2", "payout", -4905, 0, "po_1", ""),
    ]
    assert (paid_out.id, paid_out.amount_pence, paid_out.balance_transaction_id) == ("po_1", 4905, "txn_2")
    assert paid_out.arrival_date == datetime.date(2026, 10, 3)
    first, second = (urllib.parse.parse_qs(urllib.parse.urlsplit(c.request.url).query) for c in responses.calls[:2])
    assert first["created[gte]"] == [str(int(since.timestamp()))]
    assert first["created[lt]"] == [str(int(until.timestamp()))]
    assert first["expand[0]"] == ["data.source"] and "starting_after" not in first
    assert second["starting_after"] == ["txn_1"]
    assert json.loads(json.dumps(movements[0].created.isoformat())).startswith("2026-10-01T01:00:10")


# --- Every morning, without anyone asking ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_daily_job_fetches_and_matches_stripe_as_the_scheduled_jobs_user(client, fake_payments, caplog):
    from accounts.models import SCHEDULED_JOBS_EMAIL
    from budgets import tasks

    today = datetime.date.today()
    crew = crew_with_patient()
    account = stripe_cash(today - datetime.timedelta(days=7))
    paid = card_paid(client, crew, fake_payments, 3000)
    tomorrow_morning = int(
        datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time(5, 30)).timestamp()
    )

    fake_payments.fail_next(payments.PaymentError("Stripe is down"))
    assert "Stripe is down" in tasks.stripe_statements_daily(timestamp=tomorrow_morning)["Stripe (GBP)"]["refused"]
    assert not StatementLine.objects.filter(cash_account=account).exists()
    assert "Stripe is down" in caplog.text

    outcome = tasks.stripe_statements_daily(timestamp=tomorrow_morning)
    assert outcome == {"Stripe (GBP)": {"added": 2, "matched": 2}}  # the charge and its fee, both matched
    assert sorted(StatementLine.objects.filter(cash_account=account).values_list("amount", flat=True)) == [
        -payments.uk_card_fee(paid.amount_pence),
        3000,
    ]
    assert matching.unmatched_lines(account).count() == 0
    [record] = account.imports.all()
    assert record.imported_by.email == SCHEDULED_JOBS_EMAIL
    assert not record.imported_by.is_active and not record.imported_by.has_usable_password()
    assert not record.imported_by.role_memberships.exists()
    signing_in = RequestFactory().post("/sign-in/")
    assert authenticate(signing_in, username=SCHEDULED_JOBS_EMAIL, password="!") is None  # it can never sign in

    # The next morning finds nothing new: nothing added, nothing posted twice.
    assert tasks.stripe_statements_daily(timestamp=tomorrow_morning)["Stripe (GBP)"] == {"added": 0, "matched": 0}
    assert Transfer.objects.filter(code="stripe_fee").count() == 1
    assert ledger_verify().ok


def test_the_daily_stripe_job_is_scheduled():
    from budgets import tasks
    from config.tasks import SCHEDULE

    assert any(task is tasks.stripe_statements_daily for _cron, _id, task in SCHEDULE)
