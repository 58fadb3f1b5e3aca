"""Changing a support line of a draft plan, in Chromium with axe: a broker follows the line's Change link, meets the
error summary (a holder on a line that is not third-party), follows it to the field, corrects the line and sees it
saved, with the success banner, on the support page."""

import pytest
from playwright.sync_api import Page, expect

from brokerage.models import PlanLine
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.test_sign_in_journeys import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_changing_a_support_line_is_accessible(live_server, page: Page):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    plan = complete_plan(person=person, broker=crew["broker"])
    trust = plan.lines.get(management_type="third_party").third_party_holder

    sign_in(page, live_server.url, crew["broker"].email)
    page.goto(f"{live_server.url}/plans/{plan.pk}/support/")
    assert_accessible(page)
    page.get_by_role("link", name="Change District nursing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change District nursing")
    expect(page.get_by_label("Units a year")).to_have_value("104.00")
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_label("Units a year").fill("156")
    page.get_by_label("Third-party holder").select_option(label=trust.name)
    page.get_by_role("button", name="Save changes").click()
    message = "Choose a third-party holder only for a third-party budget line"
    expect(page.get_by_role("alert")).to_contain_text(message)
    expect(page.get_by_label("Units a year")).to_have_value("156")  # what was typed is kept
    assert_accessible(page)
    page.get_by_role("link", name=message).click()
    expect(page.get_by_label("Third-party holder")).to_be_focused()
    page.get_by_label("Third-party holder").select_option(label="None")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Support")
    expect(page.get_by_text("District nursing is changed: units a year.")).to_be_visible()
    assert_accessible(page)
    assert PlanLine.objects.get(plan=plan, description="District nursing").quantity == 156
