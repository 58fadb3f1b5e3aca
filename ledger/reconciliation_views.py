"""Finance pages for reconciliation: import a statement, auto-match, match by hand, the report, closing a month."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone

from config.forms import DateField
from ledger import matching, reconciliation, selectors
from ledger.exceptions import LedgerError
from ledger.models import CashAccount, ClosedPeriod, CsvMapping, Match, StatementLine
from ledger.statements_import import REFUSE, SKIP, ImportRefused, statement_import
from ledger.views import DATE_INVALID, require_finance

MAX_UPLOAD = 20 * 1024 * 1024


def require(request: HttpRequest, perm: str) -> None:
    require_finance(request)
    if not request.user.has_perm(perm):
        raise Http404


class ImportForm(forms.Form):
    statement = forms.FileField(
        label="Statement file",
        help_text="OFX, or CSV in the bank's layout, UTF-8",
        error_messages={"required": "Choose a statement file"},
    )
    mapping = forms.ModelChoiceField(
        label="CSV layout", queryset=CsvMapping.objects.all(), required=False, help_text="Not needed for OFX"
    )
    on_bad_lines = forms.ChoiceField(
        label="If some lines are wrong",
        choices=[
            (REFUSE, "Refuse the whole file and list the wrong lines"),
            (SKIP, "Import the rest, list the wrong lines"),
        ],
        initial=REFUSE,
        widget=forms.RadioSelect,
    )

    def clean_statement(self):
        upload = self.cleaned_data["statement"]
        if upload.size > MAX_UPLOAD:
            raise forms.ValidationError("The file must be smaller than 20MB")
        return upload


class AsAtForm(forms.Form):
    as_at = DateField(
        label="As at",
        required=False,
        help_text="Leave empty for today. For example, 31 10 2026",
        error_messages={"invalid": DATE_INVALID},
    )


class MatchForm(forms.Form):
    transfers = forms.TypedMultipleChoiceField(
        label="Ledger transfers",
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one ledger transfer"},
    )


class CreateTransferForm(forms.Form):
    other_account = forms.ModelChoiceField(
        label="Other account",
        # Not a budget's accounts: their money moves on the budget's pages, under its checks (services refuse it too).
        queryset=selectors.accounts_postable_by_hand().filter(cash__isnull=True),
        to_field_name="code",
        error_messages={"required": "Choose the other account", "invalid_choice": "Choose an account from the list"},
    )
    code = forms.RegexField(
        label="Kind of movement",
        help_text="A short code the ledger files it under, for example bank_charge, interest or correction",
        regex=r"^[a-z][a-z0-9_]{0,39}$",
        initial="bank_charge",
        error_messages={"required": "Enter the kind of movement", "invalid": "Use lower-case letters, digits and _"},
    )
    reason = forms.CharField(
        label="Why is this transfer missing from the ledger?",
        max_length=300,
        widget=forms.Textarea,
        error_messages={"required": "Enter why this transfer is being created"},
    )


class CloseForm(forms.Form):
    month = forms.DateField(
        label="Month",
        input_formats=["%Y-%m"],
        error_messages={"invalid": "Enter a month like 2026-10", "required": "Enter a month like 2026-10"},
    )


def cash_accounts(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    rows = [(cash, matching.unmatched_lines(cash).count()) for cash in CashAccount.objects.select_related("account")]
    return render(request, "ledger/reconcile/accounts.jinja", {"rows": rows})


def cash_account(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    cash = get_object_or_404(CashAccount.objects.select_related("account"), pk=pk)
    form = AsAtForm(request.GET or None)
    as_at = timezone.localdate()
    if form.is_bound and form.is_valid() and form.cleaned_data["as_at"]:
        as_at = form.cleaned_data["as_at"]
    return render(
        request,
        "ledger/reconcile/account.jinja",
        {
            "cash": cash,
            "form": form,
            "report": reconciliation.report(cash, as_at),
            "import_form": ImportForm(initial={"mapping": cash.csv_mapping_id}),
            "lines": matching.unmatched_lines(cash).order_by("date", "id")[:200],
            "imports": cash.imports.select_related("imported_by")[:10],  # the page names who imported each
            "can_change": request.user.has_perm("ledger.add_transfer"),
        },
    )


def statement_upload(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, "ledger.add_transfer")
    cash = get_object_or_404(CashAccount, pk=pk)
    form = ImportForm(request.POST or None, request.FILES or None)
    problems: list = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["statement"]
        try:
            record = statement_import(
                cash_account=cash,
                filename=upload.name,
                data=upload.read(),
                acting_user=request.user,
                on_bad_lines=form.cleaned_data["on_bad_lines"],
                mapping=form.cleaned_data["mapping"],
            )
        except ImportRefused as exc:
            problems = exc.problems[:200]
            form.add_error("statement", "The file was not imported: " + str(exc))
        else:
            added, already = record.lines_added, record.lines_already_imported
            were = pluralize(already, "was,were")
            text = f"Imported {added} new line{pluralize(added)}; {already} {were} already imported"
            if record.bad_lines:
                text += f"; {len(record.bad_lines)} wrong lines were left out"
            messages.success(request, text + ".")
            return redirect("ledger:reconcile-account", pk=cash.pk)
    return render(request, "ledger/reconcile/import.jinja", {"cash": cash, "form": form, "problems": problems})


def auto_match(request: HttpRequest, pk: int) -> HttpResponse:
    require(request, "ledger.add_transfer")
    cash = get_object_or_404(CashAccount, pk=pk)
    if request.method != "POST":
        return redirect("ledger:reconcile-account", pk=cash.pk)
    counts = matching.auto_match(cash)
    messages.success(
        request,
        f"Matched {sum(counts.values())} line{pluralize(sum(counts.values()))} automatically: "
        f"{counts['reference']} by reference, "
        f"{counts['group']} as payment runs, {counts['amount_date']} by amount and date.",
    )
    return redirect("ledger:reconcile-account", pk=cash.pk)


def statement_line(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    line = get_object_or_404(StatementLine.objects.select_related("cash_account__account"), pk=pk)
    match = Match.objects.filter(line=line, active=True).prefetch_related("links__transfer").first()
    ranked = [] if match else matching.suggestions(line)
    match_form = MatchForm(request.POST if request.POST.get("action") == "match" else None)
    match_form.fields["transfers"].choices = [(c.id, str(c.id)) for c, _score in ranked]
    create_form = CreateTransferForm(request.POST if request.POST.get("action") == "create" else None)
    error = ""
    if request.method == "POST":
        require(request, "ledger.add_transfer")
        action = request.POST.get("action")
        try:
            if action == "unmatch" and match:
                matching.unmatch(match=match, acting_user=request.user)
                messages.success(request, "The match was undone.")
                return redirect("ledger:reconcile-line", pk=line.pk)
            if action == "match" and match_form.is_valid():
                matching.match_by_hand(
                    line=line, transfer_ids=match_form.cleaned_data["transfers"], acting_user=request.user
                )
                messages.success(request, "The line was matched.")
                return redirect("ledger:reconcile-account", pk=line.cash_account_id)
            if action == "create" and create_form.is_valid():
                matching.transfer_from_line(
                    line=line,
                    other_account_id=create_form.cleaned_data["other_account"].pk,
                    code=create_form.cleaned_data["code"],
                    reason=create_form.cleaned_data["reason"],
                    acting_user=request.user,
                )
                messages.success(request, "The transfer was recorded and matched.")
                return redirect("ledger:reconcile-account", pk=line.cash_account_id)
        except LedgerError as exc:
            error = str(exc)
    return render(
        request,
        "ledger/reconcile/line.jinja",
        {
            "line": line,
            "match": match,
            "ranked": ranked,
            "match_form": match_form,
            "create_form": create_form,
            "error": error,
            "can_change": request.user.has_perm("ledger.add_transfer"),
        },
    )


def period_close(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    data = request.POST if request.method == "POST" else request.GET
    form = CloseForm(data or None)
    checklist, month, error = None, None, ""
    if form.is_bound and form.is_valid():
        month = form.cleaned_data["month"].replace(day=1)
        if request.method == "POST":
            require(request, "ledger.close_period")
            try:
                reconciliation.period_close_reconciled(month=month, acting_user=request.user)
            except LedgerError as exc:
                error = str(exc)
            else:
                messages.success(request, f"{month:%B %Y} is closed.")
                return redirect(f"{request.path}?month={month:%Y-%m}")
        checklist = reconciliation.close_checklist(month)
    closed = month is not None and ClosedPeriod.objects.filter(month=month).exists()
    next_month = (month + datetime.timedelta(days=32)).replace(day=1) if month else None
    return render(
        request,
        "ledger/reconcile/close.jinja",
        {
            "form": form,
            "month": month,
            "checklist": checklist,
            "closed": closed,
            "ended": next_month is not None and timezone.localdate() >= next_month,
            "next_month": next_month,
            "error": error,
            "can_close": request.user.has_perm("ledger.close_period"),
        },
    )
