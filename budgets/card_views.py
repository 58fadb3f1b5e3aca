"""Paying by card: the person's two steps (what for and how much, then the card) and the result page, and the
finance team's list of card payments with refunds.

The card form has no `name` on its card fields: static/js/card-payment.js sends them straight to Stripe for a
token and posts only the token here. The money is credited when Stripe's webhook arrives (budgets/webhooks.py),
so the result page may first say the payment is being confirmed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlencode, urlsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.roles import PERSON_ROLES
from budgets import card_payments, payments, selectors
from budgets.holder_views import one_time_key
from budgets.models import Budget, CardPayment, CardPaymentPurpose, CardPaymentStatus
from budgets.views import require_finance_or_reader
from config.formatting import format_pence
from config.forms import PoundsField

TOKEN_PATTERN = re.compile(r"^(tok|pm)_[A-Za-z0-9_]{1,200}$")

AMOUNT_ERRORS = {
    "required": "Enter the amount",
    "invalid": "Enter an amount in pounds and pence, like 25.00",
    "min_value": card_payments.AMOUNT_RANGE,
    "max_value": card_payments.AMOUNT_RANGE,
    "max_decimal_places": "Enter an amount in pounds and pence, like 25.00",
    "max_digits": card_payments.AMOUNT_RANGE,
}


DUE_LABELS = {
    CardPaymentPurpose.CONTRIBUTION: "My assessed contribution: {due} still to pay",
    CardPaymentPurpose.RECOVERY: "Money asked back in a recovery notice: {due} to pay back",
}


class CardPaymentForm(forms.Form):
    """What the person owes, one choice per purpose with its amount (`card_payments.card_payments_due`)."""

    purpose = forms.ChoiceField(
        label="What is the payment for?",
        widget=forms.RadioSelect,
        error_messages={"required": card_payments.CHOOSE_PURPOSE, "invalid_choice": card_payments.CHOOSE_PURPOSE},
    )
    amount = PoundsField(
        label="How much do you want to pay?",
        help_text="In pounds and pence, for example 25.00",
        min_value=Decimal("0.01"),
        max_value=Decimal("10000.00"),
        max_digits=7,
        decimal_places=2,
        error_messages=AMOUNT_ERRORS,
    )
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, due: dict[str, int], **kwargs):
        super().__init__(*args, **kwargs)
        self.due = due
        self.fields["purpose"].choices = [
            (purpose, DUE_LABELS[purpose].format(due=format_pence(amount))) for purpose, amount in due.items()
        ]
        if len(due) == 1:  # one thing owed: nothing to choose
            self.fields["purpose"].initial = next(iter(due))

    def clean(self):
        data = super().clean()
        purpose, amount = data.get("purpose"), data.get("amount")
        if purpose and amount is not None and int(amount * 100) > self.due[purpose]:
            message = card_payments.OVER_DUE[purpose].format(due=format_pence(self.due[purpose]))
            self.add_error("amount", message)
        return data


class RefundForm(forms.Form):
    payment = forms.IntegerField(widget=forms.HiddenInput)
    number = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    amount = PoundsField(
        label="Amount to refund",
        min_value=Decimal("0.01"),
        max_digits=7,
        decimal_places=2,
        error_messages=AMOUNT_ERRORS,
    )


def _own_budget(request: HttpRequest, pk: int) -> Budget:
    """The budget of the person this user is, or acts for; for anyone else (staff included), 404."""
    user = request.user
    if not user.has_role(*PERSON_ROLES):
        raise Http404
    try:
        budget = selectors.budget_for(user=user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    person = budget.plan.person
    # budget_for also widens to staff scopes; a person's pages are only for the person and those acting for them.
    if person.user_id != user.pk and not person.representatives.filter(user=user, active=True).exists():
        raise Http404
    return budget


def stripe_origin() -> str:
    """Where the browser sends card details for a token: the local Stripe server in tests and the demo."""
    base = settings.STRIPE_API_BASE
    if not base:
        return "https://api.stripe.com"
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


@login_required
@require_http_methods(["GET", "POST"])
def card_pay(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _own_budget(request, pk)
    problem = ""
    due = card_payments.card_payments_due(budget)
    if request.method == "POST":
        form = CardPaymentForm(request.POST, due=due)
        if form.is_valid():
            data = form.cleaned_data
            try:
                payment = card_payments.card_payment_start(
                    budget=budget,
                    purpose=data["purpose"],
                    amount_pence=int(data["amount"] * 100),
                    acting_user=request.user,
                    key=f"card:{request.user.pk}:{data['key']}",
                )
                return redirect("budgets:card-payment", pk=budget.pk, payment_pk=payment.pk)
            except card_payments.CardPaymentError as exc:
                form.add_error("amount" if "amount" in str(exc) else None, str(exc))
            except payments.PaymentError as exc:
                problem = exc.message
    else:
        # "Try again" and "Change" links bring the earlier answers back, so nobody types them twice.
        initial = {"key": one_time_key()}
        if request.GET.get("purpose") in due:
            initial["purpose"] = request.GET["purpose"]
        if re.fullmatch(r"\d{1,5}(\.\d{2})?", request.GET.get("amount", "")):
            initial["amount"] = request.GET["amount"]
        form = CardPaymentForm(initial=initial, due=due)
    return render(request, "budgets/card/pay.jinja", {"budget": budget, "form": form, "problem": problem})


@login_required
@require_http_methods(["GET", "POST"])
def card_payment(request: HttpRequest, pk: int, payment_pk: int) -> HttpResponse:
    budget = _own_budget(request, pk)
    payment = CardPayment.objects.filter(budget=budget, pk=payment_pk).first()
    if payment is None:
        raise Http404
    if request.headers.get("Accept") == "application/json":  # the result page's poll while it is being confirmed
        return JsonResponse({"status": payment.status})
    problem = ""
    if request.method == "POST":
        token = request.POST.get("token", "")
        try:
            if token and not TOKEN_PATTERN.match(token):
                raise card_payments.CardPaymentError("Check your card details and try again")
            card_payments.card_payment_confirm(payment=payment, token_or_payment_method=token, acting_user=request.user)
            return redirect("budgets:card-payment", pk=budget.pk, payment_pk=payment.pk)
        except payments.PaymentError as exc:
            problem = exc.message
        except card_payments.CardPaymentError as exc:
            problem = str(exc)
        payment.refresh_from_db()
    again = (
        reverse("budgets:card-pay", kwargs={"pk": budget.pk})
        + "?"
        + urlencode({"purpose": payment.purpose, "amount": f"{payment.amount_pence / 100:.2f}"})
    )
    response = render(
        request,
        "budgets/card/payment.jinja",
        {
            "budget": budget,
            "payment": payment,
            "statuses": CardPaymentStatus,
            "problem": problem,
            "again_href": again,
            "stripe_base": stripe_origin(),
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        },
    )
    if payment.status == CardPaymentStatus.STARTED:
        # Only this page may talk to Stripe from the browser (django-csp reads this per response).
        response._csp_update = {"connect-src": [stripe_origin()]}
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def finance_card_payments(request: HttpRequest) -> HttpResponse:
    can_refund = require_finance_or_reader(request)  # auditors read the list, with no refund forms
    failed_form = None
    if request.method == "POST":
        form = RefundForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            payment = CardPayment.objects.filter(pk=data["payment"]).first()
            if payment is None:
                raise Http404
            try:
                card_payments.card_payment_refund(
                    payment=payment,
                    amount_pence=int(data["amount"] * 100),
                    acting_user=request.user,
                    refund_number=data["number"],
                )
                owed_again = (
                    ": it is owed again under the recovery notice it paid"
                    if payment.purpose == CardPaymentPurpose.RECOVERY
                    else ""
                )
                messages.success(request, f"Refunded £{data['amount']:,.2f} of card payment {payment.pk}{owed_again}")
                return redirect("budgets:card-payments")
            except card_payments.CardPaymentError as exc:
                form.add_error("amount", str(exc))
            except payments.PaymentError as exc:
                form.add_error("amount", exc.message)
        failed_form = form
    recent = list(
        CardPayment.objects.select_related("budget__plan__person", "paid_by").order_by("-created_at", "-pk")[:100]
    )
    refund_numbers = {
        payment.pk: card_payments.refunds_made(payment) + 1 for payment in recent if payment.refunded_pence
    }
    return render(
        request,
        "budgets/card/finance.jinja",
        {
            "payments": recent,
            "statuses": CardPaymentStatus,
            "refund_numbers": refund_numbers,
            "can_refund": can_refund,
            "failed_form": failed_form,
            "failed_payment": _int(request.POST.get("payment")) if failed_form else None,
            "column_width": "full",
        },
    )


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
