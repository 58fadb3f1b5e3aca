"""Two-factor authentication in a real Chromium: setting up an authenticator app, then signing in with a code."""

import base64
import re

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from accounts.roles import Role
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.factories import TEST_PASSWORD, user_with_role
from tests.mfa import authenticator_for, current_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def password_step(page: Page, base_url: str, email: str) -> None:
    page.goto(base_url + "/sign-in/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_set_up_the_app_then_sign_in_with_a_code(live_server, page: Page):
    manager = user_with_role(Role.FINANCE_MANAGER)
    password_step(page, live_server.url, manager.email)

    # First sign-in: set up the app. The page is accessible and fits a 320px screen.
    expect(page).to_have_url(re.compile(r"/account/two-factor/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-factor authentication")
    expect(page.get_by_role("img", name="QR code to scan with your authenticator app")).to_be_visible()
    assert page.evaluate("document.querySelector('img.app-qr-code').naturalWidth") > 0  # the SVG loads under the CSP
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 640})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Confirm and continue").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Enter the 6-digit security code")
    expect(page).to_have_title(re.compile(r"^Error: Set up two-factor authentication"))
    assert_accessible(page)

    # The app: the key as shown on the page, typed in by hand.
    secret = page.locator("#two-factor-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Security code").fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page).to_have_url(re.compile(r"/dashboard/finance_manager/$"))
    expect(page.get_by_role("status")).to_contain_text("Your authenticator app is set up")
    assert TOTPDevice.objects.get(user=manager).confirmed

    # Next sign-in: the code page, a wrong code, then the right one.
    page.get_by_role("button", name="Sign out").click()
    password_step(page, live_server.url, manager.email)
    expect(page).to_have_url(re.compile(r"/sign-in/code/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your security code")
    assert_accessible(page)
    device = TOTPDevice.objects.get(user=manager)
    right = current_code(device)
    page.get_by_label("Security code").fill(f"{(int(right) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("The security code is not correct")
    assert_accessible(page)
    page.get_by_role("link", name=re.compile("The security code is not correct")).click()
    expect(page.get_by_label("Security code")).to_be_focused()

    page.wait_for_timeout(1_100)  # django-otp's throttle: one second after a wrong code
    page.get_by_label("Security code").fill(current_code(device))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/dashboard/finance_manager/$"))
    page.goto(live_server.url + "/finance/ledger/trial-balance/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trial balance")


def test_the_page_asked_for_is_reached_through_the_code_page(live_server, page: Page):
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    # Finance pages answer 404 to someone signed out; a link to sign in and come back carries `next`.
    page.goto(live_server.url + "/sign-in/?next=/finance/ledger/trial-balance/")
    page.get_by_label("Email address").fill(officer.email)
    page.get_by_label("Password", exact=True).fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/sign-in/code/\?next=%2Ffinance%2Fledger%2Ftrial-balance%2F$"))
    page.set_viewport_size({"width": 320, "height": 640})
    assert_no_horizontal_scroll(page)
    page.get_by_label("Security code").fill(current_code(device))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/finance/ledger/trial-balance/$"))
