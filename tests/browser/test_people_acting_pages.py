"""Who acts for a person and who they pay, in Chromium with axe: a broker adds a nominee (after an error summary) and a
connected spouse, ends the nominee's role, then an ICB approver approves paying the spouse with reasons."""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect

from providers.models import Provider
from tests.brokerage.helpers import make_person, team
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.dates import fill_date
from tests.browser.test_sign_in_journeys import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_adding_a_nominee_and_a_connected_spouse_and_approving_the_payment_are_accessible(live_server, page: Page):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    Provider.objects.create(name="Sam Robson", kind="personal_assistant")

    sign_in(page, live_server.url, crew["broker"].email)
    page.goto(f"{live_server.url}/people/{person.pk}/")
    page.get_by_role("link", name=re.compile("^Representatives, nominees and connected people")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("People who act for or are paid by Joan Robson")
    assert_accessible(page)

    page.get_by_role("link", name="Add a representative or nominee").click()
    assert_accessible(page)
    page.get_by_label(re.compile("Nominee: chosen by the person")).check()
    page.get_by_label("Their full name").fill("Aisha Robson")
    page.get_by_label("Relationship to the person").fill("daughter")
    page.get_by_role("button", name="Add").click()  # no dates: the error summary
    expect(page.get_by_role("alert")).to_contain_text("Enter the date the person nominated them")
    assert_accessible(page)
    page.get_by_role("link", name="Enter the date the nominee consented").click()
    consented = page.get_by_role("group", name="Date the nominee consented (nominees only)", exact=True)
    expect(consented.get_by_label("Day", exact=True)).to_be_focused()  # the summary's link lands on the first box
    fill_date(page, "Date the person nominated them (nominees only)", datetime.date(2026, 1, 5))
    fill_date(page, "Date the nominee consented (nominees only)", datetime.date(2026, 1, 6))
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("heading", level=3, name="Aisha Robson")).to_be_visible()

    page.get_by_role("link", name="Add a connected person").click()
    assert_accessible(page)
    page.get_by_label("Who is paid: the provider or payee in the directory").select_option(label="Sam Robson")
    page.get_by_label("Spouse or civil partner").check()
    page.get_by_label("Yes").check()
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Blocked: needs a necessity approval")).to_be_visible()
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name=re.compile("^End Aisha Robson's role")).click()
    assert_accessible(page)
    page.get_by_role("button", name="End their role").click()
    expect(page.get_by_text(re.compile(r"Ended on \d+ \w+ \d{4}"))).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server.url, crew["approver"].email)
    page.goto(f"{live_server.url}/people/{person.pk}/acting-and-paid/")
    page.get_by_role("link", name="Approve paying Sam Robson").click()
    page.get_by_role("button", name="Approve").click()  # no reasons: the error summary
    expect(page.get_by_role("alert")).to_contain_text("Enter why paying them is necessary")
    assert_accessible(page)
    page.get_by_label("Why is paying them necessary?").fill("No agency covers the village before 7am.")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text(re.compile(r"Approved on .* by .*: No agency covers the village"))).to_be_visible()
    assert_accessible(page)
