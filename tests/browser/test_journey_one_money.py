"""Journey 1, the money half, in Chromium: the agreed three-line plan's budget is set up, the first payment
run pays the direct payment and the third party, and a provider invoice is paid under the notional line.
Afterwards every line's figures on the budget page equal the ledger and the trial balance balances."""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import Role
from budgets.models import Budget
from budgets.selectors import line_figures
from ledger import selectors as ledger_selectors
from ledger.models import Account
from tests.brokerage.helpers import agreed_crew
from tests.browser.axe import assert_accessible
from tests.browser.dates import fill_date
from tests.browser.test_sign_in_journeys import sign_in
from tests.budgets.test_payment_runs import add_bank_details
from tests.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_set_up_first_payment_run_and_an_invoice_paid(live_server, page: Page):
    crew = agreed_crew()
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=crew["icb"])
    today = datetime.date.today()
    base = live_server.url

    sign_in(page, base, crew["finance"].email)
    page.goto(f"{base}/plans/{crew['plan'].pk}/budget/set-up/")
    fill_date(page, "Start date", today)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Set up the budget").click()
    expect(page).to_have_url(re.compile(r"/budgets/\d+/$"))
    budget = Budget.objects.get(plan=crew["plan"])
    add_bank_details(budget)  # entered by an administrator before the first run

    page.get_by_role("link", name="Record a provider invoice").click()
    page.get_by_label("Plan line").select_option(label="District nursing")
    page.get_by_label("Invoice number").fill("NN-2026-118")
    fill_date(page, "Invoice date", today)
    page.get_by_label("Amount in pounds").fill("450.00")
    page.get_by_role("button", name="Record invoice").click()
    expect(page.get_by_role("row", name=re.compile("NN-2026-118"))).to_contain_text("Someone else must approve it")
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()

    # A finance manager checks the invoice, then prepares the run; the officer approves and pays it.
    sign_in(page, base, manager.email)
    page.get_by_role("link", name="Invoices", exact=True).click()
    page.get_by_role("button", name="Approve invoice NN-2026-118").click()
    expect(page.get_by_role("row", name=re.compile("NN-2026-118"))).to_contain_text("Paid in the next payment run")
    page.get_by_role("link", name="Payment runs", exact=True).click()
    fill_date(page, "Pay everything due on or before", today)
    page.get_by_role("button", name="Prepare a payment run").click()
    expect(page.get_by_role("row", name=re.compile("JOAN ROBSON PHB"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("TYNESIDE IUT"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Invoice NN-2026-118"))).to_be_visible()
    expect(page.get_by_role("table", name="By funder")).to_be_visible()
    run_url = page.url
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, base, crew["finance"].email)
    page.goto(run_url)
    page.get_by_role("button", name="Approve this payment run").click()
    page.get_by_role("button", name="Pay now").click()
    expect(page.get_by_text("Paid", exact=True).first).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.get_by_text("No invoices are waiting.")).to_be_visible()

    page.goto(f"{base}/budgets/{budget.pk}/")
    crew["plan"].refresh_from_db()
    assert crew["plan"].status == "active"
    for figures in line_figures(budget):
        account = Account.objects.get(code=figures.account_code)
        assert figures.spent == account.posted_balance
        assert figures.committed == account.debits_pending - account.credits_pending
        row = page.get_by_role("row", name=re.compile("^" + re.escape(figures.description)))
        expect(row).to_contain_text(f"£{figures.spent / 100:,.2f}")
    nursing = next(f for f in line_figures(budget) if f.description == "District nursing")
    assert nursing.spent == 45_000
    dp = Account.objects.get(code=f"budget:{budget.pk}:held:direct-payment")
    assert dp.posted_balance == 30_000 // 13
    assert ledger_selectors.trial_balance().balances
