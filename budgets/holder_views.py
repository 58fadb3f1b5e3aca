"""Pages for a third-party holder's staff: the budgets their organisation holds, recording what they spent
(coded to a plan line, or flagged as uncoded) and submitting their periodic returns (rule 20)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from budgets import selectors, spending
from budgets.models import Budget, HolderReturn, HolderSpend
from budgets.services import BudgetError
from config.formatting import format_date, format_pence
from config.forms import DateField, PoundsField

AMOUNT_ERRORS = {
    "required": "Enter the amount",
    "invalid": "Enter an amount in pounds and pence, like 45.50",
    "min_value": "The amount must be more than £0",
    "max_decimal_places": "Enter an amount in pounds and pence, like 45.50",
    "max_digits": "The amount must be £50,000.00 or less",
    "max_value": "The amount must be £50,000.00 or less",
}
MAX_AMOUNT = Decimal("50000.00")


def spend_amount() -> PoundsField:
    """What was paid, by the person or a holder: up to £50,000 at a time."""
    return PoundsField(
        label="Amount in pounds",
        min_value=0,
        max_value=MAX_AMOUNT,
        max_digits=7,
        decimal_places=2,
        error_messages=AMOUNT_ERRORS,
    )


def clean_spent_on(budget: Budget, spent_on):
    """The date paid, on a form that records spending: within the budget's life and not in the future."""
    problem = spending.spend_date_problem(budget, spent_on)
    if problem is not None:
        raise forms.ValidationError(problem)
    return spent_on


def spend_error_field(exc: BudgetError) -> str | None:
    """Which field a refusal from the spending services belongs beside (None: the top of the form)."""
    if getattr(exc, "field", None):
        return exc.field
    message = str(exc)
    if "approved" in message:
        return "connected_person"
    return "amount" if "amount" in message or "enough" in message else None


def one_time_key() -> str:
    """Rendered into each money form once: posting the same form twice records it once."""
    return uuid.uuid4().hex


class HolderSpendForm(forms.Form):
    payee = forms.CharField(label="Who was paid", max_length=200, error_messages={"required": "Enter who was paid"})
    spent_on = DateField(
        label="Date paid",
        help_text="For example, 15 12 2026",
        error_messages={"required": "Enter the date paid", "invalid": "Enter a real date, like 15 12 2026"},
    )
    amount = spend_amount()
    line = forms.ModelChoiceField(
        label="What it paid for",
        queryset=None,
        required=False,
        empty_label="Not sure: record it for review",
        help_text="Spending not coded to a line of the plan is flagged for the care coordinator to review",
    )
    key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, budget: Budget, holder, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.fields["line"].queryset = budget.lines.filter(plan_line__third_party_holder=holder).select_related(
            "plan_line"
        )
        self.fields["line"].label_from_instance = lambda line: line.plan_line.description

    def clean_spent_on(self):
        return clean_spent_on(self.budget, self.cleaned_data["spent_on"])


class HolderReturnForm(forms.Form):
    period_start = DateField(
        label="Start of the period",
        help_text="For example, 1 10 2026",
        error_messages={"required": "Enter the start of the period", "invalid": "Enter a real date, like 1 10 2026"},
    )
    period_end = DateField(
        label="End of the period",
        help_text="For example, 31 12 2026",
        error_messages={"required": "Enter the end of the period", "invalid": "Enter a real date, like 31 12 2026"},
    )
    note = forms.CharField(
        label="Anything the ICB should know",
        required=False,
        max_length=2000,
        widget=forms.Textarea,
        error_messages={"max_length": "Keep the note to 2,000 characters or fewer"},
    )


def _held_budget(request: HttpRequest, pk: int) -> Budget:
    try:
        return selectors.held_budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc


@login_required
def held_budgets(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("budgets.hold_budgets"):
        raise Http404
    budgets = selectors.budgets_held_by(request.user.organisation)
    return render(request, "budgets/held_budgets.jinja", {"budgets": budgets, "holder": request.user.organisation})


@login_required
def held_budget(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _held_budget(request, pk)
    holder = request.user.organisation
    spend_form = HolderSpendForm(budget=budget, holder=holder, initial={"key": one_time_key()}, prefix="spend")
    return_form = HolderReturnForm(prefix="return")
    if request.method == "POST" and request.POST.get("action") == "spend":
        spend_form = HolderSpendForm(request.POST, budget=budget, holder=holder, prefix="spend")
        if spend_form.is_valid():
            data = spend_form.cleaned_data
            try:
                spend = spending.holder_spend_record(
                    budget=budget,
                    holder=holder,
                    line=data["line"],
                    payee=data["payee"],
                    spent_on=data["spent_on"],
                    amount_pence=int(data["amount"] * 100),
                    key=f"holder:{holder.pk}:{data['key']}",
                    acting_user=request.user,
                )
                recorded = f"Recorded: {format_pence(spend.amount_pence)} paid to {spend.payee}"
                if spend.budget_line_id is None:  # said now, so the holder is not surprised when they are asked
                    recorded += ". It is not coded to a line of the plan, so the care coordinator will check it"
                messages.success(request, recorded + ".")
                return redirect("budgets:held-budget", pk=budget.pk)
            except BudgetError as exc:
                spend_form.add_error(spend_error_field(exc), str(exc))
    elif request.method == "POST" and request.POST.get("action") == "return":
        return_form = HolderReturnForm(request.POST, prefix="return")
        if return_form.is_valid():
            data = return_form.cleaned_data
            try:
                submitted = spending.holder_return_submit(
                    budget=budget,
                    holder=holder,
                    period_start=data["period_start"],
                    period_end=data["period_end"],
                    note=data["note"],
                    acting_user=request.user,
                )
                messages.success(
                    request,
                    f"Your return for {format_date(submitted.period_start)} to {format_date(submitted.period_end)} "
                    f"is submitted: {format_pence(submitted.spent_pence)} spent in the period.",
                )
                return redirect("budgets:held-budget", pk=budget.pk)
            except BudgetError as exc:
                return_form.add_error(None, str(exc))
    return render(
        request,
        "budgets/held_budget.jinja",
        {
            "budget": budget,
            "holder": holder,
            "lines": selectors.held_line_figures(budget, holder),
            "balance": selectors.held_balance(budget, holder),
            "spends": HolderSpend.objects.filter(budget=budget, holder=holder).select_related("budget_line__plan_line")[
                :50
            ],
            "returns": HolderReturn.objects.filter(budget=budget, holder=holder).select_related("submitted_by"),
            "spend_form": spend_form,
            "return_form": return_form,
        },
    )
