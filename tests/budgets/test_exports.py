"""Finance exports of spend by plan line (every budget, or one from its page) as CSV and Excel: the figures read back
equal the ledger's, computed here from the transfers; no person's name; finance and auditors only."""

import csv
import io
from decimal import Decimal

import openpyxl
import pytest
from django.db.models import Sum
from django.urls import reverse

from accounts.roles import Role
from brokerage.models import PlanLine
from budgets import services
from budgets.models import BudgetLine
from ledger.models import AccountKind, Phase, Transfer
from tests.brokerage.helpers import agreed_crew
from tests.factories import user_with_role
from tests.ledger.helpers import open_account, post

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://evil.example/","Open")'
HEADER = [
    "Budget reference",
    "Budget status",
    "Budget start date",
    "Plan line",
    "Management type",
    "Ledger account",
    "Planned (£)",
    "Committed (£)",
    "Spent (£)",
    "Remaining (£)",
]


@pytest.fixture
def budgets(agreed):
    """Two people's budgets; the first has spending on a line and a plan line whose text looks like a formula."""
    first = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"])
    other = agreed_crew()
    second = services.budget_set_up(plan=other["plan"], acting_user=other["finance"])
    outside = open_account("test:outside-funds", AccountKind.EQUITY)
    lines = list(first.lines.order_by("id"))
    post(lines[0].spend_account, outside, 12_345, "spend", effective_date=first.start_date)
    post(outside, lines[0].spend_account, 345, "refund", effective_date=first.start_date)
    PlanLine.objects.filter(pk=lines[1].plan_line_id).update(description=HYPERLINK)
    return {"first": first, "second": second, "people": [agreed["plan"].person, other["plan"].person], **agreed}


def sum_amount(transfers) -> int:
    return transfers.aggregate(total=Sum("amount"))["total"] or 0


def expected_rows(lines) -> list[tuple]:
    """Planned from the budget line; spent and committed re-summed from the ledger's transfers."""
    rows = []
    for line in lines.select_related("budget__plan", "plan_line", "spend_account").order_by("budget_id", "id"):
        account = line.spend_account
        posted = Transfer.objects.filter(phase__in=(Phase.POSTED, Phase.POST_PENDING))
        spent = sum_amount(posted.filter(debit_account=account)) - sum_amount(posted.filter(credit_account=account))
        open_holds = Transfer.objects.filter(phase=Phase.PENDING, resolutions__isnull=True)
        committed = sum_amount(open_holds.filter(debit_account=account)) - sum_amount(
            open_holds.filter(credit_account=account)
        )
        rows.append(
            (
                f"budget:{line.budget_id}",
                line.budget.plan.get_status_display(),
                line.budget.start_date.isoformat(),
                line.plan_line.description,
                line.plan_line.get_management_type_display().split(" (")[0],
                account.code,
                line.annual_pence,
                committed,
                spent,
                line.annual_pence - committed - spent,
            )
        )
    return rows


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def read_xlsx(response):
    assert response.status_code == 200 and response["Content-Type"].endswith("spreadsheetml.sheet")
    return openpyxl.load_workbook(io.BytesIO(response.content)).active


def from_csv(row: list[str]) -> tuple:
    return (*row[:6], *(int(Decimal(value) * 100) for value in row[6:]))


def from_xlsx(row: tuple) -> tuple:
    return (*row[:2], row[2].date().isoformat(), *row[3:6], *(round(Decimal(str(v)) * 100) for v in row[6:]))


def test_every_budgets_spend_by_line_equals_the_ledger_in_both_formats(client, budgets):
    expected = expected_rows(BudgetLine.objects.all())
    assert {row[0] for row in expected} == {budgets["first"].owner_ref, budgets["second"].owner_ref}
    assert any(row[8] == 12_000 for row in expected) and any(row[7] > 0 for row in expected)
    client.force_login(budgets["finance"])

    rows = read_csv(client.get(reverse("budgets:spend-export", kwargs={"fmt": "csv"})))
    assert rows[0] == HEADER
    csv_expected = [(*row[:3], "'" + row[3] if row[3] == HYPERLINK else row[3], *row[4:]) for row in expected]
    assert [from_csv(row) for row in rows[1:]] == csv_expected

    response = client.get(reverse("budgets:spend-export", kwargs={"fmt": "xlsx"}))
    sheet = read_xlsx(response)
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == HEADER
    assert [from_xlsx(row) for row in values[1:]] == expected
    formula_cell = next(row[3] for row in sheet.iter_rows(min_row=2) if row[3].value == HYPERLINK)
    assert formula_cell.data_type == "s"

    # Finance see budgets by reference only: no person's name goes into the files.
    texts = [str(v) for row in values for v in row]
    csv_text = client.get(reverse("budgets:spend-export", kwargs={"fmt": "csv"})).content.decode()
    for person in budgets["people"]:
        for name in (person.full_name, person.family_name):
            assert name not in csv_text and not any(name in text for text in texts)


def test_one_budgets_export_is_linked_from_its_page_and_holds_only_its_lines(client, budgets):
    first = budgets["first"]
    client.force_login(budgets["finance"])
    page = client.get(reverse("budgets:budget", kwargs={"pk": first.pk})).content.decode()
    csv_url = reverse("budgets:budget-spend-export", kwargs={"pk": first.pk, "fmt": "csv"})
    xlsx_url = reverse("budgets:budget-spend-export", kwargs={"pk": first.pk, "fmt": "xlsx"})
    assert f'href="{csv_url}"' in page and f'href="{xlsx_url}"' in page
    assert "Download CSV" in page and "Download Excel (XLSX)" in page

    expected = expected_rows(BudgetLine.objects.filter(budget=first))
    response = client.get(csv_url)
    assert f'filename="budget-{first.pk}-spend-' in response["Content-Disposition"]
    rows = read_csv(response)
    assert [from_csv(row)[0] for row in rows[1:]] == [first.owner_ref] * len(expected)
    assert [from_csv(row)[6:] for row in rows[1:]] == [row[6:] for row in expected]
    values = list(read_xlsx(client.get(xlsx_url)).iter_rows(values_only=True))
    assert [from_xlsx(row) for row in values[1:]] == expected


@pytest.mark.parametrize("who", ["patient", "broker", "coordinator", "approver"])
def test_people_outside_finance_get_not_found_even_for_a_budget_they_can_see(client, budgets, who):
    first = budgets["first"]
    if who == "patient":
        user = user_with_role(Role.PATIENT)
        person = budgets["people"][0]
        person.user = user
        person.save(update_fields=["user"])
    else:
        user = budgets[who]
    client.force_login(user)
    for fmt in ("csv", "xlsx"):
        assert client.get(reverse("budgets:spend-export", kwargs={"fmt": fmt})).status_code == 404
        assert (
            client.get(reverse("budgets:budget-spend-export", kwargs={"pk": first.pk, "fmt": fmt})).status_code == 404
        )
    if who != "patient":
        page = client.get(reverse("budgets:budget", kwargs={"pk": first.pk}))
        assert page.status_code == 200 and "Download CSV" not in page.content.decode()


def test_auditors_download_and_unknown_formats_or_budgets_are_not_found(client, budgets):
    first = budgets["first"]
    client.force_login(user_with_role(Role.AUDITOR))
    page = client.get(reverse("budgets:budget", kwargs={"pk": first.pk})).content.decode()
    assert "Download Excel (XLSX)" in page
    rows = read_csv(client.get(reverse("budgets:budget-spend-export", kwargs={"pk": first.pk, "fmt": "csv"})))
    assert len(rows) == 1 + first.lines.count()
    assert read_xlsx(client.get(reverse("budgets:spend-export", kwargs={"fmt": "xlsx"}))).max_row == 1 + len(
        expected_rows(BudgetLine.objects.all())
    )
    assert client.get(reverse("budgets:spend-export", kwargs={"fmt": "pdf"})).status_code == 404
    assert client.get(reverse("budgets:budget-spend-export", kwargs={"pk": first.pk, "fmt": "ods"})).status_code == 404
    missing = budgets["second"].pk + 100
    assert client.get(reverse("budgets:budget-spend-export", kwargs={"pk": missing, "fmt": "csv"})).status_code == 404
