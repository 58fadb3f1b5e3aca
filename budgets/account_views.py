"""Where money goes: the direct payment's dedicated account and recipient (rules 7 and 8), and the bank details
or connected Stripe account of each third-party holder. Entered by finance (or the plan's broker or coordinator
for the dedicated account); every change is kept in the model's history."""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.models import Organisation, OrganisationKind
from budgets import selectors, services
from budgets.models import Budget, DedicatedAccountKind, DirectPaymentAccount, HolderBankAccount
from budgets.views import require_finance
from providers.models import ACCOUNT_NUMBER_INVALID, SORT_CODE_INVALID

BACS_NAME = re.compile(r"[A-Z0-9 .&/\-]+")


class BankDetailsForm(forms.Form):
    account_name = forms.CharField(
        label="Name on the account",
        max_length=18,
        help_text="As the bank holds it, up to 18 characters",
        error_messages={
            "required": "Enter the name on the account",
            "max_length": "The name on the account must be 18 characters or fewer",
        },
    )
    sort_code = forms.RegexField(
        label="Sort code",
        regex=r"^\s*\d{2}[-\s]?\d{2}[-\s]?\d{2}\s*$",
        help_text="Must be 6 digits long",
        error_messages={"required": "Enter the sort code", "invalid": SORT_CODE_INVALID},
    )
    account_number = forms.RegexField(
        label="Account number",
        regex=r"^\s*\d{8}\s*$",
        help_text="Must be 8 digits long",
        error_messages={"required": "Enter the account number", "invalid": ACCOUNT_NUMBER_INVALID},
    )

    def clean_sort_code(self) -> str:
        return "".join(ch for ch in self.cleaned_data["sort_code"] if ch.isdigit())

    def clean_account_number(self) -> str:
        return self.cleaned_data["account_number"].strip()

    def clean_account_name(self) -> str:
        name = self.cleaned_data["account_name"].strip().upper()
        if not BACS_NAME.fullmatch(name):  # what a BACS payment file can carry: the bank would see something else
            raise forms.ValidationError(
                "The name on the account can only have letters, numbers, spaces and . & / -", code="invalid"
            )
        return name


class DedicatedAccountForm(BankDetailsForm):
    recipient = forms.TypedChoiceField(
        label="Who receives the direct payment",
        coerce=int,
        error_messages={
            "required": "Select who receives the direct payment",
            "invalid_choice": "Select who receives it",
        },
    )
    kind = forms.ChoiceField(
        label="Kind of account",
        choices=DedicatedAccountKind.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Select the kind of account"},
    )
    signatories = forms.CharField(
        label="Who can use the account",
        help_text="Their full names, one on each line",
        max_length=1000,
        widget=forms.Textarea,
        error_messages={"required": "Enter who can use the account"},
    )
    field_order = ["recipient", "kind", "account_name", "sort_code", "account_number", "signatories"]

    def __init__(self, *args, budget: Budget, **kwargs):
        super().__init__(*args, **kwargs)
        person = budget.plan.person
        self.representatives = {rep.pk: rep for rep in person.representatives.filter(active=True)}
        self.fields["recipient"].choices = [(0, f"{person.full_name} (the person)")] + [
            (rep.pk, f"{rep.name} ({rep.get_kind_display().lower()}, {rep.relationship})")
            for rep in self.representatives.values()
        ]

    def clean_recipient(self):
        return self.representatives.get(self.cleaned_data["recipient"])


class HolderBankForm(BankDetailsForm):
    stripe_account_id = forms.RegexField(
        label="Stripe connected account (optional)",
        regex=r"^acct_[A-Za-z0-9]{6,34}$",
        required=False,
        help_text="For example acct_1NaXbQ2eZvKYlo2C. When given, transfers go there instead of by BACS",
        error_messages={"invalid": "Enter a Stripe account ID that starts with acct_, like acct_1NaXbQ2eZvKYlo2C"},
    )


@login_required
def dedicated_account(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    if not request.user.has_perm("brokerage.run_budget", budget.plan):
        raise Http404
    current = DirectPaymentAccount.objects.filter(budget=budget).first()
    initial = {}
    if current is not None:
        initial = {
            "recipient": current.recipient_id or 0,
            "kind": current.kind,
            "account_name": current.account_name,
            "sort_code": current.sort_code,
            "account_number": current.account_number,
            "signatories": current.signatories,
        }
    form = DedicatedAccountForm(request.POST or None, budget=budget, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.dedicated_account_save(budget=budget, acting_user=request.user, **form.cleaned_data)
            messages.success(request, f"The direct-payment account for {budget.plan.person.full_name} is saved")
            return redirect("budgets:budget", pk=budget.pk)
        except services.BudgetError as exc:
            form.add_error(None, str(exc))
    return render(request, "budgets/dedicated_account.jinja", {"budget": budget, "form": form, "current": current})


@login_required
def holders(request: HttpRequest) -> HttpResponse:
    require_finance(request)
    organisations = Organisation.objects.filter(kind=OrganisationKind.THIRD_PARTY_HOLDER).order_by("name")
    accounts = {account.organisation_id: account for account in HolderBankAccount.objects.all()}
    rows = [(organisation, accounts.get(organisation.pk)) for organisation in organisations]
    return render(request, "budgets/holders.jinja", {"rows": rows})


@login_required
def holder_bank(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    organisation = get_object_or_404(Organisation, pk=pk, kind=OrganisationKind.THIRD_PARTY_HOLDER)
    current = HolderBankAccount.objects.filter(organisation=organisation).first()
    initial = {}
    if current is not None:
        initial = {
            field: getattr(current, field)
            for field in ("account_name", "sort_code", "account_number", "stripe_account_id")
        }
    form = HolderBankForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.holder_bank_account_save(organisation=organisation, acting_user=request.user, **form.cleaned_data)
        messages.success(request, f"{organisation.name}'s bank details are saved")
        return redirect("budgets:holders")
    return render(request, "budgets/holder_bank.jinja", {"organisation": organisation, "form": form})
