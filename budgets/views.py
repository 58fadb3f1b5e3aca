"""Budget pages: setting a budget up (with a check-your-answers step) and the budget's figures by plan line."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from brokerage import selectors as plan_selectors
from brokerage.models import CarePlan, PlanStatus
from budgets import selectors, services
from budgets.models import Budget


class SetUpForm(forms.Form):
    start_date = forms.DateField(
        label="Start date",
        help_text="The first payment is due on this date",
        error_messages={"required": "Enter the start date", "invalid": "Enter a real date, like 2026-12-01"},
    )

    def clean_start_date(self):
        start = self.cleaned_data["start_date"]
        if start < timezone.localdate() - datetime.timedelta(days=31):
            raise forms.ValidationError("The start date cannot be more than a month ago")
        return start


@login_required
def budget_set_up(request: HttpRequest, plan_pk: int) -> HttpResponse:
    try:
        plan = plan_selectors.plan_get(user=request.user, pk=plan_pk)
    except CarePlan.DoesNotExist as exc:
        raise Http404 from exc
    if plan.status != PlanStatus.AGREED or not request.user.has_perm("brokerage.run_budget", plan):
        raise Http404
    form = SetUpForm(request.POST or None, initial={"start_date": timezone.localdate()})
    confirmed = request.POST.get("confirm") == "yes"
    if request.method == "POST" and form.is_valid() and confirmed:
        try:
            budget = services.budget_set_up(
                plan=plan, acting_user=request.user, start_date=form.cleaned_data["start_date"]
            )
        except services.BudgetError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("budgets:budget", pk=budget.pk)
    checking = request.method == "POST" and form.is_valid() and not confirmed
    return render(request, "budgets/set_up.jinja", {"plan": plan, "form": form, "checking": checking})


@login_required
def budget_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    return render(
        request,
        "budgets/budget.jinja",
        {
            "budget": budget,
            "lines": selectors.line_figures(budget),
            "accounts": selectors.budget_accounts(budget),
            "payments": selectors.upcoming_payments(budget),
        },
    )
