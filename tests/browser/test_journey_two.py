"""Journey 2 in Chromium with a representative's sign-in, keyboard first: see the balance and spend by plan line
(chart and table), record a purchase with its receipt, pay a provider's invoice from the direct payment after
checking the details, and pay a contribution by card (localstripe, credited by its signed webhook); axe finds
nothing on any page, and nothing scrolls sideways at 320 px."""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import Role
from brokerage.models import Representative
from budgets.models import CardPayment, DirectPaymentInvoice, DirectPaymentSpend
from ledger.models import Account
from providers.models import Provider
from tests.brokerage.helpers import agreed_crew
from tests.browser.axe import assert_no_horizontal_scroll
from tests.browser.dates import fill_date
from tests.browser.test_card_payment import choose_contribution_and_amount, enter_card
from tests.browser.test_plan_journey import Visited, key_fill, key_press
from tests.budgets.test_card_payments import stripe_webhooks  # noqa: F401 - a fixture
from tests.budgets.test_person_pages import PDF, budget_in_use
from tests.factories import TEST_PASSWORD, user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_representative_checks_the_budget_records_a_purchase_pays_an_invoice_and_pays_by_card(
    live_server,
    page: Page,
    tmp_path,
    settings,
    stripe_webhooks,  # noqa: F811 - the fixture imported above: localstripe, its webhooks to the live server
):
    settings.MEDIA_ROOT = tmp_path / "media"
    crew = agreed_crew(contribution_pounds=600)  # an assessed contribution, paid by card at the end
    today = datetime.date.today()
    budget = budget_in_use(crew, start=today - datetime.timedelta(days=28))  # the first instalments are paid
    representative = user_with_role(Role.REPRESENTATIVE)
    Representative.objects.create(
        person=crew["plan"].person,
        kind="representative",
        name=representative.full_name,
        relationship="son",
        basis="adult_lacking_capacity",
        user=representative,
    )
    dp_line = budget.lines.get(management_type="direct_payment")
    Provider.objects.filter(pk=dp_line.plan_line.provider_id).update(
        account_name="HARMONY", sort_code="112233", account_number="44556677"
    )
    visited = Visited(page)

    page.goto(live_server.url + "/sign-in/")
    key_fill(page.get_by_label("Email address"), representative.email)
    key_fill(page.get_by_label("Password", exact=True), TEST_PASSWORD)
    key_press(page.get_by_role("button", name="Sign in"))
    key_press(page.get_by_role("link", name="Budget", exact=True))
    expect(page.get_by_role("heading", level=1)).to_have_text("Personal health budget")
    expect(page.get_by_role("img", name=re.compile("Spending against the budget"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^Singing for lung health"))).to_be_visible()
    visited.check()
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    key_press(page.get_by_role("link", name="Record a purchase or payment"))
    key_fill(page.get_by_label("Who did you pay?"), "Harmony Singers")
    fill_date(page, "Date paid", today, keyboard=True)
    key_fill(page.get_by_label("Amount in pounds"), "6.00")
    page.get_by_label("What was it for?").select_option(label="Singing for lung health")
    with page.expect_file_chooser() as chooser:  # the NHS file-upload button opens it from the keyboard too
        key_press(page.get_by_label("Upload the receipt or invoice"))
    chooser.value.set_files(files=[{"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    visited.check()
    key_press(page.get_by_role("button", name="Record payment"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Transactions")
    expect(page.get_by_role("table", name="The latest purchases recorded, with their receipts")).to_contain_text(
        "Harmony Singers"
    )
    expect(page.get_by_role("row", name=re.compile("Paid to Harmony Singers"))).to_be_visible()
    visited.check()
    assert_no_horizontal_scroll_at_320(page)
    spend = DirectPaymentSpend.objects.get()
    assert spend.amount_pence == 600 and spend.receipt_type == "application/pdf"

    page.goto(f"{live_server.url}/my/budgets/{budget.pk}/")
    key_press(page.get_by_role("link", name="Pay an invoice from the direct payment"))
    page.get_by_label("Who sent the invoice?").select_option(label="Harmony Singers")
    key_fill(page.get_by_label("Invoice number"), "HS-2026-12")
    key_fill(page.get_by_label("Amount in pounds"), "12.50")
    page.get_by_label("What was it for?").select_option(label="Singing for lung health")
    visited.check()
    key_press(page.get_by_role("button", name="Continue"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Check before you pay")
    assert not DirectPaymentInvoice.objects.exists()  # nothing moves before the check
    visited.check()
    key_press(page.get_by_role("button", name="Pay £12.50"))
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Payment booked"))
    visited.check()
    invoice = DirectPaymentInvoice.objects.get()
    assert invoice.amount_pence == 1250 and invoice.status == "queued"
    held = Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment")
    assert held.available_balance == held.posted_balance - 1250  # set aside until the run pays it

    # A contribution by card: the card details go to Stripe (localstripe here), the ledger moves only when the
    # signed webhook arrives.
    page.goto(f"{live_server.url}/my/budgets/{budget.pk}/")
    key_press(page.get_by_role("link", name="Pay your assessed contribution by card"))
    choose_contribution_and_amount(page, "25.00")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your payment and pay by card")
    visited.check()
    enter_card(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
    visited.check()
    assert Account.objects.get(code=f"{budget.owner_ref}:card:contribution").posted_balance == 2500
    assert CardPayment.objects.get(budget=budget).paid_by == representative


def assert_no_horizontal_scroll_at_320(page: Page) -> None:
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 900})
