"""Finance pages to set up reconciliation: the banks' CSV layouts, and which ledger accounts are cash accounts.

Finance staff (`ledger.add_transfer`) add and change; auditors (`ledger.view_account`) see the lists; everyone else
gets a 404. The writes are in ledger/reconciliation_setup.py.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from config.formatting import format_pence
from config.forms import DateField
from ledger import reconciliation_setup as setup
from ledger.models import CashAccount, CsvMapping, StatementSource
from ledger.reconciliation_views import MAX_UPLOAD, require
from ledger.statements_import import pence
from ledger.views import DATE_INVALID, require_finance

CHANGE = "ledger.add_transfer"
# Past this many offered accounts a drop-down is unusable: type the code instead. Only organisations' accounts are
# offered (setup.offered_accounts), so it takes an unusual ledger to get there.
ACCOUNT_SELECT_LIMIT = 200


def _column(label: str, help_text: str = "", *, required: bool = False, missing: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        help_text=help_text,
        max_length=100,
        required=required,
        error_messages={"required": missing, "max_length": "Enter a column heading of 100 characters or fewer"},
    )


class CsvLayoutForm(forms.Form):
    name = forms.CharField(
        label="Name",
        help_text="The bank, or the bank and the kind of export, for example Lloyds",
        max_length=100,
        error_messages={"required": "Enter a name for the layout", "max_length": "Enter 100 characters or fewer"},
    )
    date_column = _column(
        "Date column",
        "The heading of the column, exactly as in the file",
        required=True,
        missing="Enter the date column",
    )
    date_format = forms.CharField(
        label="Date format",
        help_text="How the dates are written, in strftime codes: %d/%m/%Y for 31/10/2026, %Y-%m-%d for 2026-10-31, "
        "%d %b %Y for 31 Oct 2026",
        initial="%d/%m/%Y",
        max_length=40,
        error_messages={"required": "Enter the date format", "max_length": "Enter 40 characters or fewer"},
    )
    description_column = _column(
        "Details column",
        "Describes each payment, for example the payee",
        required=True,
        missing="Enter the details column",
    )
    amount_column = _column(
        "Amount column (signed)",
        "One column, money in positive and money out negative. Leave it empty if the bank has separate money out and "
        "money in columns.",
    )
    debit_column = _column("Money out column", "Only with a money in column, instead of a signed amount")
    credit_column = _column("Money in column", "Only with a money out column, instead of a signed amount")
    reference_column = _column("Reference column (optional)")
    balance_column = _column("Balance column (optional)", "The running balance the bank prints on each line")
    id_column = _column(
        "Transaction id column (optional)",
        "The bank's own id for each line, if it gives one: importing the same line twice then adds it once",
    )
    sample = forms.FileField(
        label="Sample statement (CSV)",
        required=False,
        help_text="Exported from the bank. It is only read, to show how this layout reads it: nothing is imported.",
    )

    def clean_sample(self):
        sample = self.cleaned_data["sample"]
        if sample and sample.size > MAX_UPLOAD:
            raise forms.ValidationError("The file must be smaller than 20MB")
        return sample

    def clean(self):
        data = super().clean()
        fields = {field: data.get(field) or "" for field in setup.MAPPING_FIELDS}
        for field, message in setup.csv_mapping_problems(fields).items():
            if field not in self.errors:
                self.add_error(field, message)
        return data


class CashAccountForm(forms.Form):
    account = forms.ModelChoiceField(
        label="Ledger account",
        queryset=setup.offered_accounts(),
        to_field_name="code",
        empty_label="Choose an account",
        help_text="The organisation's bank, Stripe or clearing account in the ledger that this bank or Stripe account "
        "mirrors. Only open asset accounts not already reconciled are listed; a budget's own accounts are not.",
        error_messages={"required": "Choose the ledger account", "invalid_choice": setup.ACCOUNT_NOT_SUITABLE},
    )
    name = forms.CharField(
        label="Name of the bank account",
        help_text="As the bank names it, for example ICB current account 12345678",
        max_length=200,
        error_messages={
            "required": "Enter the name of the bank account",
            "max_length": "Enter 200 characters or fewer",
        },
    )
    source = forms.ChoiceField(
        label="Statements come as",
        choices=StatementSource.choices,
        initial=StatementSource.CSV,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how the statements come",
            "invalid_choice": "Choose how the statements come",
        },
    )
    csv_mapping = forms.ModelChoiceField(
        label="CSV layout",
        queryset=CsvMapping.objects.all(),
        required=False,
        empty_label="None",
        help_text="Needed when statements come as CSV files",
        error_messages={"invalid_choice": "Choose a CSV layout from the list"},
    )
    reconcile_from = DateField(
        label="Reconcile from",
        help_text="Ledger transfers dated before it are left out of reconciliation. For example, 1 10 2026",
        error_messages={"required": "Enter the date to reconcile from", "invalid": DATE_INVALID},
    )
    opening_balance = forms.CharField(
        label="Opening balance, in pounds",
        help_text="The statement's balance at the start of that date, for example 1,234.56, or -25.00 if overdrawn",
        initial="0.00",
        max_length=30,
        error_messages={"required": "Enter the opening balance, or 0.00", "max_length": "Enter an amount in pounds"},
    )
    date_window_days = forms.IntegerField(
        label="Match dates up to this many days apart",
        help_text=f"A bank line and a ledger transfer are matched only if their dates are this close (0 to "
        f"{setup.MAX_DATE_WINDOW})",
        initial=3,
        error_messages={
            "required": setup.WINDOW_RANGE,
            "invalid": setup.WINDOW_RANGE,
            "min_value": setup.WINDOW_RANGE,
            "max_value": setup.WINDOW_RANGE,
        },
        min_value=0,
        max_value=setup.MAX_DATE_WINDOW,
    )

    def __init__(self, *args, adding: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].label_from_instance = setup.offered_label
        if not adding:
            del self.fields["account"]  # a cash account keeps its ledger account
        elif self.fields["account"].queryset.count() > ACCOUNT_SELECT_LIMIT:
            self.fields["account"].widget = forms.TextInput()
            self.fields["account"].help_text = "The account's code, as on the chart of accounts, for example icb:bank"

    def clean_opening_balance(self) -> int:
        try:
            return pence(self.cleaned_data["opening_balance"])
        except ValueError:
            raise forms.ValidationError(
                "Enter the opening balance in pounds and pence, like 1,234.56 or -25.00"
            ) from None

    def clean(self):
        data = super().clean()
        problems = setup.cash_account_problems(
            source=data.get("source", ""),
            csv_mapping=data.get("csv_mapping"),
            reconcile_from=data.get("reconcile_from"),
            opening_balance=data.get("opening_balance"),
            date_window_days=data.get("date_window_days"),
        )
        for field, message in problems.items():
            if field not in self.errors and (field != "csv_mapping" or "source" not in self.errors):
                self.add_error(field, message)
        return data


# --- CSV layouts ----------------------------------------------------------------------------------------------------


def csv_layouts(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    return render(
        request,
        "ledger/reconcile/layouts.jinja",
        {
            "layouts": CsvMapping.objects.all(),
            "example_day": setup.FORMAT_CHECK_DAYS[0],
            "can_change": request.user.has_perm(CHANGE),
        },
    )


def csv_layout_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    require(request, CHANGE)
    mapping = get_object_or_404(CsvMapping, pk=pk) if pk is not None else None
    initial = {field: getattr(mapping, field) for field in setup.MAPPING_FIELDS} if mapping else None
    form = CsvLayoutForm(request.POST or None, request.FILES or None, initial=initial)
    trial = None
    if request.method == "POST" and form.is_valid():
        fields = {field: form.cleaned_data[field] for field in setup.MAPPING_FIELDS}
        if request.POST.get("action") == "try":
            if form.cleaned_data["sample"]:
                trial = setup.csv_layout_try(form.cleaned_data["sample"].read(), fields)
            else:
                form.add_error("sample", "Choose a sample statement to try the layout on")
        else:
            try:
                saved = setup.csv_mapping_save(acting_user=request.user, mapping=mapping, **fields)
            except setup.SetupRefused as exc:
                form.add_error(exc.field, str(exc))
            else:
                messages.success(request, f"The {saved.name} layout was saved.")
                return redirect("ledger:reconcile-layouts")
    return render(
        request,
        "ledger/reconcile/layout_form.jinja",
        {"form": form, "mapping": mapping, "trial": trial, "back_link_href": reverse("ledger:reconcile-layouts")},
    )


# --- Cash accounts --------------------------------------------------------------------------------------------------


def cash_account_add(request: HttpRequest) -> HttpResponse:
    return _cash_account_edit(request, None)


def cash_account_change(request: HttpRequest, pk: int) -> HttpResponse:
    return _cash_account_edit(request, pk)


def _cash_account_edit(request: HttpRequest, pk: int | None) -> HttpResponse:
    require(request, CHANGE)
    cash = get_object_or_404(CashAccount.objects.select_related("account"), pk=pk) if pk is not None else None
    initial = None
    if cash is not None:
        initial = {
            "name": cash.name,
            "source": cash.source,
            "csv_mapping": cash.csv_mapping_id,
            "reconcile_from": cash.reconcile_from,
            "opening_balance": format_pence(cash.opening_balance).replace("£", ""),
            "date_window_days": cash.date_window_days,
        }
    form = CashAccountForm(request.POST or None, initial=initial, adding=cash is None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = setup.cash_account_save(
                acting_user=request.user,
                cash_account=cash,
                account=data.get("account"),
                name=data["name"],
                source=data["source"],
                csv_mapping=data["csv_mapping"],
                reconcile_from=data["reconcile_from"],
                opening_balance=data["opening_balance"],
                date_window_days=data["date_window_days"],
            )
        except setup.SetupRefused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            text = f"{saved.name} is set up for reconciliation." if cash is None else f"{saved.name} was changed."
            messages.success(request, text)
            return redirect("ledger:reconcile-account", pk=saved.pk)
    back = reverse("ledger:reconcile-account", args=[cash.pk]) if cash else reverse("ledger:reconcile")
    return render(
        request,
        "ledger/reconcile/cash_account_form.jinja",
        {"form": form, "cash": cash, "back_link_href": back},
    )
