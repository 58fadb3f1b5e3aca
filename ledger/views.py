"""Finance pages: chart of accounts, account statement with running balance, trial balance (and CSV)."""

from __future__ import annotations

import datetime

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from config.exports import csv_response
from ledger import selectors
from ledger.models import Account

DATE_INVALID = "Enter a real date, like 2026-10-31"


def require_finance(request: HttpRequest) -> None:
    # Pages answer 404, not 403, so people cannot learn what exists.
    if not request.user.is_authenticated or not request.user.has_perm("ledger.view_account"):
        raise Http404


class StatementForm(forms.Form):
    start = forms.DateField(label="From", required=False, error_messages={"invalid": DATE_INVALID})
    end = forms.DateField(label="To", required=False, error_messages={"invalid": DATE_INVALID})

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", "The end date must be the same as or after the start date")
        return data


class AsAtForm(forms.Form):
    as_at = forms.DateField(label="As at", required=False, error_messages={"invalid": DATE_INVALID})


def account_list(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    search = request.GET.get("q", "").strip()[:100]
    page = Paginator(selectors.accounts_list(search=search or None), 50).get_page(request.GET.get("page"))
    return render(request, "ledger/accounts.jinja", {"page": page, "search": search})


def account_statement(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    account = get_object_or_404(Account, pk=pk)
    form = StatementForm(request.GET or None)
    today = timezone.localdate()
    start, end = today.replace(day=1), today
    if form.is_bound and form.is_valid():
        start = form.cleaned_data["start"] or start
        end = form.cleaned_data["end"] or end
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


def trial_balance_csv(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    _form, balance = _trial_balance_from(request)
    as_at = balance.as_at or timezone.localdate()
    rows = [(row.account.code, row.account.name, row.account.kind, row.debit, row.credit) for row in balance.rows]
    rows.append(("TOTAL", "", "", balance.total_debit, balance.total_credit))
    return csv_response(
        f"trial-balance-{as_at.isoformat()}.csv",
        ["Account code", "Account name", "Kind", "Debit (pence)", "Credit (pence)"],
        rows,
    )
