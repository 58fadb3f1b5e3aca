"""Finance pages: chart of accounts, account statement with running balance, trial balance, and their exports
(CSV and Excel) plus an export of every transfer over a date range."""

from __future__ import annotations

import datetime
import itertools

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from config.exports import pounds, table_response
from config.forms import DateField
from ledger import selectors
from ledger.models import Account, Phase

DATE_INVALID = "Enter a real date, like 31 10 2026"


def require_finance(request: HttpRequest) -> None:
    # Pages answer 404, not 403, so people cannot learn what exists.
    if not request.user.is_authenticated or not request.user.has_perm("ledger.view_account"):
        raise Http404


class StatementForm(forms.Form):
    """Dates in NHS.UK's three boxes (`start[day]`, `start[month]`, `start[year]`...); a link or bookmark with one
    ISO date a field (`?start=2026-10-01&end=2026-10-31`, as the download links and older pages use) still works."""

    start = DateField(
        label="From", required=False, help_text="For example, 1 10 2026", error_messages={"invalid": DATE_INVALID}
    )
    end = DateField(
        label="To", required=False, help_text="For example, 31 10 2026", error_messages={"invalid": DATE_INVALID}
    )

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", "The end date must be the same as or after the start date")
        return data


def _date_range(form: StatementForm) -> tuple[datetime.date, datetime.date]:
    """The dates asked for, or this month so far; an invalid form also gets the defaults (and shows its errors)."""
    today = timezone.localdate()
    start, end = today.replace(day=1), today
    if form.is_bound and form.is_valid():
        start = form.cleaned_data["start"] or start
        end = form.cleaned_data["end"] or end
    return start, end


class AsAtForm(forms.Form):
    as_at = DateField(
        label="As at",
        required=False,
        help_text="Leave empty for now. For example, 31 10 2026",
        error_messages={"invalid": DATE_INVALID},
    )


def account_list(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    search = request.GET.get("q", "").strip()[:100]
    page = Paginator(selectors.accounts_list(search=search or None), 50).get_page(request.GET.get("page"))
    return render(request, "ledger/accounts.jinja", {"page": page, "search": search})


def account_statement(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    account = get_object_or_404(Account, pk=pk)
    form = StatementForm(request.GET or None)
    start, end = _date_range(form)
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    statement = selectors.account_statement(account=account, start=start, end=end, page=min(page, 100_000))
    return render(request, "ledger/statement.jinja", {"account": account, "statement": statement, "form": form})


def _trial_balance_from(request: HttpRequest) -> tuple[AsAtForm, selectors.TrialBalance]:
    form = AsAtForm(request.GET or None)
    as_at: datetime.date | None = None
    if form.is_bound and form.is_valid():
        as_at = form.cleaned_data["as_at"]
    return form, selectors.trial_balance(as_at=as_at)


def trial_balance(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    form, balance = _trial_balance_from(request)
    return render(request, "ledger/trial_balance.jinja", {"form": form, "balance": balance})


# --- Exports: each table is defined once and answered as CSV or Excel by config.exports.table_response --------
# A bad date answers the page the link came from, with its error summary, rather than a file of the wrong dates.


def trial_balance_export(request: HttpRequest, fmt: str) -> HttpResponse:
    require_finance(request)
    form, balance = _trial_balance_from(request)
    if form.errors:
        return render(request, "ledger/trial_balance.jinja", {"form": form, "balance": balance}, status=400)
    as_at = balance.as_at or timezone.localdate()
    rows = [
        (row.account.code, row.account.name, row.account.get_kind_display(), pounds(row.debit), pounds(row.credit))
        for row in balance.rows
    ]
    rows.append(("TOTAL", "", "", pounds(balance.total_debit), pounds(balance.total_credit)))
    return table_response(
        fmt,
        f"trial-balance-{as_at.isoformat()}",
        ["Account code", "Account name", "Kind", "Debit (£)", "Credit (£)"],
        rows,
        sheet_title="Trial balance",
    )


def trial_balance_csv(request: HttpRequest) -> HttpResponse:
    return trial_balance_export(request, "csv")


def statement_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    require_finance(request)
    account = get_object_or_404(Account, pk=pk)
    form = StatementForm(request.GET or None)
    start, end = _date_range(form)
    if form.errors:
        response = account_statement(request, pk)
        response.status_code = 400
        return response
    opening, lines = selectors.account_statement_lines(account=account, start=start, end=end)
    rows = itertools.chain(
        [(start, "", "", "", "Opening balance", "", "", pounds(opening))],
        (
            (
                line.effective_date,
                line.transfer_id,
                line.code,
                line.reference,
                line.description,
                pounds(line.debit),
                pounds(line.credit),
                pounds(line.balance),
            )
            for line in lines
        ),
    )
    return table_response(
        fmt,
        f"statement-{account.code}-{start.isoformat()}-to-{end.isoformat()}",
        ["Date", "Transfer ID", "Code", "Reference", "Description", "Debit (£)", "Credit (£)", "Balance (£)"],
        rows,
        sheet_title=f"Statement {account.code}",
    )


def exports(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    start, end = _date_range(StatementForm())
    form = StatementForm(initial={"start": start, "end": end})
    return render(request, "ledger/exports.jinja", {"form": form})


def transfers_export(request: HttpRequest, fmt: str) -> HttpResponse:
    require_finance(request)
    form = StatementForm(request.GET or None)
    start, end = _date_range(form)
    if form.errors:
        return render(request, "ledger/exports.jinja", {"form": form}, status=400)
    phases = dict(Phase.choices)
    rows = (
        (pk, day, code, debit, credit, pounds(amount), reference, description, phases.get(phase, phase))
        for pk, day, code, debit, credit, amount, reference, description, phase in selectors.transfers_between(
            start=start, end=end
        ).iterator(chunk_size=2_000)
    )
    return table_response(
        fmt,
        f"transfers-{start.isoformat()}-to-{end.isoformat()}",
        [
            "Transfer ID",
            "Effective date",
            "Code",
            "Debit account",
            "Credit account",
            "Amount (£)",
            "Reference",
            "Description",
            "Phase",
        ],
        rows,
        sheet_title="Transfers",
    )
