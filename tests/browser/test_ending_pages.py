"""Ending a budget in Chromium with axe: finance asks for money back (form, check your answers, the notice and its
letter), the person sees what to pay back and reads the letter, and the final audit page with a liability."""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import Role
from brokerage import services as plans
from budgets.models import StopDecision, StopGround
from tests.brokerage.helpers import agreed_crew
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.browser.test_sign_in_journeys import sign_in
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_asking_for_money_back_the_persons_view_and_the_final_audit_are_accessible(
    live_server, page: Page, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    crew = agreed_crew()
    budget = budget_in_use(crew)
    patient = user_with_role(Role.PATIENT)
    crew["person"].user = patient
    crew["person"].save(update_fields=["user"])

    sign_in(page, live_server.url, crew["finance"].email)
    page.goto(f"{live_server.url}/budgets/{budget.pk}/")
    page.get_by_role("link", name="Ask for money back").click()
    assert_accessible(page)
    page.get_by_role("button", name="Continue").click()  # nothing filled in: the error summary
    expect(page.get_by_role("alert")).to_contain_text("Give the reasons")
    assert_accessible(page)
    page.get_by_label("Why the money is asked back").fill("Money has built up beyond eight weeks of spending.")
    page.get_by_label("Amount to pay back").fill("10.00")
    page.get_by_label("Still in the direct-payment account").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check the notice before you send it for approval")
    assert_accessible(page)
    page.get_by_role("button", name="Send for approval").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Recovery notice \d+"))
    expect(page.get_by_text("Waiting for approval").first).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()

    # Rule 4: a finance manager who did not write it approves it from their dashboard.
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=crew["icb"])
    sign_in(page, live_server.url, manager.email)
    page.goto(f"{live_server.url}/dashboard/finance_manager/")
    page.get_by_role("link", name=re.compile(r"£10\.00$")).click()
    assert_accessible(page)
    page.get_by_role("button", name="Approve, book it and send the letter").click()
    expect(page.get_by_text("Notice sent").first).to_be_visible()
    page.get_by_role("link", name=re.compile("^The notice")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "We are asking for £10.00 back from the personal health budget"
    )
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server.url, patient.email)
    page.goto(f"{live_server.url}/my/budgets/{budget.pk}/")
    expect(page.get_by_text("£10.00 to pay back by")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"^Pay by card\s+the £10\.00"))).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name=re.compile("^Notice asking for money back")).click()
    expect(page.get_by_role("link", name="Download this letter as a PDF")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Sign out").click()

    budget.plan.refresh_from_db()  # the first payment activated it
    plans.plan_transition(plan=budget.plan, name="stop", acting_user=crew["finance"], reasons="Not eligible")
    today = datetime.date.today()
    StopDecision.objects.create(
        budget=budget,
        ground=StopGround.NOT_ELIGIBLE,
        reasons="Not eligible",
        decided_by=crew["finance"],
        decided_on=today,
        ends_on=today + datetime.timedelta(days=28),
    )
    sign_in(page, live_server.url, crew["finance"].email)
    page.goto(f"{live_server.url}/budgets/{budget.pk}/")
    page.get_by_role("link", name="Final audit").click()
    assert_accessible(page)
    page.get_by_role("button", name="Add the liability").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose what the liability is for")
    assert_accessible(page)
    page.get_by_label("Holiday pay").check()
    page.get_by_label("Who is owed it").fill("Karen Dobson")
    page.get_by_label("Amount owed").fill("120.00")
    page.get_by_role("button", name="Add the liability").click()
    expect(page.get_by_role("cell", name="Karen Dobson")).to_be_visible()
    page.get_by_role("button", name="Start the final audit").click()
    expect(page.get_by_role("alert")).to_contain_text("The notice period runs until")
    assert_accessible(page)
