"""Inviting a person to sign in, in Chromium with axe: a broker invites them from their record (after an error summary),
the person opens the emailed link, chooses a password (after an error summary) and signs in; the used link then
explains it has expired."""

import re

import pytest
from playwright.sync_api import Page, expect
from procrastinate.contrib.django.models import ProcrastinateJob

from tests.brokerage.helpers import make_person, team
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.test_sign_in_journeys import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_job_queue")]

PASSWORD = "a-long-and-uncommon-passphrase-2026"


def test_inviting_a_person_and_choosing_a_password_are_accessible(live_server, page: Page):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])

    sign_in(page, live_server.url, crew["broker"].email)
    page.goto(f"{live_server.url}/people/{person.pk}/")
    expect(page.get_by_text("No sign-in")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Invite Joan Robson to sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invite Joan Robson to sign in")
    assert_accessible(page)
    page.get_by_role("button", name="Send the invitation").click()  # no address: the error summary
    expect(page.get_by_role("alert")).to_contain_text("Enter their email address")
    assert_accessible(page)
    page.get_by_role("link", name="Enter their email address").click()
    expect(page.get_by_label("Email address")).to_be_focused()
    page.get_by_label("Email address").fill("joan@example.org")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_text(re.compile(r"Invited on \d+ \w+ \d{4}, not signed in yet"))).to_be_visible()
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Sign out").click()

    (job,) = ProcrastinateJob.objects.filter(task_name="accounts.send_email")
    link = re.search(r"https?://[^/\s]+(/\S+)", job.args["body"]).group(1)
    page.goto(live_server.url + link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a password")
    assert_accessible(page)
    page.get_by_role("button", name="Save password").click()  # nothing typed: the error summary
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("New password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Save password").click()
    expect(page.get_by_text("Your password is set.")).to_be_visible()
    sign_in(page, live_server.url, "joan@example.org", PASSWORD)
    expect(page).to_have_url(re.compile(r"/(dashboard|my)/"))
    page.get_by_role("button", name="Sign out").click()

    page.goto(live_server.url + link)
    expect(page.get_by_role("heading", level=1)).to_have_text("This invitation link has expired")
    assert_accessible(page)
