"""Staff budget pages: the budget's line table has the "not coded to a line" row and a total that match the summary
above it; approving a payment run or an invoice, and a holder's spending and returns, each say what happened on
the page the user lands on."""

from __future__ import annotations

import datetime
import html
import re

import pytest
import time_machine
from django.urls import reverse

from accounts.roles import Role
from budgets import invoices, payment_runs, person_selectors
from budgets.models import HolderReturn, HolderSpend
from ledger.models import Account
from tests.budgets.test_holders import held, record  # noqa: F401 (held is a fixture)
from tests.budgets.test_payment_runs import set_up
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def money(text: str) -> int:
    """'£1,939.50' or '-£10.00' in pence."""
    match = re.fullmatch(r"(-?)£([\d,]+)\.(\d\d)", text.strip())
    assert match, text
    return (-1 if match[1] else 1) * (int(match[2].replace(",", "")) * 100 + int(match[3]))


def line_table(page: str) -> tuple[list[tuple], tuple[int, ...]]:
    """The staff budget page's table: each body row (what, planned, committed, spent, remaining) and the total."""
    table = re.search(r'aria-label="Budget by plan line">(.*?)</table>', page, re.S).group(1)
    body, foot = re.search(r"<tbody[^>]*>(.*?)</tbody>\s*<tfoot[^>]*>(.*?)</tfoot>", table, re.S).groups()

    def cells(row: str) -> list[int]:
        return [money(html.unescape(cell)) for cell in re.findall(r'--numeric">(?:<strong>)?([^<]*)<', row)]

    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        what = html.unescape(re.search(r'<td class="nhsuk-table__cell">([^<]*)<', row).group(1))
        rows.append((what, *cells(row)))
    assert "Total" in foot
    return rows, tuple(cells(foot))


def summary_value(page: str, key: str) -> int:
    found = re.search(re.escape(key) + r"\s*</dt>\s*<dd[^>]*>\s*([^<]*?)\s*</dd>", page)
    assert found, key
    return money(html.unescape(found.group(1)))


def banner(response) -> list[str]:
    """The messages shown at the top of the page (layouts/base.jinja)."""
    page = response.content.decode()
    return [html.unescape(text) for text in re.findall(r'role="status">.*?<p>(.*?)</p>', page, re.S)]


# --- The budget page's line table -----------------------------------------------------------------------------


@time_machine.travel(datetime.datetime(2026, 12, 3, 9, 0), tick=False)
def test_the_staff_table_shows_uncoded_spending_and_its_columns_add_up_to_the_summary(client, held):  # noqa: F811
    """Defect: spending a holder could not code to a line was counted nowhere on the staff page, so its columns did
    not add up to what the budget had spent. The page now shows the row the person's page and statement show."""
    budget = held["budget"]
    url = reverse("budgets:budget", kwargs={"pk": budget.pk})
    client.force_login(held["finance"])
    before, _ = line_table(client.get(url).content.decode())
    assert person_selectors.UNCODED_ROW not in [row[0] for row in before]  # nothing uncoded: no row for it

    record(held, 45_00)  # coded to the third-party line
    record(held, 12_50, line=None, key="h-uncoded")  # not coded: flagged for the coordinator
    page = client.get(url).content.decode()
    rows, total = line_table(page)
    assert [row[0] for row in rows[:-1]] == [row[0] for row in before]
    assert rows[-1] == (person_selectors.UNCODED_ROW, 0, 0, 12_50, -12_50)
    assert "Waiting for the care coordinator to code it to a line or accept it" in page
    sums = tuple(sum(row[column] for row in rows) for column in (1, 2, 3, 4))
    summary = tuple(summary_value(page, key) for key in ("Planned", "Committed", "Spent so far", "Remaining"))
    assert sums == total == summary
    # What was spent is what the ledger's spend accounts hold, the uncoded one too.
    spend_accounts = [line.spend_account_id for line in budget.lines.all()]
    uncoded = Account.objects.get(code=f"{budget.owner_ref}:spend:uncoded")
    assert summary[2] == sum(a.posted_balance for a in Account.objects.filter(pk__in=spend_accounts)) + 12_50
    assert uncoded.posted_balance == 12_50 and f"ledger account {uncoded.code}" in page  # finance reads the ledger
    assert summary_value(page, "Budget for the year") == budget.annual_pence
    # Care staff see the same figures, without the ledger's codes.
    client.force_login(held["coordinator"])
    page = client.get(url).content.decode()
    assert line_table(page) == (rows, total) and "ledger account" not in page


# --- Success messages ---------------------------------------------------------------------------------------------


@time_machine.travel(datetime.datetime(2026, 12, 1, 12, 0), tick=False)
def test_approving_a_payment_run_says_how_many_payments_for_how_much(client, agreed):
    set_up(agreed)
    run, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 1), acting_user=agreed["finance"])
    items = list(run.items.all())
    assert len(items) > 1
    total = sum(item.amount_pence for item in items)
    client.force_login(user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"]))
    url = reverse("budgets:payment-run", kwargs={"pk": run.pk})
    approved = client.post(url, {"action": "approve"}, follow=True)
    assert approved.redirect_chain == [(url, 302)]
    pounds = f"£{total // 100:,}.{total % 100:02d}"
    assert banner(approved) == [
        f"Payment run {run.pk} of {len(items)} payments ({pounds}) is approved: it can now be paid."
    ]
    run.refresh_from_db()
    assert run.status == "approved"
    # Said once: the next page has no banner, and a second approval is refused, not congratulated.
    again = client.post(url, {"action": "approve"}, follow=True)
    assert banner(again) == [] and "already been approved" in again.content.decode()


@time_machine.travel(datetime.datetime(2026, 12, 31, 12, 0), tick=False)
def test_approving_an_invoice_says_which_and_what_happens_next(client, agreed):
    line = set_up(agreed).lines.get(management_type="notional")
    invoice = invoices.invoice_record(
        line=line,
        provider=line.plan_line.provider,
        invoice_number="NN-204",
        invoice_date=datetime.date(2026, 12, 28),
        amount_pence=450_00,
        acting_user=agreed["finance"],
    )
    client.force_login(user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"]))
    approved = client.post(reverse("budgets:invoices"), {"invoice": invoice.pk, "action": "approve"}, follow=True)
    assert approved.redirect_chain == [(reverse("budgets:invoices"), 302)]
    provider = line.plan_line.provider.name
    assert banner(approved) == [f"Invoice NN-204 from {provider} (£450.00) is approved: a payment run can now pay it."]
    # The maker cannot approve their own invoice: the refusal is shown, and no success banner.
    other = invoices.invoice_record(
        line=line,
        provider=line.plan_line.provider,
        invoice_number="NN-205",
        invoice_date=datetime.date(2026, 12, 28),
        amount_pence=10_00,
        acting_user=agreed["finance"],
    )
    client.force_login(agreed["finance"])
    refused = client.post(reverse("budgets:invoices"), {"invoice": other.pk, "action": "approve"}, follow=True)
    assert banner(refused) == [] and "nhsuk-error-summary" in refused.content.decode()


@time_machine.travel(datetime.datetime(2026, 12, 3, 9, 0), tick=False)
def test_a_holder_recording_spending_and_a_return_is_told_what_was_recorded(client, held):  # noqa: F811
    client.force_login(held["staff"])
    url = reverse("budgets:held-budget", kwargs={"pk": held["budget"].pk})
    body = {"action": "spend", "spend-payee": "Carers Direct", "spend-spent_on": "2026-12-02", "spend-amount": "45.50"}
    coded = client.post(url, {**body, "spend-line": held["tp_line"].pk, "spend-key": "k1"}, follow=True)
    assert coded.redirect_chain == [(url, 302)]
    assert banner(coded) == ["Recorded: £45.50 paid to Carers Direct."]
    uncoded = client.post(url, {**body, "spend-amount": "5.00", "spend-line": "", "spend-key": "k2"}, follow=True)
    assert banner(uncoded) == [
        "Recorded: £5.00 paid to Carers Direct. It is not coded to a line of the plan, so the care coordinator "
        "will check it."
    ]
    assert HolderSpend.objects.count() == 2

    returned = client.post(
        url,
        {"action": "return", "return-period_start": "2026-12-01", "return-period_end": "2026-12-02"},
        follow=True,
    )
    assert returned.redirect_chain == [(url, 302)]
    assert HolderReturn.objects.get().spent_pence == 50_50
    assert banner(returned) == [
        "Your return for 1 December 2026 to 2 December 2026 is submitted: £50.50 spent in the period."
    ]
    # A refusal is an error, not a success.
    again = client.post(
        url, {"action": "return", "return-period_start": "2026-12-01", "return-period_end": "2026-12-02"}
    )
    assert banner(again) == [] and "already been submitted" in again.content.decode()
