"""Paying by card in Chromium, against localstripe: the card details go from the browser to the local Stripe
server for a token (never to our server), the payment is credited when localstripe's signed webhook reaches the
live server, and a declined card changes nothing. Keyboard only; axe on every page."""

import re

import pytest
from playwright.sync_api import Page, expect

from budgets import card_payments
from budgets.models import CardPayment, CardPaymentStatus, StripeEvent
from ledger.models import Account, Transfer
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.test_sign_in_journeys import sign_in
from tests.budgets.test_card_payments import crew_with_patient, stripe_webhooks, wait_for  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def type_into(page: Page, label: str, text: str) -> None:
    page.get_by_label(label, exact=True).focus()
    page.keyboard.type(text)


def choose_contribution_and_amount(page: Page, amount: str) -> None:
    page.get_by_label("My assessed contribution").focus()
    page.keyboard.press("Space")
    type_into(page, "How much do you want to pay?", amount)
    page.keyboard.press("Enter")


def enter_card(page: Page, number: str) -> None:
    type_into(page, "Card number", number)
    page.keyboard.press("Tab")
    page.keyboard.type("12")
    page.keyboard.press("Tab")
    page.keyboard.type("30")
    page.keyboard.press("Tab")
    page.keyboard.type("123")
    page.keyboard.press("Enter")


def test_a_patient_pays_a_contribution_by_card_and_a_declined_card_changes_nothing(
    live_server,
    page: Page,
    stripe_webhooks,  # noqa: F811 - the fixture imported above
):
    crew = crew_with_patient()
    budget = crew["budget"]
    base = live_server.url
    posted_to_us: list[str] = []
    page.on("request", lambda r: posted_to_us.append(r.post_data or "") if r.url.startswith(base) else None)

    sign_in(page, base, crew["patient"].email)
    page.goto(f"{base}/my/budgets/{budget.pk}/pay-by-card/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay by card")
    assert_accessible(page)

    # The only thing owed is chosen already; no amount: the NHS error summary, focused.
    expect(page.get_by_label("My assessed contribution: £1,200.00 still to pay")).to_be_checked()
    page.get_by_role("button", name="Continue").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator(".nhsuk-error-summary")).to_be_focused()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("Enter the amount")
    assert_accessible(page)

    choose_contribution_and_amount(page, "25.00")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your payment and pay by card")
    expect(page.locator(".nhsuk-summary-list")).to_contain_text("My assessed contribution")
    expect(page.get_by_role("button", name="Pay £25.00")).to_be_visible()
    assert_accessible(page)

    # A number Stripe would refuse is caught in the browser and shown like a server error.
    enter_card(page, "4242 4242 4242 4241")
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator(".nhsuk-error-summary")).to_be_focused()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("Enter your card number as it appears")
    expect(page.get_by_label("Card number", exact=True)).to_have_attribute(
        "aria-describedby", re.compile("card-number-error")
    )
    assert_accessible(page)

    page.get_by_label("Card number", exact=True).fill("")
    for label in ("Month", "Year", "Security code"):
        page.get_by_label(label, exact=True).fill("")
    page.wait_for_timeout(1100)  # NHS buttons ignore a second press within a second (preventDoubleClick)
    enter_card(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible(timeout=20_000)
    expect(page.locator(".nhsuk-panel")).to_contain_text("£25.00")
    assert_accessible(page)

    payment = CardPayment.objects.get(budget=budget)
    assert payment.status == CardPaymentStatus.SUCCEEDED
    transfer = Transfer.objects.get(code=card_payments.LEDGER_CODE, reference=budget.owner_ref)
    assert transfer.amount == 2500
    assert Account.objects.get(code=f"budget:{budget.pk}:card:contribution").posted_balance == 2500
    assert Account.objects.get(code=card_payments.STRIPE_BALANCE_CODE).posted_balance == 2500
    assert not any("4242" in body for body in posted_to_us)  # the card number only ever went to Stripe

    # A declined card: the message, a way to try again, and nothing in the ledger.
    page.goto(f"{base}/my/budgets/{budget.pk}/pay-by-card/")
    choose_contribution_and_amount(page, "40.00")
    enter_card(page, "4000 0000 0000 0341")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your payment did not go through")
    expect(page.get_by_text("No money has been taken")).to_be_visible()
    expect(page.get_by_role("button", name="Try again")).to_have_attribute("href", re.compile(r"amount=40\.00"))
    assert_accessible(page)
    # localstripe's signed payment_failed webhook follows a second later and agrees.
    declined = CardPayment.objects.exclude(pk=payment.pk).get(budget=budget)
    failed = StripeEvent.objects.filter(type="payment_intent.payment_failed", result__card_payment=declined.pk)
    assert wait_for(failed.exists)
    declined.refresh_from_db()
    assert declined.status == CardPaymentStatus.FAILED
    assert Transfer.objects.filter(code=card_payments.LEDGER_CODE).count() == 1
    assert Account.objects.get(code=card_payments.STRIPE_BALANCE_CODE).posted_balance == 2500
    assert not any("0341" in body for body in posted_to_us)


def test_the_card_form_at_320px_the_confirming_page_and_the_finance_list(live_server, page: Page, stripe_webhooks):  # noqa: F811
    crew = crew_with_patient()
    budget = crew["budget"]
    waiting = CardPayment.objects.create(
        budget=budget,
        purpose="contribution",
        amount_pence=1234,
        status=CardPaymentStatus.PROCESSING,
        intent_id="pi_waiting",
        idempotency_key="browser:waiting",
        paid_by=crew["patient"],
    )
    started = card_payments.card_payment_start(
        budget=budget, purpose="contribution", amount_pence=5000, acting_user=crew["patient"], key="browser:started"
    )
    base = live_server.url
    sign_in(page, base, crew["patient"].email)
    page.set_viewport_size({"width": 320, "height": 800})
    page.goto(f"{base}/my/budgets/{budget.pk}/card-payments/{started.pk}/")
    expect(page.get_by_role("button", name="Pay £50.00")).to_be_visible()
    assert_no_horizontal_scroll(page)
    page.goto(f"{base}/my/budgets/{budget.pk}/pay-by-card/")
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base}/my/budgets/{budget.pk}/card-payments/{waiting.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("We are confirming your payment")
    expect(page.get_by_role("link", name="Check again")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()

    CardPayment.objects.filter(pk=waiting.pk).update(status=CardPaymentStatus.SUCCEEDED)
    sign_in(page, base, crew["finance"].email)
    page.get_by_role("link", name="Card payments and refunds").click()
    expect(page.get_by_role("row", name=re.compile(f"Card payment {waiting.pk}"))).to_contain_text("£12.34")
    type_into(page, f"Amount to refund from card payment {waiting.pk}", "99.00")
    page.keyboard.press("Enter")
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("You can refund at most £12.34")
    assert_accessible(page)
