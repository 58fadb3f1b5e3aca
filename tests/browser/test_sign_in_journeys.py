"""Sign in as each role in a real Chromium, land on the dashboard, sign out; errors and accessibility."""

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.mfa import needs_two_factor
from accounts.models import User
from accounts.roles import PERSON_ROLES, Role
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll, axe_violations
from tests.factories import TEST_PASSWORD, user_with_role
from tests.mfa import authenticator_for, current_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CODE_PAGE = re.compile(r"/sign-in/code/(\?|$)")


def sign_in(page: Page, base_url: str, email: str, password: str = TEST_PASSWORD) -> None:
    """Email and password; then, for staff who approve or move money, the code their authenticator app shows (the
    app set up on an earlier visit: tests/mfa.py), typed into the code page."""
    user = User.objects.filter(email__iexact=email).first()
    device = authenticator_for(user) if user is not None and needs_two_factor(user) else None
    page.goto(base_url + "/sign-in/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    if device is not None and CODE_PAGE.search(page.url):
        page.get_by_label("Security code").fill(current_code(device))
        page.get_by_role("button", name="Continue").click()


@pytest.mark.parametrize("role", list(Role))
def test_each_role_signs_in_lands_on_its_dashboard_and_signs_out(live_server, page: Page, role):
    user = user_with_role(role)
    sign_in(page, live_server.url, user.email)
    if role in PERSON_ROLES:  # their one place to go: the budget (none yet for this user)
        expect(page).to_have_url(re.compile(r"/my/$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Budgets")
        assert_accessible(page)
        page.goto(live_server.url + f"/dashboard/{role.value}/")
    expect(page).to_have_url(re.compile(rf"/dashboard/{role.value}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{role.label} dashboard")
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(user.full_name)
    assert_accessible(page)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in/$"))
    page.goto(live_server.url + f"/dashboard/{role.value}/")
    expect(page).to_have_url(re.compile(r"/sign-in/\?next="))


def test_wrong_password_shows_a_focused_error_summary(live_server, page: Page):
    user = user_with_role(Role.CARE_BROKER)
    sign_in(page, live_server.url, user.email, "wrong-password")
    expect(page).to_have_title(re.compile(r"^Error: Sign in"))
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Enter a correct email address and password")
    assert_accessible(page)


def test_error_summary_links_move_focus_to_the_field(live_server, page: Page):
    page.goto(live_server.url + "/sign-in/")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Enter your password").click()
    expect(page.get_by_label("Password", exact=True)).to_be_focused()


def test_keyboard_alone_skip_link_then_sign_in(live_server, page: Page):
    user = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(user)
    page.goto(live_server.url + "/sign-in/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    # Tab from the main content start to the email field, type, tab to password, type, Enter submits.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_username":
            break
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    page.keyboard.type(TEST_PASSWORD)
    page.keyboard.press("Enter")
    # A finance officer enters the code from their authenticator app: tab to the field, type, Enter.
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your security code")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_code":
            break
    page.keyboard.type(current_code(device))
    page.keyboard.press("Enter")
    # The browser keeps the skip link's #maincontent across the redirects.
    expect(page).to_have_url(re.compile(r"/dashboard/finance_officer/(#maincontent)?$"))


@pytest.mark.parametrize(
    "path",
    [
        "/sign-in/",
        "/password-reset/",
        "/password-reset/sent/",
        "/accessibility/",
        "/privacy/",
        "/no-such-page/",
    ],
)
def test_public_pages_are_accessible_and_fit_a_320px_screen(live_server, page: Page, path):
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(live_server.url + path)
    assert_accessible(page)
    assert_no_horizontal_scroll(page)


def test_the_idle_warning_appears_and_staying_signed_in_keeps_the_session(live_server, page: Page, settings):
    settings.SESSION_IDLE_SECONDS = 8
    settings.SESSION_WARNING_SECONDS = 7
    user = user_with_role(Role.CARE_COORDINATOR)
    sign_in(page, live_server.url, user.email)
    dialog = page.get_by_role("dialog", name="You're about to be signed out")
    expect(dialog).to_be_visible(timeout=5000)
    assert_accessible(page)
    page.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    page.reload()
    expect(page).to_have_url(re.compile(r"/dashboard/care_coordinator/$"))


def test_axe_catches_a_broken_page(live_server, page: Page):
    """The accessibility check can fail: a page with an unlabelled input and no title has violations."""
    page.set_content("<html><body><input type='text'></body></html>")
    assert {v[0] for v in axe_violations(page)} >= {"label"}
