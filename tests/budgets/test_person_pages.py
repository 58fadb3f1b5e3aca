"""The person's own pages: the budget in plain English with its chart and table, transactions filtered and paged,
recording a purchase with a receipt (checked, stored outside the web root, served only to those allowed), and
paying a provider's invoice from the direct payment with a check step and a one-time key."""

import datetime
import html
import re

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.roles import Role
from brokerage.models import ConnectedPerson, Representative
from budgets import payment_runs, person_views, services, spending
from budgets.models import (
    DirectPaymentInvoice,
    DirectPaymentInvoiceStatus,
    DirectPaymentSpend,
    ScheduledPayment,
    SpendFlag,
)
from config.formatting import format_pence
from ledger.models import Account
from ledger.verification import ledger_verify
from providers.models import Provider, ServiceCategory
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_payment_runs import add_bank_details
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)
TODAY = datetime.datetime(2026, 12, 20, 10, 0)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def budget_in_use(crew, start=START):
    budget = services.budget_set_up(plan=crew["plan"], acting_user=crew["finance"], start_date=start)
    add_bank_details(budget)
    for payment in ScheduledPayment.objects.filter(budget=budget, due_on=start):
        services.scheduled_payment_pay(payment=payment, acting_user=crew["finance"])
    return budget


@pytest.fixture
def mine(agreed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    budget = budget_in_use(agreed)
    patient = user_with_role(Role.PATIENT)
    person = agreed["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    agreed.update(budget=budget, patient=patient, dp_line=budget.lines.get(management_type="direct_payment"))
    return agreed


def rows(response) -> list[tuple[datetime.date, str]]:
    found = re.findall(r'data-date="([\d-]+)" data-line="([^"]*)"', response.content.decode())
    return [(datetime.date.fromisoformat(date), html.unescape(line)) for date, line in found]


def dp_balance(budget) -> int:
    return Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment").posted_balance


def dp_available(budget) -> int:
    return Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment").available_balance


@time_machine.travel(TODAY, tick=False)
def test_the_budget_page_shows_plan_balance_lines_and_a_chart_with_its_table(client, mine):
    client.force_login(mine["patient"])
    assert client.get("/my/")["Location"] == f"/my/budgets/{mine['budget'].pk}/"
    page = client.get(f"/my/budgets/{mine['budget'].pk}/").content.decode()
    assert "Your personal health budget" in page
    assert 'role="img"' in page and "<svg" in page and "By the end of each month" in page
    for text in ("District nursing", "Tyneside", mine["plan"].care_coordinator.full_name, "Coming up"):
        assert text in page
    assert f"£{dp_balance(mine['budget']) / 100:,.2f}" in page  # what the direct-payment account holds
    for outcome in mine["plan"].outcomes.all():
        assert outcome.description in page


@time_machine.travel(TODAY, tick=False)
def test_transactions_are_newest_first_filtered_and_paged(client, mine):
    budget, line = mine["budget"], mine["dp_line"]
    for day in range(1, 26):
        spending.dp_spend_record(
            budget=budget,
            line=line if day % 2 else None,
            payee=f"Payee {day}",
            spent_on=datetime.date(2026, 12, 1) + datetime.timedelta(days=day % 19),
            amount_pence=10 + day,
            key=f"t-{day}",
            acting_user=mine["finance"],
        )
    client.force_login(mine["patient"])
    url = f"/my/budgets/{budget.pk}/transactions/"
    first = rows(client.get(url))
    assert len(first) == 20
    dates = [date for date, _ in first]
    assert dates == sorted(dates, reverse=True)
    coded = client.get(url, {"line": line.pk})
    assert {name for _, name in rows(coded)} == {line.plan_line.description}
    assert "Newest first: 13 transactions" in coded.content.decode()
    second = client.get(url, {"line": line.pk, "page": 2})
    assert len(rows(second)) == 13  # 13 fit on one page: a page past the end shows the last one
    everything = client.get(url, {"page": 2}).content.decode()
    assert "page 2 of" in everything and "Newer" in everything
    # The first instalments: the trust's is named as where the money went, not "a transfer to the holder".
    assert "Instalment paid to Tyneside Independent User Trust, who holds part of the budget" in everything
    assert "Direct payment instalment" in everything
    since = rows(client.get(url, {"since": "2026-12-15", "until": "2026-12-19"}))
    assert since and all(datetime.date(2026, 12, 15) <= date <= datetime.date(2026, 12, 19) for date, _ in since)
    bad = client.get(url, {"since": "2026-13-45", "until": "yesterday", "line": "x", "page": "zz"})
    assert bad.status_code == 200 and "nhsuk-error-summary" in bad.content.decode()


@time_machine.travel(TODAY, tick=False)
def test_a_purchase_with_a_receipt_is_recorded_flagged_and_served_only_to_those_allowed(client, mine, settings):
    budget = mine["budget"]
    client.force_login(mine["patient"])
    url = f"/my/budgets/{budget.pk}/purchases/new/"
    form = client.get(url).content.decode()
    assert 'type="file"' in form and 'enctype="multipart/form-data"' in form
    body = {"payee": "Harmony Singers", "spent_on": "2026-12-10", "amount": "6.00", "line": mine["dp_line"].pk}

    not_a_receipt = client.post(url, {**body, "key": "a", "receipt": SimpleUploadedFile("r.pdf", b"MZ\x90\x00")})
    assert "The file must be a PDF, JPEG or PNG" in not_a_receipt.content.decode()
    assert not DirectPaymentSpend.objects.exists()

    recorded = client.post(url, {**body, "key": "b", "receipt": SimpleUploadedFile("receipt.pdf", PDF)})
    assert recorded.status_code == 302
    client.post(url, {**body, "key": "b", "receipt": SimpleUploadedFile("receipt.pdf", PDF)})  # double click
    spend = DirectPaymentSpend.objects.get()
    assert spend.flag == SpendFlag.NONE and spend.receipt_type == "application/pdf"
    assert str(settings.MEDIA_ROOT) in spend.receipt.path  # outside the web root: no URL serves MEDIA_ROOT
    download = client.get(f"/budgets/{budget.pk}/receipts/{spend.pk}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf" and "attachment" in download["Content-Disposition"]

    alcohol = ServiceCategory.objects.filter(is_prohibited=True).first()
    options = re.findall(r"<option[^>]*>([^<]*)</option>", form)
    marked = [option for option in options if option.endswith("(the budget cannot pay for this)")]
    assert f"{html.escape(alcohol.name)} (the budget cannot pay for this)" in marked
    assert len(marked) == ServiceCategory.objects.filter(is_prohibited=True, active=True).count()
    allowed = ServiceCategory.objects.filter(is_prohibited=False, active=True)
    assert options.index(marked[0]) > max(options.index(html.escape(category.name)) for category in allowed)
    client.post(
        url,
        {
            **body,
            "line": "",
            "category": alcohol.pk,
            "key": "c",
            "receipt": SimpleUploadedFile("x.png", b"\x89PNG\r\n\x1a\n0000"),
        },
    )
    flagged = DirectPaymentSpend.objects.get(idempotency_key__endswith=":c")
    assert flagged.flag == SpendFlag.PROHIBITED
    banner = client.get(f"/my/budgets/{budget.pk}/transactions/").content.decode()  # shown once, after the redirect
    assert "Recorded: £6.00 paid to Harmony Singers. Your care coordinator will check it" in banner

    partner = ConnectedPerson.objects.create(
        person=mine["plan"].person,
        provider=Provider.objects.create(name="Sam Robson", kind="personal_assistant"),
        relationship="spouse",
    )
    refused = client.post(
        url, {**body, "connected_person": partner.pk, "key": "d", "receipt": SimpleUploadedFile("r.pdf", PDF)}
    ).content.decode()
    assert "until the ICB has approved that it is necessary" in refused
    assert DirectPaymentSpend.objects.count() == 2

    other = agreed_crew()
    outsider = user_with_role(Role.PATIENT)
    other["plan"].person.user = outsider
    other["plan"].person.save(update_fields=["user"])
    client.force_login(outsider)
    assert client.get(f"/budgets/{budget.pk}/receipts/{spend.pk}/").status_code == 404
    client.force_login(mine["finance"])  # finance staff may see the evidence
    assert client.get(f"/budgets/{budget.pk}/receipts/{spend.pk}/").status_code == 200


def test_a_receipt_over_the_size_limit_is_refused(client, mine, monkeypatch):
    monkeypatch.setattr(person_views, "RECEIPT_MAX_BYTES", len(PDF) - 1)
    client.force_login(mine["patient"])
    with time_machine.travel(TODAY, tick=False):
        client.force_login(mine["patient"])
        page = client.post(
            f"/my/budgets/{mine['budget'].pk}/purchases/new/",
            {
                "payee": "X",
                "spent_on": "2026-12-10",
                "amount": "1.00",
                "key": "k",
                "receipt": SimpleUploadedFile("r.pdf", PDF),
            },
        ).content.decode()
    assert "The file must be smaller than 10MB" in page and not DirectPaymentSpend.objects.exists()


@time_machine.travel(TODAY, tick=False)
def test_paying_an_invoice_checks_first_reserves_the_money_and_goes_in_the_next_run(client, mine):
    budget, provider = mine["budget"], mine["dp_line"].plan_line.provider
    Provider.objects.filter(pk=provider.pk).update(
        account_name="HARMONY", sort_code="112233", account_number="44556677"
    )
    client.force_login(mine["patient"])
    url = f"/my/budgets/{budget.pk}/invoices/pay/"
    body = {
        "provider": provider.pk,
        "invoice_number": "HS-9",
        "amount": "12.00",
        "line": mine["dp_line"].pk,
        "key": "once",
    }
    check = client.post(url, {**body, "step": "details"}).content.decode()
    assert "Check before you pay" in check and "By bank transfer in the next payment run" in check
    assert 'name="step" value="change"' in check
    changing = client.post(url, {**body, "step": "change"}).content.decode()  # "Change the details"
    assert 'value="HS-9"' in changing and 'value="12.00"' in changing and 'value="once"' in changing
    assert re.search(rf'<option value="{provider.pk}"\s+selected', changing)
    assert "There is a problem" not in changing
    assert not DirectPaymentInvoice.objects.exists()  # nothing moves before the check step
    before = dp_available(budget)
    paid = client.post(url, {**body, "step": "confirm"})
    client.post(url, {**body, "step": "confirm"})  # a double click: the one-time key pays once
    invoice = DirectPaymentInvoice.objects.get()
    assert paid["Location"] == f"/my/budgets/{budget.pk}/invoices/{invoice.pk}/"
    assert invoice.status == DirectPaymentInvoiceStatus.QUEUED and dp_available(budget) == before - 1200
    assert "Payment booked" in client.get(paid["Location"]).content.decode()
    # The budget page says the money is set aside, so the person does not count on spending it.
    assert (
        "of which £12.00 is set aside for invoices being paid"
        in client.get(f"/my/budgets/{budget.pk}/").content.decode()
    )

    manager = user_with_role(Role.FINANCE_MANAGER, organisation=mine["icb"])
    run, _ = payment_runs.payment_run_create(run_date=TODAY.date(), acting_user=mine["finance"])
    assert "Invoice HS-9 (direct payment)" in [item.paying_for for item in run.items.all()]
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    payment_runs.payment_run_post(run=run, acting_user=mine["finance"])
    invoice.refresh_from_db()
    assert invoice.status == DirectPaymentInvoiceStatus.PAID
    assert Account.objects.get(pk=mine["dp_line"].spend_account_id).posted_balance == 1200
    assert b"HARMONY" in payment_runs.payment_run_bacs_file(run)
    assert ledger_verify().ok


@time_machine.travel(TODAY, tick=False)
def test_a_connected_provider_is_paid_at_once_and_a_refused_transfer_moves_nothing(client, mine, fake_payments):
    budget, provider = mine["budget"], mine["dp_line"].plan_line.provider
    Provider.objects.filter(pk=provider.pk).update(stripe_account_id="acct_1HarmonySingers")
    client.force_login(mine["patient"])
    url = f"/my/budgets/{budget.pk}/invoices/pay/"
    body = {"provider": provider.pk, "invoice_number": "HS-1", "amount": "5.00", "line": mine["dp_line"].pk}
    client.post(url, {**body, "key": "k1", "step": "confirm"})
    client.post(url, {**body, "key": "k1", "step": "confirm"})
    invoice = DirectPaymentInvoice.objects.get()
    assert invoice.status == DirectPaymentInvoiceStatus.PAID and len(fake_payments.transfers) == 1
    assert fake_payments.transfers[0].destination == "acct_1HarmonySingers"
    before = dp_available(budget)
    from budgets import payments

    fake_payments.fail_next(payments.GatewayError("The provider's Stripe account cannot take payments yet"))
    refused = client.post(url, {**body, "invoice_number": "HS-2", "key": "k2", "step": "confirm"})
    failed = DirectPaymentInvoice.objects.get(invoice_number="HS-2")
    assert failed.status == DirectPaymentInvoiceStatus.FAILED and dp_available(budget) == before
    assert "cannot take payments yet" in client.get(refused["Location"]).content.decode()
    assert ledger_verify().ok


@time_machine.travel(TODAY, tick=False)
def test_bad_invoice_details_get_clear_errors(client, mine):
    client.force_login(mine["patient"])
    url = f"/my/budgets/{mine['budget'].pk}/invoices/pay/"
    page = client.post(url, {"provider": "999999", "invoice_number": "", "amount": "-3", "line": "", "step": "details"})
    text = page.content.decode()
    for message in ("Select who sent the invoice", "Enter the invoice number", "The amount must be more than £0"):
        assert message in text
    too_much = client.post(
        url,
        {
            "provider": mine["dp_line"].plan_line.provider.pk,
            "invoice_number": "BIG",
            "amount": "40000.00",
            "line": mine["dp_line"].pk,
            "key": "big",
            "step": "confirm",
        },
    ).content.decode()
    assert "does not hold enough" in too_much or "no bank details" in too_much
    assert not DirectPaymentInvoice.objects.exists()


@time_machine.travel(TODAY, tick=False)
def test_an_invoice_the_account_cannot_cover_is_refused_before_the_check_step(client, mine):
    budget, provider = mine["budget"], mine["dp_line"].plan_line.provider
    Provider.objects.filter(pk=provider.pk).update(stripe_account_id="acct_1HarmonySingers")
    client.force_login(mine["patient"])
    url = f"/my/budgets/{budget.pk}/invoices/pay/"
    body = {"provider": provider.pk, "invoice_number": "BIG", "line": mine["dp_line"].pk, "key": "d", "step": "details"}
    free = format_pence(dp_available(budget))
    page = client.post(url, {**body, "amount": "40000.00"}).content.decode()
    assert f"The direct-payment account does not hold enough for this: {free} is free to spend" in page
    assert "nhsuk-error-summary" in page and "Check before you pay" not in page
    fits = client.post(url, {**body, "amount": "5.00"}).content.decode()
    assert "nhsuk-error-summary" not in fits and "Check before you pay" in fits
    assert not DirectPaymentInvoice.objects.exists()  # checking pays nothing


def test_a_representative_sees_exactly_the_budgets_they_act_for(client, mine):
    rep_user = user_with_role(Role.REPRESENTATIVE)
    Representative.objects.create(
        person=mine["plan"].person,
        kind="representative",
        name="Michael Robson",
        relationship="son",
        basis="adult_lacking_capacity",
        user=rep_user,
    )
    other = agreed_crew()
    other_budget = budget_in_use(other)
    client.force_login(rep_user)
    assert client.get(f"/my/budgets/{mine['budget'].pk}/").status_code == 200
    for url in (
        f"/my/budgets/{other_budget.pk}/",
        f"/my/budgets/{other_budget.pk}/transactions/",
        f"/my/budgets/{other_budget.pk}/purchases/new/",
        f"/my/budgets/{other_budget.pk}/invoices/pay/",
    ):
        assert client.get(url).status_code == 404
    for role in (Role.CARE_BROKER, Role.FINANCE_OFFICER, Role.THIRD_PARTY_STAFF, Role.AUDITOR):
        client.force_login(user_with_role(role))
        assert client.get(f"/my/budgets/{mine['budget'].pk}/").status_code == 404
        assert client.get("/my/").status_code == 404


def money(text: str) -> int:
    """'£1,939.50' or '-£10.00' in pence."""
    match = re.fullmatch(r"(-?)£([\d,]+)\.(\d\d)", text.strip())
    assert match, text
    return (-1 if match[1] else 1) * (int(match[2].replace(",", "")) * 100 + int(match[3]))


def line_table(page: str) -> tuple[list[tuple[str, int, int, int]], tuple[int, int, int]]:
    """The budget page's line-by-line table: each body row (what, planned, spent, left) and the total row."""
    table = re.search(r'aria-label="Budget by plan line">(.*?)</table>', page, re.S).group(1)
    body, foot = re.search(r"<tbody[^>]*>(.*?)</tbody>\s*<tfoot[^>]*>(.*?)</tfoot>", table, re.S).groups()

    def cells(row: str) -> list[int]:
        return [money(html.unescape(cell)) for cell in re.findall(r'--numeric">(?:<strong>)?([^<]*)<', row)]

    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        what = html.unescape(re.search(r'<th scope="row"[^>]*>([^<]*)<', row).group(1))
        rows.append((what, *cells(row)))
    return rows, tuple(cells(foot))


def summary_value(page: str, key: str) -> int:
    found = re.search(re.escape(key) + r"\s*</dt>\s*<dd[^>]*>\s*([^<]*?)\s*</dd>", page)
    assert found, key
    return money(html.unescape(found.group(1)))


@time_machine.travel(TODAY, tick=False)
def test_the_line_table_shows_uncoded_spending_and_its_columns_add_up_to_the_summary(client, mine):
    """Defect: after one purchase recorded as "Something else (it will be checked)", the summary counted it but the
    table did not, so the table's columns did not add up to "Spent so far" and "Left to spend this year". The page
    now shows the statement's own row for it."""
    from budgets import person_selectors, statements

    budget = mine["budget"]
    client.force_login(mine["patient"])
    before, _ = line_table(client.get(f"/my/budgets/{budget.pk}/").content.decode())
    assert person_selectors.UNCODED_ROW not in [row[0] for row in before]  # nothing uncoded yet, no row for it
    for key, line, amount in (("coded", mine["dp_line"], 6_00), ("uncoded", None, 10_00)):
        spending.dp_spend_record(
            budget=budget,
            line=line,
            payee="Corner shop",
            spent_on=TODAY.date(),
            amount_pence=amount,
            key=key,
            acting_user=mine["patient"],
        )
    page = client.get(f"/my/budgets/{budget.pk}/").content.decode()
    rows, total = line_table(page)
    assert rows[-1] == (person_selectors.UNCODED_ROW, 0, 10_00, -10_00)
    sums = tuple(sum(row[column] for row in rows) for column in (1, 2, 3))
    summary = (
        summary_value(page, "Planned for your support"),
        summary_value(page, "Spent so far"),
        summary_value(page, "Left to spend this year"),
    )
    assert sums == total == summary
    assert (
        summary[1]
        == sum(Account.objects.get(pk=line.spend_account_id).posted_balance for line in budget.lines.all())
        + Account.objects.get(code=f"{budget.owner_ref}:spend:uncoded").posted_balance
    )
    # The same row, word for word and to the penny, as the statement's.
    data = statements.statement_data(budget, START, TODAY.date())
    assert (data.lines[-1].description, data.lines[-1].spent_to_date) == (person_selectors.UNCODED_ROW, 10_00)
    assert data.spent_to_date_total == summary[1]
