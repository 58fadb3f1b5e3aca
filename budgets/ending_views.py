"""Pages for the end of a budget's life: issuing a reduction notice, asking for money back (a form, then
check your answers, then the notice), a notice's page (bank repayments, write-offs, reconsideration), the final
audit (liabilities, the recoverable figure, closing) and the letters themselves, as a page and as a PDF.

Thin views: each validates its form and calls one service in budgets/ending.py; a refusal comes back as an error
summary. Budgets are found through `selectors.budget_for`, so anyone else's id is a 404.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.roles import STAFF_ROLES
from brokerage.models import PlanStatus
from budgets import ending, letters, monitoring, selectors
from budgets.holder_views import one_time_key
from budgets.models import (
    Addressee,
    Budget,
    Letter,
    Liability,
    LiabilityKind,
    Recovery,
    RecoveryStatus,
    StopDecision,
    StopReconsideration,
)
from budgets.services import BudgetError
from config.forms import DateField, PoundsField

MAX_POUNDS = Decimal("1000000.00")
AMOUNT_ERRORS = {
    "required": "Enter the amount",
    "invalid": "Enter an amount in pounds and pence, like 250.00",
    "min_value": "The amount must be more than £0",
    "max_value": "The amount must be £1,000,000.00 or less",
    "max_decimal_places": "Enter an amount in pounds and pence, like 250.00",
    "max_digits": "The amount must be £1,000,000.00 or less",
}


def _amount(label: str, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    return PoundsField(
        label=label,
        help_text=help_text or "In pounds and pence, for example 250.00",
        required=required,
        min_value=Decimal("0.01"),
        max_value=MAX_POUNDS,
        max_digits=9,
        decimal_places=2,
        error_messages=AMOUNT_ERRORS,
    )


def _date(label: str, *, required: bool = True, help_text: str = "For example, 31 1 2027") -> DateField:
    return DateField(
        label=label,
        help_text=help_text,
        required=required,
        error_messages={"required": f"Enter the {label.lower()}", "invalid": "Enter a real date, like 31 1 2027"},
    )


def _reasons(label: str = "Reasons", message: str = ending.REASONS_REQUIRED, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        help_text=help_text,
        widget=forms.Textarea,
        max_length=5000,
        error_messages={"required": message, "max_length": "Keep it to 5,000 characters or fewer"},
    )


def pence(amount: Decimal) -> int:
    return int(amount * 100)


# Which field a service's refusal belongs to, so the error summary links to it.
FIELD_OF_MESSAGE = {
    "amount": ("amount", "holds", "owed", "more than", "repaid or written off", "reduce the amount"),
    "deadline": ("date by which",),
    "addressee": ("who must pay", "personal representatives", "representative acting"),
    "from_balance": ("offset the surplus", "already waiting for approval"),
    "effective_on": ("take effect",),
    "reasons": (ending.REASONS_REQUIRED, ending.EVIDENCE_REQUIRED),
}


def _refusal(form: forms.Form, message: str) -> None:
    for field, hints in FIELD_OF_MESSAGE.items():
        if field in form.fields and any(hint.lower() in message.lower() for hint in hints):
            form.add_error(field, message)
            return
    form.add_error(None, message)


def _staff_budget(request: HttpRequest, pk: int) -> Budget:
    """A budget this member of staff may see; for anyone else (the person included), 404."""
    if not request.user.has_role(*STAFF_ROLES):
        raise Http404
    try:
        return selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc


def _require(condition: bool) -> None:
    if not condition:
        raise Http404


# --- Reduction notice -------------------------------------------------------------------------------------------


class ReductionForm(forms.Form):
    new_plan = forms.TypedChoiceField(
        label="Which version of the plan reduces the budget?",
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose the new version", "invalid_choice": "Choose the new version"},
    )
    reasons = _reasons("Why the budget is being reduced", help_text="The person reads these in the letter")
    effective_on = _date("Date the reduction takes effect")

    def __init__(self, *args, budget: Budget, **kwargs):
        super().__init__(*args, **kwargs)
        self.plans = {plan.pk: plan for plan in ending.reduction_candidates(budget)}
        self.fields["new_plan"].choices = [
            (pk, f"Version {plan.version}: £{plan.budget.amount:,.2f} a year ({plan.get_status_display().lower()})")
            for pk, plan in self.plans.items()
        ]
        earliest = ending.reduction_earliest(budget, timezone.localdate())
        self.fields[
            "effective_on"
        ].help_text = (
            f"No earlier than {earliest:%Y-%m-%d}: the plan's notice period is {budget.plan.notice_period_days} days"
        )


@login_required
@require_http_methods(["GET", "POST"])
def reduction_notice(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _staff_budget(request, pk)
    _require(request.user.has_perm("brokerage.run_budget", budget.plan))
    form = ReductionForm(request.POST if request.method == "POST" else None, budget=budget)
    checking = False
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if request.POST.get("confirm") == "yes":
            try:
                ending.reduction_notice_issue(
                    budget=budget,
                    new_plan=form.plans[data["new_plan"]],
                    reasons=data["reasons"],
                    effective_on=data["effective_on"],
                    acting_user=request.user,
                )
                messages.success(request, "The notice of the reduction has been issued")
                return redirect("budgets:budget", pk=budget.pk)
            except BudgetError as exc:
                _refusal(form, str(exc))
        else:
            checking = True
    return render(
        request,
        "budgets/ending/reduction.jinja",
        {
            "budget": budget,
            "form": form,
            "checking": checking,
            "new_plan": form.plans.get(form.cleaned_data.get("new_plan")) if checking else None,
        },
    )


# --- Asking for money back --------------------------------------------------------------------------------------


class RecoveryForm(forms.Form):
    reasons = _reasons("Why the money is asked back", help_text="The person reads these in the letter")
    amount = _amount("Amount to pay back")
    deadline = _date("Date to pay by", help_text="For example, 31 1 2027. Give a reasonable time to pay")
    addressee = forms.ChoiceField(
        label="Who must pay it back?",
        choices=Addressee.choices,
        widget=forms.RadioSelect,
        error_messages={"required": ending.ADDRESSEE_REQUIRED, "invalid_choice": ending.ADDRESSEE_REQUIRED},
    )
    addressee_name = forms.CharField(
        label="Their name, as the letter should address them",
        max_length=200,
        error_messages={"required": "Enter the name the letter is addressed to"},
    )
    from_balance = forms.TypedChoiceField(
        label="Where is the money now?",
        choices=[("yes", "Still in the direct-payment account"), ("no", "It has been spent")],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
        error_messages={"required": "Say where the money is now", "invalid_choice": "Say where the money is now"},
    )

    def __init__(self, *args, has_direct_payment: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not has_direct_payment:
            del self.fields["from_balance"]

    def clean_deadline(self):
        deadline = self.cleaned_data["deadline"]
        if deadline <= timezone.localdate():
            raise forms.ValidationError(ending.DEADLINE_REQUIRED)
        return deadline


def _recovery_initial(budget: Budget, *, closing: bool) -> dict:
    person = budget.plan.person
    deceased = ending.is_deceased(budget)
    initial = {
        "deadline": timezone.localdate() + datetime.timedelta(days=28),
        "addressee": Addressee.PERSONAL_REPRESENTATIVES if deceased else Addressee.PERSON,
        "addressee_name": f"The personal representatives of {person.full_name}" if deceased else person.full_name,
    }
    if closing:
        audit = ending.final_audit(budget)
        initial.update(
            amount=f"{audit.unclaimed / 100:.2f}",
            from_balance="yes",
            reasons="The personal health budget has ended. After everything it owed was paid, "
            f"£{audit.unclaimed / 100:,.2f} was left in the direct-payment account. This money belongs to the NHS "
            "and must be paid back.",
        )
    return initial


@login_required
@require_http_methods(["GET", "POST"])
def recovery_new(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _staff_budget(request, pk)
    _require(request.user.has_perm("budgets.recover_money"))
    has_dp = budget.accounts.filter(purpose="held:direct-payment").exists()
    closing = request.GET.get("closing") == "1"
    form = RecoveryForm(
        request.POST if request.method == "POST" else None,
        has_direct_payment=has_dp,
        initial=_recovery_initial(budget, closing=closing),
    )
    checking = False
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        notice = {
            "budget": budget,
            "reasons": data["reasons"],
            "amount_pence": pence(data["amount"]),
            "deadline": data["deadline"],
            "addressee": data["addressee"],
            "addressee_name": data["addressee_name"],
            "from_balance": data.get("from_balance", False),
        }
        try:
            if request.POST.get("confirm") != "yes":
                ending.recovery_check(**notice)  # every refusal now, before the check step
                checking = True
            else:
                recovery = ending.recovery_propose(
                    **notice,
                    acting_user=request.user,
                    # Asking for money built up in the account back settles an open surplus alert (rule 15).
                    surplus_alert=budget.surplus_alerts.filter(status="open").first()
                    if data.get("from_balance") and not closing
                    else None,
                )
                messages.success(
                    request,
                    "The notice is written. It is booked and sent once a finance manager or ICB approver who did "
                    "not write it approves it",
                )
                return redirect("budgets:recovery", pk=budget.pk, recovery_pk=recovery.pk)
        except BudgetError as exc:
            _refusal(form, str(exc))
    return render(
        request,
        "budgets/ending/recovery_new.jinja",
        {
            "budget": budget,
            "form": form,
            "checking": checking,
            "balance": ending.dp_balance(budget) if has_dp else None,
            "closing": closing,
        },
    )


class RepaymentForm(forms.Form):
    amount = _amount("Amount received")
    received_on = _date("Date received", help_text="For example, 15 1 2027")
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_received_on(self):
        received_on = self.cleaned_data["received_on"]
        if received_on > timezone.localdate():
            raise forms.ValidationError("The date received must be today or in the past")
        return received_on


class WriteOffForm(forms.Form):
    amount = _amount("Amount to write off")
    reasons = _reasons("Why it is written off")
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)


class ReconsiderForm(forms.Form):
    evidence = _reasons(
        "What the person said and the evidence they gave",
        message=ending.EVIDENCE_REQUIRED,
        help_text="Recording this pauses the notice: nothing can be repaid or written off until it is decided",
    )


class DecideForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Decision",
        choices=[("resume", "The notice stands (perhaps for less)"), ("withdraw", "Withdraw the notice")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose the decision", "invalid_choice": "Choose the decision"},
    )
    amount = _amount("New amount, if it is reduced", required=False, help_text="Leave empty to keep the amount")
    deadline = _date("New date to pay by, if it changes", required=False, help_text="Leave empty to keep the date")
    reasons = _reasons("Reasons for the decision", help_text="Sent to the person in a letter")


class ApproveForm(forms.Form):
    """Approving needs no more than the button: the notice's parts are shown above it."""


class NotApproveForm(forms.Form):
    reasons = _reasons("Why it is not approved", help_text="The author reads this; the person is not written to")


RECOVERY_FORMS = {
    "approve": ApproveForm,
    "not_approve": NotApproveForm,
    "repay": RepaymentForm,
    "write_off": WriteOffForm,
    "reconsider": ReconsiderForm,
    "decide": DecideForm,
}


def _recovery_actions(recovery: Recovery, user) -> set[str]:
    """What this user may do with the notice now."""
    actions = set()
    if recovery.status == RecoveryStatus.PROPOSED and ending.can_approve(recovery, user):
        actions |= {"approve", "not_approve"}
    if recovery.status == RecoveryStatus.ISSUED:
        if user.has_perm("budgets.recover_money"):
            actions |= {"repay", "reconsider"}
        if user.has_perm("budgets.write_off") and user.pk != recovery.issued_by_id:
            actions.add("write_off")
    if recovery.status == RecoveryStatus.RECONSIDERING and ending.can_decide(recovery, user):
        actions.add("decide")
    return actions


def _act(action: str, form: forms.Form, recovery: Recovery, user) -> None:
    data = form.cleaned_data
    if action == "approve":
        ending.recovery_approve(recovery=recovery, acting_user=user)
    elif action == "not_approve":
        ending.recovery_not_approve(recovery=recovery, reasons=data["reasons"], acting_user=user)
    elif action == "repay":
        ending.recovery_repaid(
            recovery=recovery,
            amount_pence=pence(data["amount"]),
            key=f"bank:{data['key']}",
            acting_user=user,
            method="bank",
            received_on=data["received_on"],
        )
    elif action == "write_off":
        ending.recovery_write_off(
            recovery=recovery,
            amount_pence=pence(data["amount"]),
            reasons=data["reasons"],
            acting_user=user,
            key=data["key"],
        )
    elif action == "reconsider":
        ending.recovery_reconsider(recovery=recovery, evidence=data["evidence"], acting_user=user)
    else:
        ending.recovery_decide(
            recovery=recovery,
            outcome=data["outcome"],
            reasons=data["reasons"],
            acting_user=user,
            amount_pence=pence(data["amount"]) if data.get("amount") else None,
            deadline=data.get("deadline"),
        )


@login_required
@require_http_methods(["GET", "POST"])
def recovery_page(request: HttpRequest, pk: int, recovery_pk: int) -> HttpResponse:
    budget = _staff_budget(request, pk)
    recovery = Recovery.objects.filter(budget=budget, pk=recovery_pk).select_related("issued_by", "approved_by").first()
    _require(recovery is not None)
    allowed = _recovery_actions(recovery, request.user)
    action = request.POST.get("action", "")
    bound = None
    if request.method == "POST":
        _require(action in allowed)
        bound = RECOVERY_FORMS[action](request.POST, prefix=action)
        if bound.is_valid():
            try:
                _act(action, bound, recovery, request.user)
                messages.success(request, "Done: the notice is up to date")
                return redirect("budgets:recovery", pk=budget.pk, recovery_pk=recovery.pk)
            except BudgetError as exc:
                _refusal(bound, str(exc))
    recovery_forms = {
        name: bound
        if bound is not None and name == action
        else RECOVERY_FORMS[name](prefix=name, initial={"key": one_time_key()})
        for name in sorted(allowed)
    }
    return render(
        request,
        "budgets/ending/recovery.jinja",
        {
            "budget": budget,
            "recovery": recovery,
            "forms": recovery_forms,
            "failed": bound if bound is not None and bound.errors else None,
            "repayments": ending.repayments(recovery),
            "write_offs": ending.write_offs(recovery),
            "letters": Letter.objects.filter(budget=budget, subject_ref__startswith=f"recovery:{recovery.pk}").order_by(
                "created_at"
            ),
            "closing": ending.is_closing(recovery),
        },
    )


# --- Final audit and closing ------------------------------------------------------------------------------------


class _FormInvalid(Exception):
    """The liability form has errors: show them."""


class LiabilityForm(forms.Form):
    kind = forms.ChoiceField(
        label="What is it for?",
        choices=LiabilityKind.choices,
        widget=forms.RadioSelect,
        error_messages={"required": ending.CHOOSE_KIND, "invalid_choice": ending.CHOOSE_KIND},
    )
    payee = forms.CharField(label="Who is owed it", max_length=200, error_messages={"required": ending.PAYEE_REQUIRED})
    amount = _amount("Amount owed")


class StopReconsiderForm(forms.Form):
    asked_by = forms.CharField(
        label="Who is asking",
        help_text="The person, or their representative or nominee",
        max_length=200,
        error_messages={"required": "Say who is asking for the decision to be reconsidered"},
    )
    reasons = _reasons(
        "Why they think the decision is wrong, and the evidence they gave",
        message="Give their reasons, and any evidence they sent",
        help_text="Recording this pauses the stop: the final audit waits until an ICB approver decides",
    )


class StopDecideForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Decision",
        choices=StopReconsideration.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose the decision", "invalid_choice": "Choose the decision"},
    )
    reasons = _reasons("Reasons for the decision", help_text="Sent to the person in a letter")


STOP_FORMS = {"stop_reconsider": StopReconsiderForm, "stop_decide": StopDecideForm}


def _stop_action(action: str, form: forms.Form, decision: StopDecision, user) -> None:
    if not form.is_valid():
        raise _FormInvalid
    if action == "stop_reconsider":
        monitoring.stop_reconsider(decision=decision, acting_user=user, **form.cleaned_data)
    else:
        monitoring.stop_reconsider_decide(decision=decision, acting_user=user, **form.cleaned_data)


@login_required
@require_http_methods(["GET", "POST"])
def final_audit_page(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _staff_budget(request, pk)
    user = request.user
    can_run = user.has_perm("brokerage.run_budget", budget.plan)
    can_recover = user.has_perm("budgets.recover_money")
    decision = (
        budget.stop_decisions.select_related("decided_by", "reconsideration_decided_by")
        .order_by("-decided_on", "-id")
        .first()
    )
    can_decide_stop = decision is not None and monitoring.can_decide_stop(decision, user)
    _require(can_run or can_recover or can_decide_stop or user.has_perm("ledger.view_account"))
    form = LiabilityForm(prefix="liability")
    stop_forms = {name: form_class(prefix=name) for name, form_class in STOP_FORMS.items()}
    problem = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "begin" and can_run:
                ending.final_audit_begin(budget=budget, acting_user=user)
            elif (
                action in STOP_FORMS
                and decision is not None
                and (can_run if action == "stop_reconsider" else can_decide_stop)
            ):
                stop_forms[action] = STOP_FORMS[action](request.POST, prefix=action)
                _stop_action(action, stop_forms[action], decision, user)
            elif action == "liability" and can_recover:
                form = LiabilityForm(request.POST, prefix="liability")
                if not form.is_valid():
                    raise _FormInvalid
                data = form.cleaned_data
                ending.liability_record(
                    budget=budget,
                    kind=data["kind"],
                    payee=data["payee"],
                    amount_pence=pence(data["amount"]),
                    acting_user=user,
                )
            elif action == "pay" and can_recover:
                value = request.POST.get("liability", "")
                liability = Liability.objects.filter(budget=budget, pk=int(value) if value.isdecimal() else 0).first()
                _require(liability is not None)
                ending.liability_pay(liability=liability, acting_user=user)
            elif action == "holder_returned" and can_recover:
                ending.holder_balance_returned(budget=budget, purpose=request.POST.get("purpose", ""), acting_user=user)
            elif action == "close" and user.has_perm("budgets.close_budget"):
                ending.budget_close(budget=budget, acting_user=user)
                messages.success(request, "The budget is closed. Its records stay as they are.")
            else:
                raise Http404
            return redirect("budgets:final-audit", pk=budget.pk)
        except _FormInvalid:
            pass
        except BudgetError as exc:
            if action == "liability":
                _refusal(form, str(exc))
            elif action in STOP_FORMS:
                stop_forms[action].add_error(None, str(exc))
            else:
                problem = str(exc)
    budget.plan.refresh_from_db()
    status = budget.plan.status
    if decision is not None:
        decision.refresh_from_db()
    return render(
        request,
        "budgets/ending/final_audit.jinja",
        {
            "budget": budget,
            "status": status,
            "statuses": PlanStatus,
            "audit": ending.final_audit(budget),
            "liabilities": budget.liabilities.select_related("recorded_by"),
            "form": form,
            "problem": problem,
            "decision": decision,
            "stop_forms": stop_forms,
            "can_ask_reconsider": can_run
            and status == PlanStatus.STOPPING
            and decision is not None
            and decision.can_be_reconsidered
            and decision.reconsideration_asked_on is None,
            "can_decide_stop": can_decide_stop and decision.reconsidering,
            "can_run": can_run,
            "can_recover": can_recover,
            "can_close": user.has_perm("budgets.close_budget"),
        },
    )


# --- Letters ----------------------------------------------------------------------------------------------------


def _letter(request: HttpRequest, pk: int, letter_pk: int) -> Letter:
    """A letter of a budget this user may see: the person and those acting for them, their coordinator, finance,
    auditors. Any other id is a 404."""
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    letter = Letter.objects.filter(budget=budget, pk=letter_pk).select_related("budget__plan__person__icb").first()
    _require(letter is not None)
    return letter


@login_required
def letter_page(request: HttpRequest, pk: int, letter_pk: int) -> HttpResponse:
    letter = _letter(request, pk, letter_pk)
    staff = request.user.has_role(*STAFF_ROLES)
    back = "budgets:budget" if staff else "budgets:my-budget"
    return render(
        request,
        "budgets/letters/page.jinja",
        {"letter": letter, "back_href": reverse(back, kwargs={"pk": letter.budget_id})},
    )


@login_required
def letter_pdf(request: HttpRequest, pk: int, letter_pk: int) -> HttpResponse:
    letter = _letter(request, pk, letter_pk)
    response = HttpResponse(letters.letter_pdf(letter), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="letter-{letter.pk}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
