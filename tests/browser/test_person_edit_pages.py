"""Changing a person's details and withdrawing a necessity approval, in Chromium with axe: a broker follows the Change
link for the address, meets the error summary, corrects the postcode and sees it saved; an ICB approver then
withdraws the approval to pay the person's spouse, with reasons."""

import re

import pytest
from playwright.sync_api import Page, expect

from brokerage import services
from providers.models import Provider
from tests.brokerage.helpers import make_person, team
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.test_sign_in_journeys import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_changing_the_address_and_withdrawing_a_necessity_approval_are_accessible(live_server, page: Page):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    sam = Provider.objects.create(name="Sam Robson", kind="personal_assistant")
    spouse = services.connected_person_add(
        person=person, acting_user=crew["broker"], provider=sam, relationship="spouse", lives_in_household=True
    )
    services.connected_person_approve_necessity(
        connection=spouse, acting_user=crew["approver"], reasons="No agency covers the village before 7am."
    )

    sign_in(page, live_server.url, crew["broker"].email)
    page.goto(f"{live_server.url}/people/{person.pk}/")
    assert_accessible(page)
    page.get_by_role("link", name="Change address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change Joan Robson's details")
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_label("Address", exact=True).fill("Flat 2, 10 Grainger Street, Newcastle")
    page.get_by_label("Postcode").fill("NE1")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter a real postcode, like NE1 4LP")
    assert_accessible(page)
    page.get_by_role("link", name="Enter a real postcode, like NE1 4LP").click()
    expect(page.get_by_label("Postcode")).to_be_focused()
    page.get_by_label("Postcode").fill(" ne1 5jq ")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Joan Robson")
    expect(page.get_by_text("Joan Robson's details have been changed: address and postcode.")).to_be_visible()
    expect(page.get_by_text("Flat 2, 10 Grainger Street, Newcastle, NE1 5JQ")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server.url, crew["approver2"].email)
    page.goto(f"{live_server.url}/people/{person.pk}/acting-and-paid/")
    page.get_by_role("link", name="Withdraw the approval to pay Sam Robson").click()
    assert_accessible(page)
    page.get_by_role("button", name="Withdraw the approval").click()  # no reasons: the error summary
    expect(page.get_by_role("alert")).to_contain_text("Enter why paying them is no longer approved")
    assert_accessible(page)
    page.get_by_label("Why is paying them no longer approved?").fill("An agency now covers early mornings.")
    page.get_by_role("button", name="Withdraw the approval").click()
    expect(page.get_by_text(re.compile(r"the last approval was withdrawn on .*: An agency now covers"))).to_be_visible()
    expect(page.get_by_role("link", name="Approve paying Sam Robson")).to_be_visible()
    assert_accessible(page)
