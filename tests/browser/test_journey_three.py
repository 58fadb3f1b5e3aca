"""Journey 3 in Chromium (DESIGN.md §1): a finance manager fetches Stripe's statement and imports the month's bank
statement, matches automatically, records the bank's charge by hand, closes the month and downloads a trial
balance that balances. axe finds nothing on any page.

The money is real money through the services: a budget set up, its first instalment paid by a payment run
(approved by someone else), a contribution paid by card and credited by its signed webhook, and a Stripe payout
of what was left. The gateway is the in-memory fake, which keeps a Stripe-shaped balance with UK card fees
(localstripe has no payouts in pounds)."""

from __future__ import annotations

import csv
import datetime
import io
import re

import pytest
import time_machine
from django.test import Client
from playwright.sync_api import Page, expect

from accounts.roles import Role
from budgets import payment_runs, payments, services
from budgets.card_payments import stripe_balance_account
from budgets.ending import icb_bank_account
from budgets.models import PayoutMethod
from ledger import services as ledger
from ledger.models import AccountKind, CashAccount, ClosedPeriod, CsvMapping, Match, StatementSource
from ledger.verification import ledger_verify
from tests.brokerage.helpers import agreed_crew
from tests.browser.axe import assert_accessible
from tests.browser.test_sign_in_journeys import sign_in
from tests.budgets.test_card_payments import deliver, paid_event
from tests.budgets.test_payment_runs import add_bank_details
from tests.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def a_month_of_money(fake) -> dict:
    today = datetime.date.today()
    crew = agreed_crew(contribution_pounds=600)  # paid in part by card below
    budget = services.budget_set_up(plan=crew["plan"], acting_user=crew["finance"], start_date=today)
    add_bank_details(budget)
    crew["patient"] = user_with_role(Role.PATIENT)
    crew["person"].user = crew["patient"]
    crew["person"].save(update_fields=["user"])
    crew["budget"] = budget
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=crew["icb"])
    run, _ = payment_runs.payment_run_create(run_date=today, acting_user=crew["finance"])
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    _payment, event = paid_event(crew, fake, 2500)
    assert deliver(Client(), fake, event).status_code == 200
    payout = fake.payout(2500 - payments.uk_card_fee(2500), days_to_arrive=0)
    ledger.account_open(code="icb:bank-charges", name="Bank charges", kind=AccountKind.EXPENSE, owner_ref="icb")
    mapping = CsvMapping.objects.create(
        name="NatWest", date_column="Date", description_column="Description", amount_column="Value",
        reference_column="Reference", balance_column="Balance",
    )  # fmt: skip
    first = today.replace(day=1)
    bank = CashAccount.objects.create(
        account=icb_bank_account(), name="ICB PHB account (NatWest)", source=StatementSource.CSV,
        csv_mapping=mapping, reconcile_from=first,
    )  # fmt: skip
    stripe = CashAccount.objects.create(
        account=stripe_balance_account(), name="Stripe (card payments)", source=StatementSource.STRIPE,
        reconcile_from=first,
    )  # fmt: skip
    bacs_total = sum(item.amount_pence for item in run.items.filter(method=PayoutMethod.BACS))
    rows = [
        (today, "BACS PAYMENT FILE", f"PHB RUN {run.pk}", -bacs_total),
        (today, "STRIPE PAYMENTS UK LTD", "", payout.amount_pence),
        (today, "SERVICE CHARGE", "", -750),
    ]
    out, balance = io.StringIO(), 0
    writer = csv.writer(out)
    writer.writerow(["Date", "Type", "Description", "Reference", "Value", "Balance"])
    for day, text, reference, amount in rows:
        balance += amount
        writer.writerow([f"{day:%d/%m/%Y}", "BAC", text, reference, f"{amount / 100:.2f}", f"{balance / 100:.2f}"])
    return {"manager": manager, "bank": bank, "stripe": stripe, "statement": out.getvalue().encode("utf-8-sig")}


def test_journey_three_reconcile_close_the_month_and_a_trial_balance_that_balances(
    live_server, page: Page, fake_payments, tmp_path
):
    world = a_month_of_money(fake_payments)
    today = datetime.date.today()
    statement = tmp_path / f"natwest-{today:%Y-%m}.csv"
    statement.write_bytes(world["statement"])

    sign_in(page, live_server.url, world["manager"].email)
    page.get_by_role("link", name="Reconciliation: bank statements, matching, month close").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bank reconciliation")
    assert_accessible(page)

    # Stripe first: fetching it records the payout the bank statement shows arriving.
    page.get_by_role("link", name="Stripe (card payments)", exact=True).click()
    page.get_by_role("link", name="Fetch Stripe's statement").click()
    assert_accessible(page)
    page.get_by_role("button", name="Fetch from Stripe").click()
    # The charge, its fee and the payout.
    expect(page.get_by_text("Fetched 3 new lines from Stripe")).to_be_visible()
    page.get_by_role("button", name="Match automatically").click()
    expect(page.get_by_text("Matched 3 lines automatically")).to_be_visible()
    expect(page.get_by_text("Reconciled", exact=True)).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Back to all cash accounts").click()
    page.get_by_role("link", name="ICB PHB account (NatWest)", exact=True).click()
    page.get_by_role("link", name="Import a statement").click()
    page.get_by_label("Statement file").set_input_files(str(statement))
    assert_accessible(page)
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported 3 new lines; 0 were already imported")).to_be_visible()
    page.get_by_role("button", name="Match automatically").click()
    expect(page.get_by_text("Matched 2 lines automatically")).to_be_visible()
    expect(page.get_by_text("Not reconciled")).to_be_visible()
    assert_accessible(page)

    # The bank's charge is not in the ledger: recorded from its line, with the reason.
    page.get_by_role("link", name="SERVICE CHARGE").click()
    page.get_by_label("Other account").select_option("icb:bank-charges")
    page.get_by_label("Kind of movement").fill("bank_charge")
    page.get_by_label("Why is this transfer missing from the ledger?").fill("NatWest's monthly service charge")
    assert_accessible(page)
    page.get_by_role("button", name="Record and match").click()
    expect(page.get_by_text("The transfer was recorded and matched.")).to_be_visible()
    expect(page.get_by_text("Reconciled", exact=True)).to_be_visible()
    assert Match.objects.filter(automatic=False, matched_by=world["manager"]).count() == 1

    page.goto(live_server.url + "/finance/ledger/period-close/")
    page.get_by_label("Month").fill(f"{today:%Y-%m}")
    page.get_by_role("button", name="Show checklist").click()
    # The month is still running: the checklist shows, but closing waits for the month's end.
    expect(page.get_by_text(f"{today:%B %Y} has not ended yet")).to_be_visible()
    expect(page.get_by_role("button", name=f"Close {today:%B %Y}")).to_have_count(0)

    next_month = (today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    with time_machine.travel(datetime.datetime.combine(next_month, datetime.time(9, 0)), tick=True):
        sign_in(page, live_server.url, world["manager"].email)  # a new day, a new session
        page.goto(live_server.url + "/finance/ledger/period-close/")
        page.get_by_label("Month").fill(f"{today:%Y-%m}")
        page.get_by_role("button", name="Show checklist").click()
        assert_accessible(page)
        page.get_by_role("button", name=f"Close {today:%B %Y}").click()
        expect(page.get_by_text(f"{today:%B %Y} is closed.")).to_be_visible()
        assert ClosedPeriod.objects.filter(month=today.replace(day=1)).exists()

        page.goto(live_server.url + "/finance/ledger/trial-balance/")
        expect(page.get_by_text("Debits equal credits.")).to_be_visible()
        assert_accessible(page)
        with page.expect_download() as download:
            page.get_by_role("link", name=re.compile("Download CSV")).first.click()
        with open(download.value.path(), encoding="utf-8-sig") as downloaded:
            rows = list(csv.reader(downloaded))
        [total] = [row for row in rows if row[0] == "TOTAL"]
        assert total[-2] == total[-1] and float(total[-1]) > 0
    assert ledger_verify().ok
