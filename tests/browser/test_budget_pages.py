"""The budget pages in Chromium with axe: set-up with its check step, the budget by line, invoices and runs."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.brokerage.helpers import agreed_crew
from tests.browser.axe import assert_accessible
from tests.browser.test_sign_in_journeys import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_set_up_a_budget_then_finance_pages_are_accessible(live_server, page: Page):
    crew = agreed_crew()
    plan, finance = crew["plan"], crew["finance"]

    sign_in(page, live_server.url, crew["broker"].email)
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    page.get_by_role("button", name="Set up the budget").click()
    assert_accessible(page)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check before you set up the budget")
    assert_accessible(page)
    page.get_by_role("button", name="Set up the budget").click()
    expect(page).to_have_url(re.compile(r"/budgets/\d+/$"))
    expect(page.get_by_role("row", name=re.compile("^District nursing Notional"))).to_contain_text("£6,032.00")
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server.url, finance.email)
    for link in ("Invoices", "Payment runs"):
        page.get_by_role("link", name=link, exact=True).click()
        assert_accessible(page)
    page.get_by_role("button", name="Prepare a payment run").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Payment run \d+"))
    assert_accessible(page)
