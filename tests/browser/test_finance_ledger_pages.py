"""A finance officer reads the chart of accounts, a statement and the trial balance in Chromium."""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import Role
from ledger.models import AccountKind
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.dates import fill_date
from tests.browser.test_sign_in_journeys import sign_in
from tests.factories import user_with_role
from tests.ledger.helpers import open_account, post

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_officer_reads_accounts_statement_and_trial_balance(live_server, page: Page):
    funding = open_account("demo:funding", AccountKind.EQUITY)
    cash = open_account("demo:cash", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend = open_account("demo:spend", AccountKind.EXPENSE)
    post(cash, funding, 50_000, "allocation")
    post(spend, cash, 12_345, "dp_spend", description="Personal assistant wages")
    officer = user_with_role(Role.FINANCE_OFFICER)

    sign_in(page, live_server.url, officer.email)
    page.get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Chart of accounts")
    expect(page.get_by_role("row", name=re.compile("demo:cash"))).to_contain_text("£376.55")
    assert_accessible(page)

    page.get_by_role("link", name="demo:cash").click()
    fill_date(page, "From", datetime.date(2026, 10, 1))  # NHS.UK's day, month and year boxes
    fill_date(page, "To", datetime.date(2026, 10, 31), keyboard=True)
    page.get_by_role("button", name="Show statement").click()
    expect(page.get_by_role("row", name=re.compile("Personal assistant wages"))).to_contain_text("£376.55")
    assert_accessible(page)

    page.get_by_role("link", name="Trial balance").click()
    expect(page.get_by_text("Debits equal credits.")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^Total"))).to_contain_text("£500.00")
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV of this trial balance").click()
    assert download.value.suggested_filename.startswith("trial-balance-")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download Excel (XLSX) of this trial balance").click()
    assert download.value.suggested_filename.endswith(".xlsx")

    page.set_viewport_size({"width": 320, "height": 640})
    page.reload()
    assert_no_horizontal_scroll(page)

    page.get_by_role("link", name="Other exports: transfers and budget spend by plan line").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Finance exports")
    assert_accessible(page)
    fill_date(page, "From", datetime.date(2026, 10, 1))
    fill_date(page, "To", datetime.date(2026, 10, 31))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download Excel (XLSX)").click()
    assert download.value.suggested_filename == "transfers-2026-10-01-to-2026-10-31.xlsx"
    fill_date(page, "To", datetime.date(2026, 9, 1))
    page.get_by_role("button", name="Download CSV").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("The end date must be the same as or after")
    page.locator(".nhsuk-error-summary").get_by_role("link").click()  # the summary's link lands on the Day box
    expect(page.get_by_role("group", name="To", exact=True).get_by_label("Day", exact=True)).to_be_focused()
    assert_accessible(page)
    assert_no_horizontal_scroll(page)
