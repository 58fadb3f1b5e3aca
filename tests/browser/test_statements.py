"""Statements in Chromium, keyboard first: the person finds last month's statement from their budget page, reads it
as a web page (chart and its table, payments), asks for the PDF, and downloads it once a worker has made it. axe
finds nothing on any page and nothing scrolls sideways at 320 px."""

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import Role
from budgets import statements
from budgets.models import StatementDownload
from tests.brokerage.helpers import agreed_crew
from tests.browser.axe import assert_no_horizontal_scroll
from tests.browser.test_plan_journey import Visited, key_fill, key_press
from tests.budgets.test_statements import OCTOBER, busy_budget
from tests.factories import TEST_PASSWORD, user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("empty_job_queue")
def test_the_person_reads_last_months_statement_asks_for_the_pdf_and_downloads_it(
    live_server, page: Page, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"
    crew = agreed_crew()
    budget = busy_budget(crew)
    patient = user_with_role(Role.PATIENT)
    person = crew["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    visited = Visited(page)

    page.goto(live_server.url + "/sign-in/")
    key_fill(page.get_by_label("Email address"), patient.email)
    key_fill(page.get_by_label("Password", exact=True), TEST_PASSWORD)
    key_press(page.get_by_role("button", name="Sign in"))
    key_press(page.get_by_role("link", name="Budget", exact=True))
    key_press(page.get_by_role("link", name="Statements", exact=True))
    expect(page.get_by_role("heading", level=1)).to_have_text("Statements")
    visited.check()

    key_press(page.get_by_role("link", name="View the statement for October 2026"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Personal health budget statement, October 2026")
    expect(page.get_by_role("img", name=re.compile("Spending against the budget"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^Singing for lung health"))).to_be_visible()
    visited.check()
    page.set_viewport_size({"width": 320, "height": 800})
    assert_no_horizontal_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    key_press(page.get_by_role("button", name="Ask for the PDF"))
    expect(page.get_by_role("status")).to_contain_text("The PDF is being made")
    visited.check()

    # What the worker does with the job the button queued (the worker itself is tested in test_statements.py).
    statement = statements.statement_generate(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
    page.reload()
    with page.expect_download() as download:
        key_press(page.get_by_role("link", name="Download the PDF"))
    assert download.value.suggested_filename == "statement-2026-10-01-to-2026-10-31.pdf"
    with statement.pdf.open("rb") as stored:
        assert download.value.path().read_bytes() == stored.read()
    assert StatementDownload.objects.filter(user=patient, format="pdf", statement=statement).count() == 1
