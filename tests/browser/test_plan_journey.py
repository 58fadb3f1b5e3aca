"""Journey 1, the plan half, in Chromium with the keyboard alone and axe on every page: a broker builds a
three-line plan, submits it; an approver returns it with a reason; the broker fixes and resubmits it; another
approver approves it; the person's agreement is recorded."""

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import OrganisationKind
from brokerage.models import CarePlan, PlanStatus
from tests.brokerage.helpers import make_person, service, team
from tests.browser.axe import assert_accessible
from tests.browser.dates import fill_date
from tests.browser.test_sign_in_journeys import sign_in
from tests.factories import OrganisationFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def key_fill(locator, text: str) -> None:
    locator.focus()
    locator.press("Control+A")
    locator.page.keyboard.type(text)


def key_press(locator, key: str = "Enter") -> None:
    locator.focus()
    locator.press(key)


def key_choose(page: Page, label: str) -> None:
    """Radios and checkboxes: focus, then Space."""
    key_press(page.get_by_label(label, exact=True), " ")


class Visited:
    """Runs axe once on each distinct page the journey reaches."""

    def __init__(self, page: Page):
        self.page = page
        self.seen: set[str] = set()

    def check(self) -> None:
        path = re.sub(r"\d+", "N", self.page.url.split("?")[0])
        if path not in self.seen:
            self.seen.add(path)
            assert_accessible(self.page)


def sign_out(page: Page) -> None:
    key_press(page.get_by_role("button", name="Sign out"))
    expect(page).to_have_url(re.compile(r"/sign-in/$"))


def test_broker_builds_submits_and_approver_returns_then_approves(live_server, page: Page):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]], given_name="Joan", family_name="Robson")
    service(
        "District nursing visit", "Nursing care", "Northumbria Nursing", cqc="1-1000001", rate="58.00", unit="visit"
    )
    service("Personal assistant hours", "Personal assistant support", "Karen Dobson", rate="14.00")
    OrganisationFactory(name="Tyneside Independent User Trust", kind=OrganisationKind.THIRD_PARTY_HOLDER)
    visited = Visited(page)
    base = live_server.url

    sign_in(page, base, crew["broker"].email)
    key_press(page.get_by_role("link", name="People"))
    visited.check()
    key_press(page.get_by_role("link", name="Joan Robson"))
    visited.check()
    key_press(page.get_by_role("button", name="Start a new plan"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Care and support plan")
    visited.check()

    key_press(page.get_by_role("link", name="About the person"))
    visited.check()
    key_fill(page.get_by_label("What matters to the person"), "Joan loves her garden and wants to stay at home.")
    key_press(page.get_by_role("button", name="Save and continue"))

    key_press(page.get_by_role("link", name="Needs and outcomes"))
    visited.check()
    key_fill(page.get_by_label("Need", exact=True), "Help with washing and dressing")
    key_press(page.get_by_role("button", name="Add need"))
    key_fill(page.get_by_label("Outcome", exact=True), "Joan stays living at home")
    key_choose(page, "Help with washing and dressing")
    key_press(page.get_by_role("button", name="Add outcome"))
    expect(page.get_by_text("Meets: Help with washing and dressing")).to_be_visible()
    key_press(page.get_by_role("link", name="Back to the plan"))

    key_press(page.get_by_role("link", name="Support"))
    visited.check()
    lines = [
        (
            "District nursing visit (Northumbria Nursing)",
            "District nursing",
            "Notional budget",
            "2 visits a week",
            "104",
            None,
        ),
        (
            "Personal assistant hours (Karen Dobson)",
            "PA mornings",
            "Third-party budget",
            "7 hours a week",
            "364",
            "Tyneside Independent User Trust",
        ),
        (None, "Singing for lung health", "Direct payment", "1 session a week", "50", None),
    ]
    for service_label, description, management, frequency, quantity, holder in lines:
        if service_label:
            page.get_by_label("Service from the directory").select_option(label=service_label)
        else:
            page.get_by_label("Category", exact=True).select_option(label="Leisure and wellbeing")
            key_fill(page.get_by_label("Cost per unit"), "6.00")
        key_fill(page.get_by_label("What the support is"), description)
        page.get_by_label("Outcome it serves").select_option(label="Joan stays living at home")
        key_choose(
            page,
            next(
                label
                for label in [
                    "Notional budget (the ICB holds the money)",
                    "Third-party budget (an independent organisation holds it)",
                    "Direct payment (paid to the person)",
                ]
                if label.startswith(management)
            ),
        )
        if holder:
            page.get_by_label("Third-party holder").select_option(label=holder)
        key_fill(page.get_by_label("How often"), frequency)
        key_fill(page.get_by_label("Units a year"), quantity)
        key_press(page.get_by_role("button", name="Add support"))
        expect(page.get_by_text(description, exact=False).first).to_be_visible()
    key_press(page.get_by_role("link", name="Back to the plan"))

    key_press(page.get_by_role("link", name="Budget and funding"))
    visited.check()
    key_fill(page.get_by_label("Budget a year"), "10000")  # too little: £11,428 of support
    key_fill(page.get_by_label("ICB share"), "10000")
    key_fill(page.get_by_label("Local authority share"), "0")
    key_fill(page.get_by_label("Person's assessed contribution"), "0")
    key_press(page.get_by_role("button", name="Save and continue"))

    key_press(page.get_by_role("link", name="Payments and contingency"))
    visited.check()
    # No amount to type: each choice says what it pays, worked out from the lines (£5,096 + £300 a year over 13).
    key_press(page.get_by_label("Every 4 weeks, in advance: £415.07 each payment", exact=True), " ")
    key_fill(page.get_by_label("Contingency amount"), "400")
    key_fill(page.get_by_label("Contingency plan"), "Tyne Home Care covers if Karen is ill.")
    key_press(page.get_by_role("button", name="Save and continue"))

    key_press(page.get_by_role("link", name="Risks"))
    visited.check()
    key_fill(page.get_by_label("Risk", exact=True), "Falls in the bathroom")
    key_fill(page.get_by_label("How it is managed"), "Grab rails fitted")
    key_press(page.get_by_role("button", name="Add risk"))
    key_press(page.get_by_role("link", name="Back to the plan"))

    key_press(page.get_by_role("link", name="Care coordination and reviews"))
    visited.check()
    page.get_by_label("Care coordinator").select_option(label=crew["broker"].full_name)
    key_fill(page.get_by_label("Who monitors the person's health"), "Dr Patel, Grey Street Surgery")
    review = timezone.localdate() + datetime.timedelta(days=90)
    fill_date(page, "First review date", review, keyboard=True)
    key_fill(page.get_by_label("Notice period in days"), "28")
    key_press(page.get_by_role("button", name="Save and continue"))

    # Over budget: the check page says so, and offers to submit the plan only as a request for an exception.
    key_press(page.get_by_role("button", name="Check and submit"))
    visited.check()
    expect(page.get_by_text("more than the budget").first).to_be_visible()
    expect(page.get_by_role("button", name="Submit and ask for an exception")).to_be_visible()
    expect(page.get_by_role("button", name="Submit for approval")).to_have_count(0)
    key_press(page.get_by_role("link", name="Change budget and funding"))
    key_fill(page.get_by_label("Budget a year"), "12000")
    key_fill(page.get_by_label("ICB share"), "12000")
    key_press(page.get_by_role("button", name="Save and continue"))
    key_press(page.get_by_role("button", name="Check and submit"))
    key_press(page.get_by_role("button", name="Submit for approval"))
    expect(page.get_by_role("heading", name="Plan submitted")).to_be_visible()
    visited.check()
    sign_out(page)

    plan = CarePlan.objects.get(person=person)
    sign_in(page, base, crew["approver"].email)
    key_press(page.get_by_role("link", name="Plans to approve"))
    visited.check()
    key_press(page.get_by_role("link", name=re.compile("Joan Robson")))
    visited.check()
    key_press(page.get_by_role("button", name="Return the plan"))
    expect(page.locator(".nhsuk-error-summary")).to_be_focused()
    visited.seen.discard(re.sub(r"\d+", "N", page.url.split("?")[0]))
    visited.check()  # the error state too
    key_fill(page.get_by_label("Why are you returning the plan?"), "Add the contingency for PA holiday cover")
    key_press(page.get_by_role("button", name="Return the plan"))
    expect(page.get_by_text("Plan returned to the broker.")).to_be_visible()
    sign_out(page)

    sign_in(page, base, crew["broker"].email)
    page.goto(f"{base}/plans/{plan.pk}/")
    expect(page.get_by_text("Add the contingency for PA holiday cover")).to_be_visible()
    visited.check()
    key_press(page.get_by_role("button", name="Change the plan"))
    key_press(page.get_by_role("link", name="Payments and contingency"))
    key_fill(page.get_by_label("Contingency plan"), "Tyne Home Care covers sickness and Karen's holidays.")
    key_press(page.get_by_role("button", name="Save and continue"))
    key_press(page.get_by_role("button", name="Check and submit"))
    key_press(page.get_by_role("button", name="Submit for approval"))
    sign_out(page)

    sign_in(page, base, crew["approver2"].email)
    page.goto(f"{base}/plans/{plan.pk}/decide/")
    key_press(page.get_by_role("button", name="Approve the plan"))
    expect(page.get_by_text("Plan approved.")).to_be_visible()
    sign_out(page)

    sign_in(page, base, crew["broker"].email)
    page.goto(f"{base}/plans/{plan.pk}/")
    key_press(page.get_by_role("button", name="Record the person's agreement"))
    visited.check()
    key_fill(page.get_by_label("Who agreed the plan"), "Joan Robson")
    fill_date(page, "Date they agreed", timezone.localdate(), keyboard=True)
    page.get_by_label("ICB signatory").select_option(label=crew["approver2"].full_name)
    key_press(page.get_by_role("button", name="Record agreement"))
    expect(page.get_by_text("Agreed by Joan Robson")).to_be_visible()
    visited.check()
    key_press(page.get_by_role("link", name="History of this plan"))
    visited.check()
    expect(page.get_by_role("row")).to_have_count(7)  # header + 6 transitions

    plan.refresh_from_db()
    assert plan.status == PlanStatus.AGREED
    assert plan.lines.count() == 3 and plan.approved_by == crew["approver2"]
    assert len(visited.seen) >= 14
