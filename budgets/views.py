"""Budget pages: setting a budget up (with a check-your-answers step) and the budget's figures by plan line."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from brokerage import selectors as plan_selectors
from brokerage.models import CarePlan, PlanStatus
from budgets import invoices as invoice_services
from budgets import payment_runs as runs
from budgets import selectors, services
from budgets.models import Budget, DirectPaymentAccount, Invoice, PaymentRun, RunStatus
from config.formatting import format_date, format_pence
from config.forms import DateField, PoundsField


class SetUpForm(forms.Form):
    start_date = DateField(
        label="Start date",
        help_text="The first payment is due on this date",
        error_messages={"required": "Enter the start date", "invalid": "Enter a real date, like 1 12 2026"},
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
    form = SetUpForm(request.POST or None, initial={"start_date": services.earliest_start(plan)})
    confirmed = request.POST.get("confirm") == "yes"
    if request.method == "POST" and form.is_valid() and confirmed:
        try:
            budget = services.budget_set_up(
                plan=plan, acting_user=request.user, start_date=form.cleaned_data["start_date"]
            )
        except services.BudgetError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"The budget is set up from {format_date(budget.start_date)}.")
            return redirect("budgets:budget", pk=budget.pk)
    checking = request.method == "POST" and form.is_valid() and not confirmed
    return render(request, "budgets/set_up.jinja", {"plan": plan, "form": form, "checking": checking})


@login_required
def budget_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    accounts = selectors.budget_accounts(budget)
    return render(
        request,
        "budgets/budget.jinja",
        {
            "budget": budget,
            "table": selectors.line_table(budget, accounts),
            "accounts": accounts,
            "payments": selectors.upcoming_payments(budget),
            "has_direct_payment": budget.lines.filter(management_type="direct_payment").exists(),
            "dedicated": DirectPaymentAccount.objects.filter(budget=budget).select_related("recipient").first(),
            "can_change_account": request.user.has_perm("brokerage.run_budget", budget.plan),
            "mixing": list(budget.dp_money_in.filter(mixing=True)),
        },
    )


# --- Payment runs (finance) -------------------------------------------------------------------------------


class RunDateForm(forms.Form):
    run_date = DateField(
        label="Pay everything due on or before",
        help_text=f"Today or up to {runs.MAX_DAYS_AHEAD} days ahead; the bank pays on it. For example, 1 12 2026",
        error_messages={"required": "Enter the date", "invalid": "Enter a real date, like 1 12 2026"},
    )

    def clean_run_date(self):
        run_date = self.cleaned_data["run_date"]
        if problem := runs.run_date_problem(run_date):
            raise forms.ValidationError(problem)
        return run_date


def require_finance(request: HttpRequest) -> None:
    if not request.user.has_perm("budgets.run_payments"):
        raise Http404


def require_finance_or_reader(request: HttpRequest) -> bool:
    """Finance acts on payment runs and invoices; auditors read them (the API lets them too). Returns whether this
    user may act; anyone else, or a reader's POST, is not found."""
    if request.user.has_perm("budgets.run_payments"):
        return True
    if request.method in ("GET", "HEAD") and request.user.has_perm("ledger.view_account"):
        return False
    raise Http404


@login_required
def budget_list(request: HttpRequest) -> HttpResponse:
    """Finance finds a budget by the person's name or NHS number, to record an invoice or read its figures."""
    can_act = require_finance_or_reader(request)
    query = request.GET.get("q", "").strip()[:100]
    found = selectors.budgets_found(query)
    page = Paginator(found, 25).get_page(request.GET.get("page"))
    return render(request, "budgets/budget_list.jinja", {"page": page, "query": query, "can_act": can_act})


@login_required
def payment_runs(request: HttpRequest) -> HttpResponse:
    can_act = require_finance_or_reader(request)
    form = RunDateForm(request.POST or None, initial={"run_date": timezone.localdate()})
    if request.method == "POST" and form.is_valid() and not runs.anything_due(form.cleaned_data["run_date"]):
        form.add_error("run_date", runs.NOTHING_DUE.format(day=form.cleaned_data["run_date"]))
    if request.method == "POST" and form.is_valid():
        try:
            run, left_out = runs.payment_run_create(run_date=form.cleaned_data["run_date"], acting_user=request.user)
        except services.BudgetError as exc:
            form.add_error(None, str(exc))
        else:
            request.session[f"run-{run.pk}-left-out"] = [runs.left_out_reason(item) for item in left_out]
            return redirect("budgets:payment-run", pk=run.pk)
    listed = PaymentRun.objects.select_related("author", "approved_by").prefetch_related("items")[:50]
    return render(request, "budgets/payment_runs.jinja", {"form": form, "runs": listed, "can_act": can_act})


@login_required
def payment_run(request: HttpRequest, pk: int) -> HttpResponse:
    can_act = require_finance_or_reader(request)
    run = get_object_or_404(PaymentRun.objects.select_related("author", "approved_by"), pk=pk)
    problem = None
    action = request.POST.get("action")
    try:
        if action == "approve":
            runs.payment_run_approve(run=run, acting_user=request.user)
            messages.success(request, run_approved_message(run))
            return redirect("budgets:payment-run", pk=run.pk)
        if action == "pay":
            runs.payment_run_post(run=run, acting_user=request.user)
            return redirect("budgets:payment-run", pk=run.pk)
        if action == "discard":
            runs.payment_run_discard(run=run, acting_user=request.user)
            messages.success(request, f"Payment run {run.pk} is discarded: what it gathered waits for the next run.")
            return redirect("budgets:payment-runs")
        if action == "remove":
            item_id = request.POST.get("item", "")
            removed = runs.payment_run_item_remove(
                run=run,
                item_id=int(item_id) if item_id.isdecimal() and len(item_id) < 10 else 0,
                acting_user=request.user,
            )
            next_step = TAKEN_OUT_NEXT[removed.invoice_id is not None]
            messages.success(request, f"{removed.paying_for} is taken out of payment run {run.pk}. {next_step}")
            return redirect("budgets:payment-run", pk=run.pk)
    except services.BudgetError as exc:
        problem = str(exc)
    items = list(
        run.items.select_related(
            "scheduled_payment__budget__plan__person",
            "invoice__budget_line__budget__plan__person",
            "dp_invoice__budget__plan__person",
        ).order_by("id")
    )
    return render(
        request,
        "budgets/payment_run.jinja",
        {
            "run": run,
            "items": items,
            "totals": selectors.run_totals(run, items=items),
            "problem": problem,
            "left_out": left_out if isinstance(left_out := request.session.get(f"run-{run.pk}-left-out"), list) else [],
            "can_act": can_act,
            "can_approve": can_act and run.status == RunStatus.DRAFT and run.author_id != request.user.pk,
            "paid_total": sum(item.amount_pence for item in items if item.paid_at),
            "has_bank_file": runs.has_bank_file(run),
            "bank_file_total": runs.paid_by_bacs_pence(run),
            "not_paid": any(item.failure and not item.paid_at for item in items),
            "taken_out": runs.items_taken_out(run),
        },
    )


def run_approved_message(run: PaymentRun) -> str:
    """What the checker sees after approving: how many payments, for how much, and what happens next."""
    figures = run.items.aggregate(count=Count("id"), total=Sum("amount_pence"))
    count = figures["count"]
    payments = f"{count} payment{'' if count == 1 else 's'}"
    return (
        f"Payment run {run.pk} of {payments} ({format_pence(figures['total'] or 0)}) is approved: it can now be paid."
    )


TAKEN_OUT_NEXT = {
    True: "The invoice can now be rejected, or paid by a later run.",
    False: "It waits for the next payment run.",
}


@login_required
def payment_run_file(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    require_finance_or_reader(request)
    run = get_object_or_404(PaymentRun, pk=pk)
    if run.status in (RunStatus.DRAFT, RunStatus.DISCARDED):  # a file only for a run someone approved
        raise Http404
    try:
        if kind == "bacs":
            response = HttpResponse(runs.payment_run_bacs_file(run), content_type="text/plain; charset=us-ascii")
            response["Content-Disposition"] = f'attachment; filename="payment-run-{run.pk}-bacs18.txt"'
        else:
            response = HttpResponse(runs.payment_run_csv(run), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="payment-run-{run.pk}.csv"'
    except services.BudgetError as exc:  # nothing paid by BACS: say so rather than hand over an empty file
        messages.info(request, f"{exc}.")
        return redirect("budgets:payment-run", pk=run.pk)
    return response


# --- Invoices (finance) -----------------------------------------------------------------------------------


class InvoiceForm(forms.Form):
    line = forms.ModelChoiceField(label="Plan line", queryset=None, error_messages={"required": "Select the plan line"})
    invoice_number = forms.CharField(
        label="Invoice number", max_length=60, error_messages={"required": "Enter the invoice number"}
    )
    invoice_date = DateField(
        label="Invoice date",
        error_messages={"required": "Enter the invoice date", "invalid": "Enter a real date, like 28 12 2026"},
    )
    amount = PoundsField(
        label="Amount in pounds",
        min_value=0,
        max_digits=10,
        decimal_places=2,
        error_messages={
            "required": "Enter the amount",
            "invalid": "Enter an amount in pounds and pence, like 450.00",
            "min_value": "The amount must be more than £0",
            "max_decimal_places": "Enter an amount in pounds and pence, like 450.00",
            "max_digits": "The amount must be £100,000.00 or less",
        },
    )

    def __init__(self, *args, budget: Budget, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["line"].queryset = budget.lines.filter(management_type="notional").select_related("plan_line")
        self.fields["line"].label_from_instance = lambda line: line.plan_line.description


@login_required
def invoices(request: HttpRequest) -> HttpResponse:
    can_act = require_finance_or_reader(request)
    problem = None
    if request.method == "POST":
        invoice_id = request.POST.get("invoice", "")
        invoice = get_object_or_404(Invoice, pk=int(invoice_id) if invoice_id.isdecimal() else 0)
        try:
            if request.POST.get("action") == "approve":
                invoice_services.invoice_approve(invoice=invoice, acting_user=request.user)
                messages.success(
                    request,
                    f"Invoice {invoice.invoice_number} from {invoice.provider.name} "
                    f"({format_pence(invoice.amount_pence)}) is approved: a payment run can now pay it.",
                )
            return redirect("budgets:invoices")
        except services.BudgetError as exc:
            problem = str(exc)
    waiting = (
        Invoice.objects.exclude(status__in=["paid", "rejected"])
        .select_related("provider", "recorded_by", "budget_line__plan_line", "budget_line__budget__plan__person")
        .annotate(
            run_item_id=F("run_item__id"),
            run_item_run_id=F("run_item__run_id"),
            run_item_failure=F("run_item__failure"),
        )
    )
    return render(request, "budgets/invoices.jinja", {"invoices": waiting, "problem": problem, "can_act": can_act})


class RejectForm(forms.Form):
    reasons = forms.CharField(
        label="Why is it rejected?",
        widget=forms.Textarea,
        max_length=3000,
        help_text="For example: recorded twice, the wrong amount, or not for this person",
        error_messages={"required": "Enter why the invoice is rejected"},
    )


@login_required
def invoice_reject(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    invoice = get_object_or_404(
        Invoice.objects.select_related("provider", "budget_line__plan_line", "budget_line__budget__plan__person"), pk=pk
    )
    form = RejectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invoice_services.invoice_reject(
                invoice=invoice, acting_user=request.user, reasons=form.cleaned_data["reasons"]
            )
            messages.success(request, f"Invoice {invoice.invoice_number} is rejected.")
            return redirect("budgets:invoices")
        except services.BudgetError as exc:
            form.add_error("reasons", str(exc))
    return render(request, "budgets/invoice_reject.jinja", {"invoice": invoice, "form": form})


@login_required
def invoice_record(request: HttpRequest, pk: int) -> HttpResponse:
    require_finance(request)
    budget = get_object_or_404(Budget, pk=pk)
    form = InvoiceForm(request.POST or None, budget=budget)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            invoice_services.invoice_record(
                line=data["line"],
                provider=data["line"].plan_line.provider,
                invoice_number=data["invoice_number"],
                invoice_date=data["invoice_date"],
                amount_pence=int(data["amount"] * 100),
                acting_user=request.user,
            )
            messages.success(
                request, f"Invoice {data['invoice_number']} is recorded. Someone else approves it before it is paid."
            )
            return redirect("budgets:invoices")
        except services.BudgetError as exc:
            field = (
                "amount"
                if isinstance(exc, invoice_services.InvoiceAmountRefused)
                else "invoice_date"
                if isinstance(exc, invoice_services.InvoiceDateRefused)
                else None
            )
            form.add_error(field, str(exc))
    return render(request, "budgets/invoice_record.jinja", {"budget": budget, "form": form})
