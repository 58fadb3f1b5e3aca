"""Statements: every figure from the ledger, the same to the penny in the PDF and on the page; tagged PDF/UA with
bundled fonts, rendered deterministically and stored once; a batch killed with SIGKILL and run again leaves each
statement exactly once and byte-identical to one rendered alone; only the person, those acting for them, their
coordinator and finance may read them (everyone else: 404), and every read is logged."""

import dataclasses
import datetime
import hashlib
import html
import io
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pypdf
import pytest
import time_machine
from django.core import mail
from django.db.models import Q, Sum
from PIL import Image, ImageChops, ImageOps
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.roles import Role
from brokerage.models import Representative
from budgets import person_selectors, services, spending, statement_batch, statements
from budgets import tasks as budget_tasks
from budgets.models import BudgetAccount, Recovery, ScheduledPayment, Statement, StatementDownload
from config.formatting import format_pence
from ledger.models import Account, Transfer
from tests.accounts.test_password_reset import run_worker_until_idle
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import issued_recovery, user_with_role
from tests.ledger.helpers import database_url

BASE_DIR = Path(__file__).resolve().parents[2]
DOCS_EXAMPLE = BASE_DIR / "docs" / "statement-example.png"
START = datetime.date(2026, 10, 1)
OCTOBER = (datetime.date(2026, 10, 1), datetime.date(2026, 10, 31))
MONEY = re.compile(r"-?£[\d,]+\.\d{2}")
MOVED = ("posted", "post_pending")


def weasyprint_alone(html_text: str) -> bytes:
    """The PDF plain WeasyPrint makes of our HTML with the same options: its own parser and user-agent stylesheet.
    The file identifier is added as the statements add it: WeasyPrint's own hashes the file differently (compared in
    test_the_file_identifier_is_weasyprints_own_but_for_the_hash_that_ends_it)."""
    import weasyprint

    document = weasyprint.HTML(
        string=html_text, base_url=statements.static_base_url(), url_fetcher=statements.url_fetcher()
    ).render(font_config=statements.font_config())
    identifier = hashlib.sha256(html_text.encode()).hexdigest()[:32].encode()
    return statements.with_file_identifier(document.write_pdf(**statements.PDF_OPTIONS), identifier)


def busy_budget(crew, *, extra_spends: int = 0):
    """Journey 1's budget from 1 October 2026, with October's money moving: both instalments paid, purchases from
    the direct payment (one not coded to a line), the holder's spending, a contribution paid in, and a purchase in
    November that October's statement must leave out."""
    budget = budget_in_use(crew, start=START)
    for payment in ScheduledPayment.objects.filter(budget=budget, due_on__lte=OCTOBER[1], status="due"):
        services.scheduled_payment_pay(payment=payment, acting_user=crew["finance"])
    dp_line = budget.lines.get(management_type="direct_payment")
    holder_line = budget.lines.get(management_type="third_party")
    spends = [(3, 600, dp_line), (10, 1250, dp_line), (17, 733, None), (24, 600, dp_line)]
    spends += [(2 + n % 27, 5 + n, dp_line) for n in range(extra_spends)]
    for number, (day, amount, line) in enumerate(spends):
        spending.dp_spend_record(
            budget=budget,
            line=line,
            payee=f"Harmony Singers {number}",
            spent_on=datetime.date(2026, 10, day),
            amount_pence=amount,
            key=f"statement-{budget.pk}-dp-{number}",
            acting_user=crew["finance"],
        )
    spending.holder_spend_record(
        budget=budget,
        holder=holder_line.plan_line.third_party_holder,
        line=holder_line,
        payee="Karen Dobson",
        spent_on=datetime.date(2026, 10, 14),
        amount_pence=19_600,
        key=f"statement-{budget.pk}-holder",
        acting_user=crew["finance"],
    )
    spending.dp_money_in_record(
        budget=budget,
        received_on=datetime.date(2026, 10, 20),
        amount_pence=2_500,
        payer="Joan Robson",
        source="contribution",
        key=f"statement-{budget.pk}-in",
        acting_user=crew["finance"],
    )
    spending.dp_spend_record(
        budget=budget,
        line=dp_line,
        payee="After the period",
        spent_on=datetime.date(2026, 11, 5),
        amount_pence=999,
        key=f"statement-{budget.pk}-november",
        acting_user=crew["finance"],
    )
    return budget


@pytest.fixture
def october(agreed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    budget = busy_budget(agreed)
    patient = user_with_role(Role.PATIENT, email="joan@example.org")
    person = agreed["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    agreed.update(budget=budget, patient=patient, media=settings.MEDIA_ROOT)
    return agreed


def pdf_text(content: bytes) -> str:
    """The PDF's text on one line: cells that wrap are joined, words broken after a hyphen are put back."""
    reader = pypdf.PdfReader(io.BytesIO(content))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    return re.sub(r"(\w)- (\w)", r"\1-\2", text)


def amounts(text: str) -> list[str]:
    return sorted(MONEY.findall(html.unescape(text)))


def pence(value: int) -> str:
    return format_pence(value)


def ledger(account: Account, *, before=None, until=None, since=None) -> tuple[int, int]:
    """(debits, credits) posted to an account in a date range, summed straight from the transfers."""
    moves = Transfer.objects.filter(phase__in=MOVED)
    if before:
        moves = moves.filter(effective_date__lt=before)
    if until:
        moves = moves.filter(effective_date__lte=until)
    if since:
        moves = moves.filter(effective_date__gte=since)
    debits = moves.filter(debit_account=account).aggregate(total=Sum("amount"))["total"] or 0
    credits = moves.filter(credit_account=account).aggregate(total=Sum("amount"))["total"] or 0
    return debits, credits


def balance(account: Account, **dates) -> int:
    debits, credits = ledger(account, **dates)
    return debits - credits if account.kind in ("asset", "expense") else credits - debits


def account(budget, purpose: str) -> Account:
    return BudgetAccount.objects.select_related("account").get(budget=budget, purpose=purpose).account


# --- Figures --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_figure_in_the_pdf_equals_the_ledger_and_the_web_page_to_the_penny(client, october):
    budget = october["budget"]
    start, end = OCTOBER
    statement = statements.statement_generate(budget=budget, period_start=start, period_end=end)
    with statement.pdf.open("rb") as handle:
        text = pdf_text(handle.read())

    # The direct-payment account, re-summed from the transfers: opening + in - out = closing.
    dp = account(budget, "held:direct-payment")
    opening, closing = balance(dp, before=start), balance(dp, until=end)
    paid_in, paid_out = ledger(dp, since=start, until=end)
    assert opening + paid_in - paid_out == closing
    assert closing == dp.posted_balance + 999  # today's counters, less November's purchase
    assert f"Balance at the start of 1 October 2026 {pence(opening)}" in text
    assert f"Paid in {pence(paid_in)} Paid out {pence(paid_out)}" in text
    assert f"Balance at the end of 31 October 2026 {pence(closing)}" in text

    # Each plan line: planned, spent in October, spent by the end of October, left.
    spent_total = spent_in_total = planned_total = 0
    for line in budget.lines.select_related("plan_line", "spend_account"):
        spent = balance(line.spend_account, until=end)
        spent_in = balance(line.spend_account, since=start, until=end)
        kind = line.plan_line.get_management_type_display().split(" (")[0].lower()
        row = f"{line.plan_line.description} ({kind}) {pence(line.annual_pence)} {pence(spent_in)} {pence(spent)}"
        assert f"{row} {pence(line.annual_pence - spent)}" in text
        spent_total, spent_in_total, planned_total = (
            spent_total + spent,
            spent_in_total + spent_in,
            planned_total + (line.annual_pence),
        )
    uncoded = balance(account(budget, "spend:uncoded"), until=end)
    assert f"Not coded to a line (to be checked) £0.00 {pence(uncoded)} {pence(uncoded)} {pence(-uncoded)}" in text
    spent_total += uncoded
    spent_in_total += uncoded
    totals = f"Total {pence(planned_total)} {pence(spent_in_total)} {pence(spent_total)}"
    assert f"{totals} {pence(planned_total - spent_total)}" in text
    assert f"Spent in this period {pence(spent_in_total)}" in text
    assert f"Spent so far this year {pence(spent_total)}" in text
    assert f"Left to spend this year {pence(planned_total - spent_total)}" in text

    # Who holds the money, the contingency, the funders and the surplus rule.
    icb = account(budget, "held:icb")
    assert f"arranges {pence(balance(icb, before=start))} {pence(balance(icb, until=end))}" in text
    contingency = balance(account(budget, "contingency"), until=end)
    assert f"Contingency, kept apart for emergencies {pence(contingency)}" in text
    assert f"Budget for the year {pence(budget.annual_pence)} Paid for by: ICB {pence(budget.annual_pence)}" in text
    assert "Surplus in the direct-payment account £0.00" in text and "Money being recovered None" in text

    # Payments in and out: every movement of the budget's accounts in October, bookkeeping aside.
    ids = list(BudgetAccount.objects.filter(budget=budget).values_list("account_id", flat=True))
    moved = Transfer.objects.filter(phase__in=MOVED, effective_date__range=OCTOBER).exclude(
        code__in=person_selectors.BOOKKEEPING
    )
    moved = moved.filter(Q(debit_account_id__in=ids) | Q(credit_account_id__in=ids))
    rows = person_selectors.describe(budget, moved)
    assert f"{len(rows)} payments from 1 October 2026 to 31 October 2026" in text
    money_in, money_out = sum(r.money_in for r in rows), sum(r.money_out for r in rows)
    assert f"Total {pence(money_in)} {pence(money_out)}" in text
    assert money_out == spent_in_total  # every penny out of the holders' accounts went to a plan line
    assert "After the period" not in text and "£9.99" not in text

    # The web page shows the same figures: the same multiset of amounts, penny for penny.
    client.force_login(october["patient"])
    page = client.get(f"/my/budgets/{budget.pk}/statements/statement/", {"period": "2026-10"}).content.decode()
    body = page[page.index('<div class="app-statement">') :]
    assert amounts(body) == amounts(text)
    assert "Page 1 of 2" in text or "Page 1 of 3" in text


@pytest.mark.django_db
def test_a_statement_to_today_ends_at_the_balances_on_the_budget_page(october, time_machine):
    time_machine.move_to(datetime.datetime(2026, 11, 24, 12, 0), tick=False)
    budget = october["budget"]
    data = statements.statement_data(budget, datetime.date(2026, 11, 1), datetime.date(2026, 11, 24))
    summary = person_selectors.overview(budget)
    assert data.direct_payment.closing == summary.direct_payment_balance
    assert data.spent_to_date_total == summary.spent and data.planned_total == summary.planned
    assert (data.budget_total, data.contingency) == (summary.budget_total, summary.contingency)
    assert data.budget_total > data.planned_total  # the year's budget includes the contingency kept apart
    # A review booked by monitoring is the next review on both, not the date the plan first set.
    from budgets import monitoring

    booked = monitoring.review_trigger(budget=budget, reason="concern", note="Carer unwell")
    data = statements.statement_data(budget, datetime.date(2026, 11, 1), datetime.date(2026, 11, 24))
    summary = person_selectors.overview(budget)
    assert data.next_review == summary.next_review == booked.due_on != budget.plan.first_review_date
    assert [point.spent_pence for point in data.chart[:2]] == [point.spent_pence for point in summary.chart[:2]]
    assert {line.description: line.spent_to_date for line in data.lines if line.management_type} == {
        line.description: line.spent for line in summary.lines
    }
    assert data.surplus == services.dp_surplus(budget)
    assert data.direct_payment.opening == statements.statement_data(budget, *OCTOBER).direct_payment.closing


def notice_open_in_october(budget, issued_by) -> Recovery:
    """£120 asked back on 20 October, £20 of it repaid: £100.00 still being recovered at the month's end."""
    return Recovery.objects.create(
        budget=budget,
        reasons="Spent on something the plan does not allow",
        amount_pence=12_000,
        recovered_pence=2_000,
        deadline=datetime.date(2026, 12, 31),
        addressee="person",
        addressee_name="Joan Robson",
        issued_by=issued_by,
        issued_on=datetime.date(2026, 10, 20),
        status="issued",
    )


@pytest.mark.django_db
def test_a_recovery_open_at_the_periods_end_is_shown_with_what_is_left_to_repay(october):
    budget = october["budget"]
    notice_open_in_october(budget, october["finance"])
    Recovery.objects.create(  # issued after the period: not on October's statement
        budget=budget,
        reasons="Later",
        amount_pence=500,
        deadline=datetime.date(2027, 1, 31),
        addressee="person",
        addressee_name="Joan Robson",
        issued_by=october["finance"],
        issued_on=datetime.date(2026, 11, 2),
        status="issued",
    )
    data = statements.statement_data(budget, *OCTOBER)
    assert [(r.amount, r.outstanding) for r in data.recoveries] == [(12_000, 10_000)]
    text = pdf_text(statements.render_statement_pdf(statements.render_statement_html(data)))
    assert "Money being recovered £100.00" in text
    assert "20 October 2026 Notice sent 31 December 2026 £120.00 £100.00" in text


@pytest.mark.django_db
def test_a_recovery_repaid_since_still_shows_what_was_owed_at_the_periods_end(october):
    """Asked for on 20 October, £20 repaid on 25 October, the rest on 15 November: October's statement, whenever it
    is read, shows £100 still owed; November's shows nothing owed."""
    from budgets import ending

    budget = october["budget"]
    recovery = issued_recovery(
        budget=budget,
        reasons="Spent on something the plan does not allow",
        amount_pence=12_000,
        deadline=datetime.date(2026, 12, 31),
        addressee="person",
        addressee_name="Joan Robson",
        acting_user=october["finance"],
        today=datetime.date(2026, 10, 20),
    )
    repay = {"recovery": recovery, "acting_user": october["finance"], "method": "bank"}
    ending.recovery_repaid(**repay, amount_pence=2_000, key="first", received_on=datetime.date(2026, 10, 25))
    before_the_rest = statements.statement_data(budget, *OCTOBER).recoveries
    recovery = ending.recovery_repaid(
        **{**repay, "recovery": recovery}, amount_pence=10_000, key="rest", received_on=datetime.date(2026, 11, 15)
    )
    assert recovery.status == "settled"

    october_now = statements.statement_data(budget, *OCTOBER)
    assert october_now.recoveries == before_the_rest
    assert [(r.amount, r.outstanding, r.status) for r in october_now.recoveries] == [(12_000, 10_000, "Notice sent")]
    text = pdf_text(statements.render_statement_pdf(statements.render_statement_html(october_now)))
    assert "Money being recovered £100.00" in text
    november = statements.statement_data(budget, datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))
    assert november.recoveries == []


@pytest.mark.django_db
def test_money_recorded_after_the_last_statement_for_an_earlier_month_is_listed_on_the_next(client, october):
    """A receipt for 28 October recorded after October's statement was made is in November's balances and listed
    there as recorded late. With no earlier statement, or one made after it was recorded, nothing is late."""
    budget = october["budget"]
    november = (datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))
    spending.dp_spend_record(
        budget=budget,
        line=budget.lines.get(management_type="direct_payment"),
        payee="Receipt found late",
        spent_on=datetime.date(2026, 10, 28),
        amount_pence=1_234,
        key=f"statement-{budget.pk}-late",
        acting_user=october["finance"],
    )
    assert statements.statement_data(budget, *november).late_entries == []  # no statement has been made yet

    with time_machine.travel(datetime.datetime(2026, 11, 1, 4, 0, tzinfo=datetime.UTC), tick=False):
        made = statements.statement_generate(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
    data = statements.statement_data(budget, *november)
    # Straight from the transfers: dated before November, recorded after October's statement was made (the
    # fixture's own October money is recorded when the test runs, after 1 November, so it is late here too).
    ids = list(BudgetAccount.objects.filter(budget=budget).values_list("account_id", flat=True))
    recorded_late = (
        Transfer.objects.filter(phase__in=MOVED, effective_date__lt=november[0], recorded_at__gt=made.generated_at)
        .filter(Q(debit_account_id__in=ids) | Q(credit_account_id__in=ids))
        .exclude(code__in=person_selectors.BOOKKEEPING)
    )
    assert sorted(r.money_in + r.money_out for r in data.late_entries) == sorted(t.amount for t in recorded_late)
    [late] = [row for row in data.late_entries if row.description == "Paid to Receipt found late"]
    assert (late.date, late.money_out, late.line) == (datetime.date(2026, 10, 28), 1_234, "Singing for lung health")
    assert "Paid to Receipt found late" not in [row.description for row in data.transactions]

    text = pdf_text(statements.render_statement_pdf(statements.render_statement_html(data)))
    assert "Recorded late, for dates before this period" in text
    assert "28 October 2026 Paid to Receipt found late Singing for lung health £12.34" in text
    dp = account(budget, "held:direct-payment")
    assert f"Balance at the start of 1 November 2026 {pence(balance(dp, before=november[0]))}" in text
    client.force_login(october["patient"])
    page = client.get(f"/my/budgets/{budget.pk}/statements/statement/", {"period": "2026-11"}).content.decode()
    assert "Recorded late, for dates before this period" in page and "£12.34" in page

    october_data = statements.statement_data(budget, *OCTOBER)
    assert "Paid to Receipt found late" in [row.description for row in october_data.transactions]
    assert october_data.late_entries == []  # no statement before October's
    latest = Transfer.objects.order_by("-recorded_at").values_list("recorded_at", flat=True).first()
    Statement.objects.filter(pk=made.pk).update(generated_at=latest + datetime.timedelta(seconds=1))
    assert statements.statement_data(budget, *november).late_entries == []  # it was all on October's statement


# --- The PDF itself ---------------------------------------------------------------------------------------------


def embedded_fonts(reader: pypdf.PdfReader) -> dict[str, bool]:
    """Each font's name, and whether its file is in the PDF (Type0 fonts keep it on their descendant)."""
    fonts = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            described = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            descriptor = described["/FontDescriptor"].get_object()
            fonts[str(font["/BaseFont"])] = any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
    return fonts


@pytest.mark.django_db
def test_the_pdf_is_tagged_titled_in_english_with_bundled_fonts_and_page_numbers(october):
    data = statements.statement_data(october["budget"], *OCTOBER)
    # Eighty payments, so the table runs over a page break.
    rows = [dataclasses.replace(data.transactions[2], description=f"Paid to Harmony Singers {n}") for n in range(80)]
    data = dataclasses.replace(data, transactions=rows, money_out_total=sum(r.money_out for r in rows))
    content = statements.render_statement_pdf(statements.render_statement_html(data))
    reader = pypdf.PdfReader(io.BytesIO(content))
    catalog = reader.trailer["/Root"]
    assert catalog["/MarkInfo"]["/Marked"].value is True
    assert "/StructTreeRoot" in catalog
    assert catalog["/Lang"] == "en-GB"
    assert reader.metadata.title == f"Personal health budget statement, October 2026: {data.person_name}"
    assert reader.metadata.author == october["icb"].name
    assert b"pdfuaid:part" in catalog["/Metadata"].get_object().get_data()
    assert reader.pdf_header.startswith("%PDF-1.7")
    fonts = embedded_fonts(reader)
    assert fonts and all(fonts.values()), fonts  # every font is embedded, from our static folder
    assert all("Arial" in name for name in fonts)  # the bundled Liberation Sans, declared as Arial
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]
    assert all(f"Page {n} of {len(pages)}" in text for n, text in enumerate(pages, start=1))
    # The payments table's header row repeats on every page its rows reach.
    with_rows = [text for text in pages if "Paid to Harmony Singers" in text]
    assert len(with_rows) >= 2
    assert all("Date What Plan line Money in Money out" in text for text in with_rows)
    assert f"Name {data.person_name} NHS number {data.nhs_number}" in pages[0]
    running = f"{data.person_name}, NHS number {data.nhs_number}: Personal health budget statement, October 2026"
    assert all(running in text for text in pages[1:])  # every later page says whose it is


def structure_elements(node, parent=None):
    """(element, its parent's element) for every structure element under `node`, in document order."""
    node = node.get_object()
    if not isinstance(node, pypdf.generic.DictionaryObject):
        return
    if "/S" in node:
        yield node, parent
        parent = node
    kids = node.get("/K")
    for kid in kids if isinstance(kids, pypdf.generic.ArrayObject) else [] if kids is None else [kids]:
        yield from structure_elements(kid, parent)


@pytest.mark.django_db
def test_the_pdfs_structure_meets_pdf_ua_checkpoints_a_validator_would_test(october):
    """What veraPDF's PDF/UA-1 profile checks that can be read back here (veraPDF itself cannot be installed):
    the title shown, one H1 and no skipped heading level, a text alternative for the chart, every table's data
    cells tied to header cells that exist in the same table, and pages tabbing in structure order."""
    data = statements.statement_data(october["budget"], *OCTOBER)
    rows = [dataclasses.replace(data.transactions[2], description=f"Paid to Harmony Singers {n}") for n in range(80)]
    data = dataclasses.replace(data, transactions=rows, money_out_total=sum(r.money_out for r in rows))
    reader = pypdf.PdfReader(io.BytesIO(statements.render_statement_pdf(statements.render_statement_html(data))))
    catalog = reader.trailer["/Root"]
    assert catalog["/ViewerPreferences"]["/DisplayDocTitle"].value is True
    elements = list(structure_elements(catalog["/StructTreeRoot"]))
    kinds = [element["/S"] for element, _ in elements]
    assert kinds[0] == "/Document"

    headings = [int(kind[2]) for kind in kinds if re.fullmatch(r"/H[1-6]", kind)]
    assert headings[0] == 1 and headings.count(1) == 1
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(headings))  # no level skipped

    figures = [element for element, _ in elements if element["/S"] == "/Figure"]
    assert figures and all(str(figure.get("/Alt", "")).strip() for figure in figures)
    assert str(figures[0]["/Alt"]) == data.chart_title

    def table_of(element, parents):
        while element is not None and element["/S"] != "/Table":
            element = parents.get(id(element))
        return element

    parents = {id(element): parent for element, parent in elements}
    header_ids: dict[int, set[str]] = {}
    cells = []
    for element, _ in elements:
        if element["/S"] == "/TH":
            header_ids.setdefault(id(table_of(element, parents)), set()).add(str(element["/ID"]))
        elif element["/S"] == "/TD":
            cells.append(element)
    tables = [element for element, _ in elements if element["/S"] == "/Table"]
    assert len(tables) >= 6 and all(id(table) in header_ids for table in tables)  # every table has headers
    for cell in cells:
        headers = [str(header) for header in cell["/A"]["/Headers"]]
        assert headers and set(headers) <= header_ids[id(table_of(cell, parents))], headers

    assert all(page["/Tabs"] == "/S" and "/StructParents" in page for page in reader.pages)


@pytest.mark.django_db
def test_rendering_is_deterministic_and_a_stored_statement_is_returned_untouched(october):
    budget = october["budget"]
    html_text = statements.render_statement_html(statements.statement_data(budget, *OCTOBER))
    assert statements.render_statement_pdf(html_text) == statements.render_statement_pdf(html_text)
    first = statements.statement_generate(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
    with first.pdf.open("rb") as handle:
        content = handle.read()
    assert hashlib.sha256(content).hexdigest() == first.sha256 and content == statements.render_statement_pdf(html_text)
    assert content.startswith(b"%PDF-") and first.pages == len(pypdf.PdfReader(io.BytesIO(content)).pages)
    assert Path(first.pdf.path).is_relative_to(Path(october["media"]))  # outside the web root
    spending.dp_spend_record(
        budget=budget,
        line=None,
        payee="Late receipt",
        spent_on=datetime.date(2026, 10, 30),
        amount_pence=100,
        key="late",
        acting_user=october["finance"],
    )
    again = statements.statement_generate(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
    assert again.pk == first.pk and again.sha256 == first.sha256 and again.generated_at == first.generated_at
    with again.pdf.open("rb") as handle:
        assert handle.read() == content
    assert Statement.objects.count() == 1


@pytest.mark.django_db
def test_the_fast_xhtml_parse_gives_the_same_pdf_as_weasyprints_own_html_parser(october):
    """Statements skip WeasyPrint's pure-Python HTML5 parser for expat. That is only sound while the template spells
    out everything an HTML parser would infer, in every optional part: each variant must come out byte-identical."""
    data = statements.statement_data(october["budget"], *OCTOBER)
    day = datetime.date(2026, 9, 28)
    late = person_selectors.Transaction(day, "Receipt for September & <more>", "Singing", 0, 1_234)
    everything = dataclasses.replace(
        data,
        person_name='Zoë O\'Neil-Smith & "Sons" <Ltd>',
        outcomes=[*data.outcomes, "Keep <b>well</b> & out of hospital"],
        recoveries=[statements.RecoveryLine(day, 5_000, 2_000, day + datetime.timedelta(days=28), "Asked for")],
        late_entries=[late],
        contingency_description="If it's late, ring the 'office' & <ask>",
    )
    bare = dataclasses.replace(
        data,
        transactions=[],
        upcoming=[],
        holdings=[],
        direct_payment=None,
        surplus=None,
        next_review=None,
        contingency=0,
        contingency_description="",
        outcomes=[],
    )
    variants = [
        statements.render_statement_html(data),
        statements.render_statement_html(everything),
        statements.render_statement_html(everything, large_print=True),
        statements.render_statement_html(bare),
    ]
    assert "Receipt for September &amp; &lt;more&gt;" in variants[1]  # the parts this test exists for are there
    assert "Asked for" in variants[1] and "Recorded late" in variants[1]
    for html_text in variants:
        assert statements._xml_root(html_text) is not None  # the fast way is the one taken
        fast = statements.render_statement_pdf(html_text)
        assert fast == statements.render_statement_pdf(html_text, xhtml=False)
        assert fast == weasyprint_alone(html_text)  # and our user-agent stylesheet draws what WeasyPrint's does
    # What expat refuses (a control character a name could hold) still renders, the HTML5 way.
    odd = statements.render_statement_html(dataclasses.replace(data, person_name="Joan\x0bRobson"))
    assert statements._xml_root(odd) is None
    content = statements.render_statement_pdf(odd)
    assert content.startswith(b"%PDF-") and len(pypdf.PdfReader(io.BytesIO(content)).pages) >= 2


FILE_IDENTIFIER = re.compile(rb"/ID \[\(([0-9a-f]{32})\) \(([0-9a-f]{32})\)\]")


@pytest.mark.django_db
def test_the_file_identifier_is_weasyprints_own_but_for_the_hash_that_ends_it(october):
    html_text = statements.render_statement_html(statements.statement_data(october["budget"], *OCTOBER))
    document = statements.render_pdf_document(html_text)
    identifier = hashlib.sha256(html_text.encode()).hexdigest()[:32].encode()
    ours = statements.render_statement_pdf(html_text)
    weasyprints = document.write_pdf(pdf_identifier=identifier, **statements.PDF_OPTIONS)
    ours_id, weasyprints_id = FILE_IDENTIFIER.search(ours).groups(), FILE_IDENTIFIER.search(weasyprints).groups()
    assert ours_id[0] == weasyprints_id[0] == identifier
    file_hash = hashlib.md5(document.write_pdf(**statements.PDF_OPTIONS), usedforsecurity=False).hexdigest()
    assert ours_id[1] == file_hash.encode()
    # Every other byte is WeasyPrint's: no object moved, so every offset in the cross-reference stream still holds.
    assert FILE_IDENTIFIER.sub(b"ID", ours) == FILE_IDENTIFIER.sub(b"ID", weasyprints)
    reader = pypdf.PdfReader(io.BytesIO(ours), strict=True)
    assert [str(value) for value in reader.trailer["/ID"]] == [value.decode() for value in ours_id]
    assert len(reader.pages) >= 2 and "Spending against the budget" in pdf_text(ours)
    # A file not laid out as WeasyPrint 70 writes it gets no identifier this way (statements then take WeasyPrint's).
    assert statements.with_file_identifier(weasyprints, identifier) is None  # it has one already
    assert statements.with_file_identifier(ours[:-10], identifier) is None
    assert statements.with_file_identifier(document.write_pdf(uncompressed_pdf=True), identifier) is None
    assert statements.with_file_identifier(document.write_pdf(**statements.PDF_OPTIONS), b"(x)") is None


SVG_TEXT = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 200" width="100%" font-size="16" fill="#212b32">'
    '<text x="20" y="30">Planned budget</text>'
    '<text x="380" y="60" text-anchor="end">£12,500</text>'
    '<text x="200" y="90" text-anchor="middle">Oct<tspan x="200" dy="18">2026</tspan></text>'
    '<text x="20" y="150" font-weight="bold" dominant-baseline="middle">AVAWAY To</text>'
    "{letter_by_letter}</svg>"
)
# What needs each letter placed on its own is left to WeasyPrint.
LETTER_BY_LETTER = (
    '<text x="20 60 100" y="180">abc</text><text x="200" y="180" letter-spacing="4">spaced</text>'
    '<text x="300" y="120" rotate="10 20">tilt</text><text x="300" y="20" display-anchor="middle">anchor</text>'
)


def svg_text_pdf(letter_by_letter: str = "", *, runs: bool) -> bytes:
    from budgets import svg_text

    html_text = (
        f'<html lang="en"><head><title>t</title></head><body>{SVG_TEXT.format(letter_by_letter=letter_by_letter)}'
    )
    (svg_text.install if runs else svg_text.uninstall)()
    try:
        return statements.render_statement_pdf(html_text + "</body></html>")
    finally:
        svg_text.install()


def text_shown(content: bytes) -> int:
    """How many text-showing operators the first page draws, in its content and its form XObjects."""
    page = pypdf.PdfReader(io.BytesIO(content)).pages[0]
    data = page.get_contents().get_data()
    forms = page["/Resources"].get("/XObject", {})
    data += b"".join(forms[name].get_object().get_data() for name in forms)
    return len(re.findall(rb"\bT[Jj]\b", data))


def test_svg_text_is_drawn_a_run_at_a_time_and_looks_as_weasyprint_draws_it_letter_by_letter(tmp_path):
    runs, letters = svg_text_pdf(runs=True), svg_text_pdf(runs=False)
    # One text-showing operator per text and tspan, where WeasyPrint shows each letter (spaces are not drawn).
    assert text_shown(runs) == 5
    assert text_shown(letters) == len("Plannedbudget£12,500Oct2026AVAWAYTo")
    assert pdf_text(runs) == pdf_text(letters) == "Planned budget £12,500 2026 Oct AVAWAY To"
    pictures = []
    for name, content in (("runs", runs), ("letters", letters)):
        (tmp_path / f"{name}.pdf").write_bytes(content)
        subprocess.run(
            ["pdftoppm", "-r", "100", "-png", "-singlefile", f"{name}.pdf", name], cwd=tmp_path, check=True, timeout=60
        )
        pictures.append(Image.open(tmp_path / f"{name}.png").convert("L"))
    ink = [ImageOps.invert(picture).getbbox() for picture in pictures]
    assert ink[0] is not None and ink[0] == ink[1]  # the same text in the same place, anchors and tspan included
    differing = sum(ImageChops.difference(*pictures).histogram()[65:])
    assert differing < 0.005 * pictures[0].width * pictures[0].height  # at most a pixel's shift at glyph edges


def test_svg_text_that_needs_placing_letter_by_letter_is_drawn_by_weasyprint():
    runs = svg_text_pdf(LETTER_BY_LETTER, runs=True)
    assert text_shown(runs) == 5 + len("abcspacedtiltanchor")
    assert FILE_IDENTIFIER.sub(b"ID", runs) != FILE_IDENTIFIER.sub(b"ID", svg_text_pdf(runs=True))
    # Only the simple texts are drawn differently: the letter-by-letter ones are WeasyPrint's, byte for byte.
    alone = svg_text_pdf(LETTER_BY_LETTER, runs=False)
    assert text_shown(alone) == len("Plannedbudget£12,500Oct2026AVAWAYTo") + len("abcspacedtiltanchor")


@pytest.mark.django_db
def test_large_print_uses_at_least_16pt_everywhere_including_the_chart(october):
    data = statements.statement_data(october["budget"], *OCTOBER)
    large = statements.render_statement_html(data, large_print=True)
    css = re.search(r"<style>(.*)</style>", large, re.S)[1]
    sizes = [float(size) for size in re.findall(r"font-size:\s*([\d.]+)pt", css)]
    assert sizes and min(sizes) >= 16
    assert not re.search(r"font-size:\s*[\d.]+(px|em|rem|%)", css)
    # The chart's 13-unit text is drawn across the page's content width (A4 less 2 x 16mm): at least 16pt too.
    view_box_width = float(re.search(r'viewBox="0 0 ([\d.]+) ', large)[1])
    content_width_pt = (210 - 32) / 25.4 * 72
    assert 13 * content_width_pt / view_box_width >= 16
    standard = statements.render_statement_html(data)
    assert "font-size: 11pt" in standard
    pages = len(pypdf.PdfReader(io.BytesIO(statements.render_statement_pdf(large))).pages)
    assert pages > len(pypdf.PdfReader(io.BytesIO(statements.render_statement_pdf(standard))).pages)


@pytest.mark.django_db
def test_page_one_renders_to_a_png_that_is_not_blank(october, tmp_path):
    data = statements.statement_data(october["budget"], *OCTOBER)
    (tmp_path / "statement.pdf").write_bytes(statements.render_statement_pdf(statements.render_statement_html(data)))
    subprocess.run(
        ["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", "-singlefile", "statement.pdf", "page"],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    image = Image.open(tmp_path / "page.png").convert("L")
    assert abs(image.width - 496) <= 1 and abs(image.height - 702) <= 1  # A4 at 60 dpi
    ink = sum(count for value, count in enumerate(image.histogram()) if value < 200)
    assert 0.02 < ink / (image.width * image.height) < 0.5  # text and rules on white: neither blank nor solid
    if os.environ.get("STATEMENT_EXAMPLE"):  # STATEMENT_EXAMPLE=1 pytest -k png refreshes the picture in the docs
        subprocess.run(
            ["pdftoppm", "-r", "80", "-f", "1", "-l", "1", "-png", "-singlefile", "statement.pdf", "example"],
            cwd=tmp_path,
            check=True,
        )
        shutil.copy(tmp_path / "example.png", DOCS_EXAMPLE)


RENDER_AND_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    import django
    django.setup()
    from budgets import statements
    statements.render_statement_pdf("<html lang='en-GB'><title>warm</title><p>warm</p></html>")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pdf, pages = statements.render_statement_pdf_with_pages(open(sys.argv[1], encoding="utf-8").read())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"pages": pages, "before_kib": before, "after_kib": after, "bytes": len(pdf)}))
    """
)


@pytest.mark.django_db
def test_a_100_page_statement_renders_in_bounded_memory(october, tmp_path):
    data = statements.statement_data(october["budget"], *OCTOBER)
    row = data.transactions[2]
    many = [dataclasses.replace(row, description=f"Paid to Harmony Singers {n}") for n in range(4_000)]
    big = dataclasses.replace(data, transactions=many, money_out_total=sum(r.money_out for r in many))
    (tmp_path / "big.html").write_text(statements.render_statement_html(big), encoding="utf-8")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    run = subprocess.run(
        [sys.executable, "-c", RENDER_AND_MEASURE, str(tmp_path / "big.html")],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["pages"] >= 100
    growth_mib = (measured["after_kib"] - measured["before_kib"]) / 1024
    # tech.md measured 481 MiB for 117 pages of a plain table; here ~110 pages of PDF/UA grew it by ~450 MiB.
    assert growth_mib < 800, f"rendering {measured['pages']} pages grew the process by {growth_mib:.0f} MiB"


# --- The URL fetcher -----------------------------------------------------------------------------------------


def test_the_url_fetcher_reads_our_static_files_and_refuses_everything_else(settings):
    font = Path(settings.STATICFILES_DIRS[0]) / "fonts" / "LiberationSans-Regular.ttf"
    response = statements.url_fetcher()(font.as_uri())
    assert response.read()[:4] == b"\x00\x01\x00\x00"  # a TrueType font
    static = Path(settings.STATICFILES_DIRS[0]).resolve()
    for url in (
        "file:///etc/passwd",
        "http://example.com/statement.css",
        "https://example.com/font.ttf",
        "data:text/plain,secret",
        "ftp://example.com/x",
        f"file://{static}/../config/settings.py",  # out of the folder by ..
        f"file://{static}/%2e%2e/config/settings.py",
        f"file://evil.example{static}/fonts/LiberationSans-Regular.ttf",
        f"file://{static}/fonts/no-such-file.ttf",
    ):
        with pytest.raises(statements.RefusedResource):
            statements.url_fetcher()(url)


def test_a_document_asking_for_another_file_is_refused_not_rendered_without_it():
    document = "<html lang='en-GB'><title>t</title><img src='file:///etc/passwd' alt=''></html>"
    with pytest.raises(statements.RefusedResource):
        statements.render_statement_pdf(document)
    with pytest.raises(statements.RefusedResource):
        statements.render_statement_pdf("<html><style>@import url(http://example.com/a.css);</style></html>")


def test_periods_are_whole_months_or_checked_ranges():
    assert statements.month_period("2026-02") == (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
    assert statements.previous_month(datetime.date(2027, 1, 1)) == (
        datetime.date(2026, 12, 1),
        datetime.date(2026, 12, 31),
    )
    for bad in ("2026-13", "2026-1", "26-10", "", "2026-10-01", "x"):
        with pytest.raises(ValueError):
            statements.month_period(bad)
    assert statements.describe_period(*OCTOBER) == "October 2026"
    assert statements.describe_period(datetime.date(2026, 10, 3), OCTOBER[1]) == "3 October 2026 to 31 October 2026"


# --- Pages, access and the download log ------------------------------------------------------------------------


def _urls(pk: int, side: str) -> list[str]:
    prefix = f"/my/budgets/{pk}" if side == "my" else f"/budgets/{pk}"
    return [
        f"{prefix}/statements/",
        f"{prefix}/statements/statement/?period=2026-10",
        f"{prefix}/statements/statement.pdf?period=2026-10",
    ]


def signed_in_nominee(person):
    """The person's husband, nominated with his consent, who signs in as their nominee: his sign-in."""
    nominee = user_with_role(Role.NOMINEE)
    Representative.objects.create(
        person=person,
        kind="nominee",
        name="Michael Robson",
        relationship="husband",
        nominated_on=START,
        consent_recorded_on=START,
        user=nominee,
    )
    return nominee


@pytest.mark.django_db
def test_only_the_person_those_acting_for_them_their_coordinator_and_finance_may_read_statements(client, october):
    budget = october["budget"]
    statements.statement_generate(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
    person = october["plan"].person
    nominee = signed_in_nominee(person)
    holder = budget.lines.get(management_type="third_party").plan_line.third_party_holder
    allowed = {
        "my": [october["patient"], nominee],
        "staff": [
            october["coordinator"],
            october["finance"],
            user_with_role(Role.FINANCE_MANAGER, organisation=october["icb"]),
        ],
    }
    for side, users in allowed.items():
        for user in users:
            client.force_login(user)
            for url in _urls(budget.pk, side):
                assert client.get(url).status_code == 200, (user, url)
            assert client.get(_urls(budget.pk, "my" if side == "staff" else "staff")[0]).status_code == 404

    # Everyone else, including staff who see the person elsewhere (their broker, the approver, the holder).
    other_crew = agreed_crew()
    refused = [
        october["broker"],
        october["approver"],
        user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder),
        user_with_role(Role.AUDITOR),
        user_with_role(Role.ADMINISTRATOR),
        user_with_role(Role.PATIENT),
        user_with_role(Role.NOMINEE),
        other_crew["coordinator"],  # a coordinator, but not this person's
    ]
    inactive = Representative.objects.create(
        person=person,
        kind="representative",
        name="Former representative",
        relationship="son",
        basis="adult_lacking_capacity",
        user=user_with_role(Role.REPRESENTATIVE),
        active=False,
    )
    refused.append(inactive.user)
    logged = StatementDownload.objects.count()
    for user in refused:
        client.force_login(user)
        for side in ("my", "staff"):
            for url in _urls(budget.pk, side):
                assert client.get(url).status_code == 404, (user, url)
            response = client.post(_urls(budget.pk, side)[0] + "request/", {"period": "2026-10"})
            assert response.status_code == 404
    assert StatementDownload.objects.count() == logged  # refusals show and log nothing


@pytest.mark.django_db
def test_every_read_is_logged_with_who_what_and_which_statement(client, october):
    budget = october["budget"]
    client.force_login(october["patient"])
    client.get(f"/my/budgets/{budget.pk}/statements/statement/", {"period": "2026-10"})
    not_made = client.get(f"/my/budgets/{budget.pk}/statements/statement.pdf", {"period": "2026-10"})
    assert not_made.status_code == 302 and "statement/?start=2026-10-01&end=2026-10-31" in not_made["Location"]
    statement = statements.statement_generate(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
    download = client.get(f"/my/budgets/{budget.pk}/statements/statement.pdf", {"period": "2026-10"})
    assert download["Content-Type"] == "application/pdf"
    assert 'filename="statement-2026-10-01-to-2026-10-31.pdf"' in download["Content-Disposition"]
    with statement.pdf.open("rb") as handle:
        assert b"".join(download.streaming_content) == handle.read()
    client.force_login(october["finance"])
    client.get(f"/budgets/{budget.pk}/statements/statement/", {"start": "2026-10-01", "end": "2026-10-31"})
    rows = list(StatementDownload.objects.order_by("id").values_list("user", "format", "statement", "period_start"))
    assert rows == [
        (october["patient"].pk, "html", None, OCTOBER[0]),
        (october["patient"].pk, "pdf", statement.pk, OCTOBER[0]),
        (october["finance"].pk, "html", statement.pk, OCTOBER[0]),
    ]


@pytest.mark.django_db
def test_the_statement_pages_list_months_and_explain_bad_periods(client, october, time_machine):
    time_machine.move_to(datetime.datetime(2026, 11, 24, 12, 0), tick=False)
    budget = october["budget"]
    client.force_login(october["patient"])
    assert "statements/" in client.get(f"/my/budgets/{budget.pk}/").content.decode()
    listing = client.get(f"/my/budgets/{budget.pk}/statements/").content.decode()
    assert 'data-period="2026-11"' in listing and 'data-period="2026-10"' in listing
    assert "When the month is over" in listing  # November is not over: no PDF yet
    assert "Ask for it" in listing  # October is over and not made yet
    for query, error in (
        ({"period": "2026-13"}, "Enter a month like 2026-10"),
        ({"start": "2026-10-10", "end": "2026-10-01"}, "The end date must be on or after the start date"),
        ({"start": "2025-01-01", "end": "2026-10-01"}, "A statement can cover at most a year"),
        ({"start": "yesterday", "end": "2026-10-01"}, "Enter a real start date"),
    ):
        page = client.get(f"/my/budgets/{budget.pk}/statements/statement/", query)
        assert page.status_code == 200 and error in html.unescape(page.content.decode())
        assert "nhsuk-error-summary" in page.content.decode()
    refused = client.post(f"/my/budgets/{budget.pk}/statements/request/", {"start": "2026-10-09", "end": "x"})
    assert refused.status_code == 200 and "Enter a real end date" in refused.content.decode()
    too_soon = client.post(f"/my/budgets/{budget.pk}/statements/request/", {"period": "2026-11"}, follow=True)
    assert "once the period is over" in too_soon.content.decode()
    assert not ProcrastinateJob.objects.filter(task_name="budgets.statement_request").exists()
    so_far = client.get(f"/my/budgets/{budget.pk}/statements/statement/", {"period": "2026-11"}).content.decode()
    assert "This period is not over yet" in so_far and "can be made once the period is over" in so_far
    assert f"/budgets/{budget.pk}/statements/" not in client.get(f"/budgets/{budget.pk}/").content.decode()
    client.force_login(october["finance"])
    assert f"/budgets/{budget.pk}/statements/" in client.get(f"/budgets/{budget.pk}/").content.decode()


# --- Asking for a PDF: made by a worker, the person told once --------------------------------------------------


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("empty_job_queue")
def test_a_requested_pdf_is_made_by_a_worker_and_the_person_told_once(client, october):
    budget = october["budget"]
    client.force_login(october["patient"])
    url = f"/my/budgets/{budget.pk}/statements/request/"
    response = client.post(url, {"period": "2026-10", "large_print": "on"})
    assert response.status_code == 302
    assert "large_print=on" in response["Location"]
    again = client.post(url, {"period": "2026-10", "large_print": "on"}, follow=True)  # a double click
    assert "already been asked for" in again.content.decode()
    assert ProcrastinateJob.objects.filter(task_name="budgets.statement_request").count() == 1
    assert not Statement.objects.exists()  # nothing is rendered in the request

    run_worker_until_idle()  # makes the statement, then queues the email
    run_worker_until_idle()  # sends it
    statement = Statement.objects.get()
    assert statement.large_print and statement.notified_at is not None
    assert [message.to for message in mail.outbox] == [["joan@example.org"]]
    assert "October 2026" in mail.outbox[0].subject and "£" not in mail.outbox[0].body
    assert f"/my/budgets/{budget.pk}/statements/" in mail.outbox[0].body
    page = client.get(f"/my/budgets/{budget.pk}/statements/statement/", {"period": "2026-10"}).content.decode()
    assert "Download the large print PDF" in page
    assert statements.statement_notify(statement=statement) is False and len(mail.outbox) == 1


# --- Batches: every core, killed and run again ------------------------------------------------------------------


def live_budgets(count: int) -> list:
    budgets = []
    for number in range(count):
        crew = agreed_crew()
        person = crew["plan"].person
        person.email = f"person{number}@example.org"
        person.save(update_fields=["email"])
        budgets.append(busy_budget(crew, extra_spends=number % 3))
    return budgets


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def stored_statements_are_sound(budgets) -> None:
    for budget in budgets:
        statement = Statement.objects.get(budget=budget, period_start=OCTOBER[0], period_end=OCTOBER[1])
        with statement.pdf.open("rb") as handle:
            content = handle.read()
        assert hashlib.sha256(content).hexdigest() == statement.sha256
        alone = statements.render_statement_pdf(
            statements.render_statement_html(statements.statement_data(budget, *OCTOBER))
        )
        assert content == alone, f"budget {budget.pk}: the stored PDF differs from one rendered alone"
        assert statement.notified_at is not None


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("empty_job_queue")
def test_a_batch_killed_mid_run_and_run_again_stores_each_statement_once_identical_to_one_rendered_alone(
    settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    budgets = live_budgets(14)
    # Workers bind their queries on the server (prepared once per worker): one budget has a notice open, so the
    # recovery's history is read too, and another a nominee who is told as well as the person.
    notice_open_in_october(budgets[1], user_with_role(Role.FINANCE_OFFICER))
    nominee = signed_in_nominee(budgets[2].plan.person)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [sys.executable, "manage.py", "statements_generate", "--period", "2026-10", "--workers", "2"]
    batch = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while Statement.objects.count() < 3:
        assert time.monotonic() < deadline and batch.poll() is None, "the batch finished before it could be killed"
        time.sleep(0.005)
    workers = children_of(batch.pid)
    assert workers, "the batch has no worker processes"
    batch.send_signal(signal.SIGKILL)
    batch.wait()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in workers):  # orphaned workers notice and stop
        assert time.monotonic() < deadline, "worker processes outlived their killed batch"
        time.sleep(0.1)
    made_when_killed = Statement.objects.count()
    assert made_when_killed < len(budgets)

    rerun = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(budgets)} budgets" in rerun.stdout
    assert Statement.objects.count() == len(budgets)
    stored_statements_are_sound(budgets)
    # Every file on disk that a statement row names is whole; leftovers of the killed run are never named.
    named = {Path(s.pdf.path) for s in Statement.objects.all()}
    assert all(path.exists() for path in named)
    assert not any(path.name.endswith(".part") for path in named)
    # Each person is told exactly once, across both runs.
    emails = ProcrastinateJob.objects.filter(task_name="accounts.send_email")
    told = [b.plan.person.email for b in budgets] + [nominee.email]
    assert sorted(job.args["to"][0] for job in emails) == sorted(told)
    notice = Statement.objects.get(budget=budgets[1])
    assert "Money being recovered £100.00" in pdf_text(notice.pdf.open("rb").read())

    third = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "0 made now" in third.stdout
    assert Statement.objects.count() == len(budgets) and emails.count() == len(told)


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("empty_job_queue")
def test_the_monthly_task_makes_last_months_statements_for_live_budgets_only(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    budgets = live_budgets(2)
    later = agreed_crew()
    services.budget_set_up(plan=later["plan"], acting_user=later["finance"], start_date=datetime.date(2026, 11, 10))
    first_of_november = int(datetime.datetime(2026, 11, 1, 4, 0, tzinfo=datetime.UTC).timestamp())
    result = budget_tasks.statements_monthly(timestamp=first_of_november)
    assert result == {"period": "2026-10", "budgets": 2, "generated": 2, "failed": 0, "notified": 2}
    assert budget_tasks.statements_monthly(timestamp=first_of_november)["generated"] == 0
    stored_statements_are_sound(budgets)
    import config.tasks  # the schedule, as the worker loads it (PROCRASTINATE_IMPORT_PATHS)

    periodic = {task.periodic_id: task.cron for task in config.tasks.app.periodic_registry.periodic_tasks.values()}
    assert periodic["budgets-statements-monthly"] == "0 4 1 * *"


def test_batch_workers_get_this_database_and_media_folder(settings, db):
    env = statement_batch.worker_environment()
    assert env["MEDIA_ROOT"] == str(settings.MEDIA_ROOT)
    assert env["DATABASE_URL"].startswith("postgresql://") and "test_" in env["DATABASE_URL"]
