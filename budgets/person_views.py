"""The person's own pages, also used by their representative or nominee: their plan and budget in plain English,
their transactions, recording a purchase with its receipt, and paying a provider's invoice from the direct
payment (with a check-your-answers step and a one-time form key, so a double click cannot pay twice)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from brokerage.models import ConnectedPerson
from budgets import card_payments, charts, dp_invoices, person_selectors, selectors, spending
from budgets.holder_views import clean_spent_on, one_time_key, spend_amount, spend_error_field
from budgets.models import Budget, CardPaymentPurpose, DirectPaymentInvoice, DirectPaymentSpend
from budgets.services import BudgetError
from config.formatting import format_pence
from config.forms import DateField
from providers.models import Provider, ServiceCategory

RECEIPT_TYPES = {b"%PDF-": "application/pdf", b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
RECEIPT_MAX_BYTES = 10 * 1024 * 1024


def sniff_upload(upload):
    """Accept PDFs and images by what the file is, not by what the browser said it was."""
    head = upload.read(8)
    upload.seek(0)
    kind = next((mime for magic, mime in RECEIPT_TYPES.items() if head.startswith(magic)), None)
    if kind is None:
        raise forms.ValidationError("The file must be a PDF, JPEG or PNG")
    upload.content_type = kind
    return upload


def _my_budget(request: HttpRequest, pk: int) -> Budget:
    try:
        return person_selectors.my_budget(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc


def _dp_lines(budget: Budget):
    return budget.lines.filter(management_type="direct_payment").select_related("plan_line")


@login_required
def my_budgets(request: HttpRequest) -> HttpResponse:
    budgets = list(person_selectors.budgets_for_person_pages(request.user))
    if not request.user.has_role("patient", "representative", "nominee"):
        raise Http404
    if len(budgets) == 1:
        return redirect("budgets:my-budget", pk=budgets[0].pk)
    return render(request, "budgets/person/budgets.jinja", {"budgets": budgets})


@login_required
def my_budget(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _my_budget(request, pk)
    summary = person_selectors.overview(budget)
    plan = budget.plan
    chart = charts.spend_chart_svg(
        summary.chart,
        title=f"Spending against the budget, {budget.start_date:%B %Y} to the year's end",
        description="Bars show spending so far by the end of each month; the dashed line shows the budget planned "
        "by then. The same figures are in the table beside the chart.",
    )
    return render(
        request,
        "budgets/person/budget.jinja",
        {
            "budget": budget,
            "plan": plan,
            "summary": summary,
            "chart": chart,
            "outcomes": plan.outcomes.all(),
            "support": plan.lines.select_related("provider", "third_party_holder", "outcome"),
            "upcoming": person_selectors.upcoming(budget),
            "has_direct_payment": _dp_lines(budget).exists(),
            "contribution_due": card_payments.card_payments_due(budget).get(CardPaymentPurpose.CONTRIBUTION, 0),
        },
    )


class TransactionFilter(forms.Form):
    line = forms.TypedChoiceField(label="Plan line", coerce=int, required=False, empty_value=None)
    since = forms.DateField(
        label="From", required=False, error_messages={"invalid": "Enter a real date, like 2026-12-01"}
    )
    until = forms.DateField(
        label="To", required=False, error_messages={"invalid": "Enter a real date, like 2026-12-31"}
    )

    def __init__(self, *args, budget: Budget, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["line"].choices = [("", "All lines")] + [
            (line.pk, line.plan_line.description) for line in budget.lines.select_related("plan_line")
        ]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end date must be on or after the start date")
        return data


@login_required
def my_transactions(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _my_budget(request, pk)
    form = TransactionFilter(request.GET or None, budget=budget)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    transfers = person_selectors.transactions(
        budget, line_id=filters.get("line"), since=filters.get("since"), until=filters.get("until")
    )
    page = Paginator(transfers, 20).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "budgets/person/transactions.jinja",
        {
            "budget": budget,
            "form": form,
            "page": page,
            "rows": person_selectors.describe(budget, page.object_list, checks=True),
            "query": query.urlencode(),
            "purchases": [
                (spend, person_selectors.outcome_text(spend))
                for spend in person_selectors.with_checker(DirectPaymentSpend.objects.filter(budget=budget))[:10]
            ],
        },
    )


class PurchaseForm(forms.Form):
    payee = forms.CharField(label="Who did you pay?", max_length=200, error_messages={"required": "Enter who you paid"})
    spent_on = DateField(
        label="Date paid",
        help_text="For example, 15 12 2026",
        error_messages={"required": "Enter the date you paid", "invalid": "Enter a real date, like 15 12 2026"},
    )
    amount = spend_amount()
    line = forms.ModelChoiceField(
        label="What was it for?",
        queryset=None,
        required=False,
        empty_label="Something else (it will be checked)",
        help_text="Choose the part of your plan it paid for",
    )
    category = forms.ModelChoiceField(
        label="Kind of purchase (optional)",
        # What the budget cannot pay for comes last and says so (rule 10): recording one is honest, and sends it
        # for review rather than passing it as an ordinary purchase.
        queryset=ServiceCategory.objects.filter(active=True).order_by("is_prohibited", "name"),
        required=False,
        help_text="Kinds of purchase the budget cannot pay for are marked: if you record one, it will be reviewed",
    )
    connected_person = forms.ModelChoiceField(
        label="Is the person you paid a family member or friend named in your plan?",
        queryset=None,
        required=False,
        empty_label="No",
    )
    receipt = forms.FileField(
        label="Upload the receipt or invoice",
        help_text="A PDF, JPEG or PNG file, smaller than 10MB",
        error_messages={"required": "Upload the receipt or invoice", "empty": "The file you chose is empty"},
    )
    key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, budget: Budget, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.fields["line"].queryset = _dp_lines(budget)
        self.fields["line"].label_from_instance = lambda line: line.plan_line.description
        self.fields["category"].label_from_instance = lambda category: (
            f"{category.name} (the budget cannot pay for this)" if category.is_prohibited else category.name
        )
        self.fields["connected_person"].queryset = ConnectedPerson.objects.filter(
            person_id=budget.plan.person_id
        ).select_related("provider")
        self.fields["connected_person"].label_from_instance = lambda connected: (
            f"{connected.provider.name} ({connected.get_relationship_display().lower()})"
        )

    def clean_spent_on(self):
        return clean_spent_on(self.budget, self.cleaned_data["spent_on"])

    def clean_receipt(self):
        receipt = self.cleaned_data["receipt"]
        if receipt.size > RECEIPT_MAX_BYTES:
            raise forms.ValidationError("The file must be smaller than 10MB")
        return sniff_upload(receipt)


@login_required
def record_purchase(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _my_budget(request, pk)
    if not _dp_lines(budget).exists():
        raise Http404
    form = PurchaseForm(request.POST or None, request.FILES or None, budget=budget, initial={"key": one_time_key()})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            spend = spending.dp_spend_record(
                budget=budget,
                line=data["line"],
                payee=data["payee"],
                spent_on=data["spent_on"],
                amount_pence=int(data["amount"] * 100),
                key=f"person:{budget.pk}:{data['key']}",
                acting_user=request.user,
                category=data["category"],
                connected_person=data["connected_person"],
                receipt=data["receipt"],
            )
            recorded = f"Recorded: {format_pence(spend.amount_pence)} paid to {spend.payee}."
            if spend.flag:  # said now, so the person is not surprised when their coordinator asks about it
                recorded += " Your care coordinator will check it: " + (
                    "it is not for a part of your plan." if spend.flag == "uncoded" else "it may not be allowed."
                )
            messages.success(request, recorded)
            return redirect("budgets:my-transactions", pk=budget.pk)
        except BudgetError as exc:
            form.add_error(spend_error_field(exc), str(exc))
    return render(request, "budgets/person/purchase.jinja", {"budget": budget, "form": form})


@login_required
def receipt(request: HttpRequest, pk: int, spend_pk: int) -> FileResponse:
    """Receipts live outside the web root; only those who may see the budget get them."""
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    spend = DirectPaymentSpend.objects.filter(budget=budget, pk=spend_pk).exclude(receipt="").first()
    if spend is None:
        raise Http404
    extension = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}.get(spend.receipt_type, "bin")
    response = FileResponse(
        spend.receipt.open("rb"), content_type=spend.receipt_type or "application/octet-stream", as_attachment=True
    )
    response["Content-Disposition"] = f'attachment; filename="receipt-{spend.pk}.{extension}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class PayInvoiceForm(forms.Form):
    provider = forms.ModelChoiceField(
        label="Who sent the invoice?",
        queryset=Provider.objects.none(),
        error_messages={"required": "Select who sent the invoice", "invalid_choice": "Select who sent the invoice"},
    )
    invoice_number = forms.CharField(
        label="Invoice number", max_length=60, error_messages={"required": "Enter the invoice number"}
    )
    amount = spend_amount()
    line = forms.ModelChoiceField(
        label="What was it for?",
        queryset=None,
        error_messages={"required": "Select what the invoice was for", "invalid_choice": "Select what it was for"},
    )
    key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, budget: Budget, **kwargs):
        super().__init__(*args, **kwargs)
        lines = _dp_lines(budget)
        self.fields["line"].queryset = lines
        self.fields["line"].label_from_instance = lambda line: line.plan_line.description
        # The providers in the person's plan, and anyone who can be paid (bank details or a connected account).
        in_plan = Q(pk__in=budget.plan.lines.exclude(provider=None).values("provider"))
        payable = ~Q(sort_code="") | ~Q(stripe_account_id="")
        self.fields["provider"].queryset = Provider.objects.filter(in_plan | payable).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("amount") is not None and data["amount"] <= 0:
            self.add_error("amount", "The amount must be more than £0")
        return data


@login_required
def pay_invoice(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _my_budget(request, pk)
    if not _dp_lines(budget).exists():
        raise Http404
    step = request.POST.get("step", "details")
    if step == "change":  # back from the check page to the details, as they were typed
        answers = {name: request.POST.get(name, "") for name in PayInvoiceForm.base_fields}
        form = PayInvoiceForm(budget=budget, initial=answers)
        return render(request, "budgets/person/pay_invoice.jinja", {"budget": budget, "form": form})
    form = PayInvoiceForm(request.POST or None, budget=budget, initial={"key": one_time_key()})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        invoice = {
            "budget": budget,
            "line": data["line"],
            "provider": data["provider"],
            "invoice_number": data["invoice_number"],
            "amount_pence": int(data["amount"] * 100),
        }
        try:
            if step == "confirm":
                paid = dp_invoices.dp_invoice_pay(
                    **invoice, key=f"person:{budget.pk}:{data['key']}", acting_user=request.user
                )
                return redirect("budgets:my-invoice", pk=budget.pk, invoice_pk=paid.pk)
            # Checked before the check step too, so a refusal shows where they typed, not after they confirm.
            dp_invoices.dp_invoice_check(**invoice)
            return render(request, "budgets/person/pay_invoice_check.jinja", {"budget": budget, "form": form})
        except BudgetError as exc:
            form.add_error(None, str(exc))
    return render(request, "budgets/person/pay_invoice.jinja", {"budget": budget, "form": form})


@login_required
def my_invoice(request: HttpRequest, pk: int, invoice_pk: int) -> HttpResponse:
    budget = _my_budget(request, pk)
    invoice = DirectPaymentInvoice.objects.filter(budget=budget, pk=invoice_pk).select_related("provider").first()
    if invoice is None:
        raise Http404
    return render(request, "budgets/person/invoice.jinja", {"budget": budget, "invoice": invoice})
