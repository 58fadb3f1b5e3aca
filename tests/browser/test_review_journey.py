"""A coordinator sees an overdue review on the dashboard, completes it with the keyboard, decides to vary the
plan and changes the new version; axe finds nothing on any page."""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect

from brokerage.models import CarePlan, PlanStatus
from budgets import monitoring
from budgets.models import Review
from tests.brokerage.helpers import agreed_crew
from tests.browser.test_plan_journey import Visited, key_choose, key_fill, key_press
from tests.browser.test_sign_in_journeys import sign_in
from tests.budgets.test_person_pages import budget_in_use

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_completes_an_overdue_review_and_varies_the_plan(live_server, page: Page):
    crew = agreed_crew()
    today = datetime.date.today()
    budget = budget_in_use(crew, start=today - datetime.timedelta(days=120))  # paid four months ago
    budget.refresh_from_db()
    review = monitoring.reviews_schedule(budget)
    assert review.due_on < today  # the 3-month review is overdue
    visited = Visited(page)

    sign_in(page, live_server.url, crew["coordinator"].email)
    table = page.get_by_role("table", name="Overdue reviews")
    expect(table).to_contain_text(crew["plan"].person.full_name)
    visited.check()
    key_press(table.get_by_role("link", name=re.compile("First review after the first payment")))
    expect(page.get_by_role("heading", level=1)).to_have_text("First review after the first payment")
    visited.check()
    key_fill(page.get_by_label("Who took part?"), "Joan Robson\nLouise Thorpe, care coordinator")
    for outcome in crew["plan"].outcomes.all():
        group = page.get_by_role("group", name=outcome.description)
        key_press(group.get_by_label("Partly achieved"), " ")
    key_choose(page, "Vary the plan")
    key_fill(page.get_by_label("Reasons for the decision"), "Joan needs more help in the mornings")
    key_press(page.get_by_role("button", name="Complete the review"))

    expect(page.get_by_role("heading", level=1)).to_have_text("Care and support plan")
    visited.check()
    key_press(page.get_by_role("link", name="About the person"))
    key_fill(page.get_by_label("What matters to the person"), "Joan wants help getting up each morning.")
    key_press(page.get_by_role("button", name="Save and continue"))
    versions = list(CarePlan.objects.filter(person=crew["plan"].person).order_by("version"))
    assert [plan.status for plan in versions] == [PlanStatus.ACTIVE, PlanStatus.DRAFT]
    assert versions[1].about_me == "Joan wants help getting up each morning."
    assert versions[0].about_me != versions[1].about_me  # the agreed plan stays as it was
    review = Review.objects.get(pk=review.pk)
    assert review.decision == "vary" and review.outcomes.filter(progress="partly").count() == len(
        crew["plan"].outcomes.all()
    )
