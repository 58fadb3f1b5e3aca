"""Monitoring pages: a budget's reviews, returns, surplus alerts, suspension and stopping for the staff who run
it, completing a review, and the person's own returns and withdrawal of consent."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from brokerage import selectors as plan_selectors
from brokerage.exceptions import BrokerageError
from budgets import monitoring, person_selectors, selectors, spending
from budgets.models import (
    Budget,
    DirectPaymentReturn,
    EvidenceKind,
    OutcomeProgress,
    Review,
    ReviewDecision,
    ReviewReason,
    SpendCheck,
    StopGround,
    SurplusAlert,
    SuspensionReason,
)
from budgets.person_views import RECEIPT_MAX_BYTES, sniff_upload
from budgets.services import BudgetError

TRIGGERS = [
    (ReviewReason.CONCERN, ReviewReason.CONCERN.label),
    (ReviewReason.HEALTH_CHANGE, ReviewReason.HEALTH_CHANGE.label),
]


def _staff_budget(request: HttpRequest, pk: int) -> Budget:
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    if not request.user.has_perm("brokerage.run_budget", budget.plan):
        raise Http404
    return budget


class TriggerForm(forms.Form):
    reason = forms.ChoiceField(
        label="Why is a review needed?",
        choices=TRIGGERS,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose why a review is needed"},
    )
    note = forms.CharField(
        label="What has happened?",
        widget=forms.Textarea,
        max_length=2000,
        error_messages={"required": "Say what the concern or change is"},
    )


class SuspendForm(forms.Form):
    reason = forms.ChoiceField(
        label="Why suspend the budget?",
        choices=SuspensionReason.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose why the budget is suspended"},
    )
    reasons = forms.CharField(
        label="Reasons, as the person will read them",
        widget=forms.Textarea,
        max_length=2000,
        error_messages={"required": "Give the reasons for the suspension"},
    )


class StopForm(forms.Form):
    ground = forms.ChoiceField(
        label="Why is the budget stopping?",
        choices=StopGround.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose why the budget is stopping"},
    )
    reasons = forms.CharField(
        label="Reasons (not needed when the person withdrew consent)",
        widget=forms.Textarea,
        max_length=2000,
        required=False,
    )


FORMS = {"trigger": TriggerForm, "suspend": SuspendForm, "stop": StopForm}


@login_required
def budget_monitoring(request: HttpRequest, pk: int) -> HttpResponse:
    budget = _staff_budget(request, pk)
    bound = {name: form_class(prefix=name) for name, form_class in FORMS.items()}
    problem = None
    action = request.POST.get("action", "")
    if request.method == "POST":
        try:
            if action in FORMS:
                form = bound[action] = FORMS[action](request.POST, prefix=action)
                if form.is_valid():
                    _act(action, budget, form.cleaned_data, request.user)
                    return redirect("budgets:monitoring", pk=budget.pk)
            elif action == "resume":
                monitoring.suspension_end(budget=budget, acting_user=request.user)
                return redirect("budgets:monitoring", pk=budget.pk)
            elif action in ("offset", "dismissed") and request.user.has_perm("budgets.run_payments"):
                alert = budget.surplus_alerts.filter(status="open").first()
                if alert is None:
                    raise BudgetError("There is no open surplus alert")
                monitoring.surplus_resolve(alert=alert, action=action, acting_user=request.user)
                return redirect("budgets:monitoring", pk=budget.pk)
        except (BudgetError, BrokerageError) as exc:
            problem = str(exc)
    budget.plan.refresh_from_db()
    return render(
        request,
        "budgets/monitoring/budget.jinja",
        {
            "budget": budget,
            "forms": bound,
            "problem": problem,
            "reviews": budget.reviews.all(),
            "returns": budget.dp_returns.select_related("holder"),
            "alerts": SurplusAlert.objects.filter(budget=budget),
            "suspension": budget.suspensions.filter(ended_on__isnull=True).first(),
            "stops": budget.stop_decisions.all(),
            "is_finance": request.user.has_perm("budgets.run_payments"),
            # Rules 9 and 10: spending flagged for checking, and what was decided about the rest.
            "flagged": spending.flagged_spending(budget),
            "checked": spending.flagged_spending(budget, checked=True),
            "may_check": spending.may_check_spending(request.user, budget),
            "may_recover": request.user.has_perm("budgets.recover_money"),
        },
    )


def _act(action: str, budget: Budget, data: dict, user) -> None:
    if action == "trigger":
        monitoring.review_trigger(budget=budget, reason=data["reason"], note=data["note"], acting_user=user)
    elif action == "suspend":
        monitoring.suspension_start(budget=budget, reason=data["reason"], reasons=data["reasons"], acting_user=user)
    else:
        monitoring.stop_decide(budget=budget, ground=data["ground"], reasons=data["reasons"], acting_user=user)


class ReviewForm(forms.Form):
    participants = forms.CharField(
        label="Who took part?",
        help_text="One name on each line, with their role",
        widget=forms.Textarea,
        max_length=2000,
        error_messages={"required": "Say who took part in the review"},
    )
    decision = forms.ChoiceField(
        label="Decision",
        choices=ReviewDecision.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose the decision"},
    )
    reasons = forms.CharField(
        label="Reasons for the decision",
        required=False,
        widget=forms.Textarea,
        max_length=4000,
        help_text="Needed unless nothing changes",
    )

    def __init__(self, *args, outcomes, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcome_fields = []
        for outcome in outcomes:
            name = f"outcome_{outcome.pk}"
            self.fields[name] = forms.ChoiceField(
                label=outcome.description,
                choices=OutcomeProgress.choices,
                widget=forms.RadioSelect,
                error_messages={"required": f"Say how far this outcome is achieved: {outcome.description[:60]}"},
            )
            self.outcome_fields.append((outcome.pk, name))

    def clean(self):
        data = super().clean()
        if (
            data.get("decision")
            and data["decision"] != ReviewDecision.NO_CHANGE
            and not data.get("reasons", "").strip()
        ):
            self.add_error("reasons", "Give the reasons for the decision")
        return data


@login_required
def review(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        item = Review.objects.select_related("budget__plan__person").get(
            pk=pk, budget__plan__in=plan_selectors.plans_visible_to(request.user)
        )
    except Review.DoesNotExist as exc:
        raise Http404 from exc
    budget = item.budget
    if not request.user.has_perm("brokerage.run_budget", budget.plan):
        raise Http404
    form = ReviewForm(request.POST or None, outcomes=budget.plan.outcomes.all())
    if request.method == "POST" and item.completed_on is None and form.is_valid():
        data = form.cleaned_data
        try:
            monitoring.review_start(review=item, acting_user=request.user)
            monitoring.review_complete(
                review=item,
                participants=data["participants"],
                progress={pk: (data[name], "") for pk, name in form.outcome_fields},
                decision=data["decision"],
                reasons=data["reasons"],
                acting_user=request.user,
            )
            if data["decision"] == ReviewDecision.VARY:  # straight on to the new version of the plan
                return redirect("brokerage:plan", pk=budget.plan.person.plans.order_by("-version").first().pk)
            return redirect("budgets:monitoring", pk=budget.pk)
        except (BudgetError, BrokerageError) as exc:
            form.add_error(None, str(exc))
    return render(request, "budgets/monitoring/review.jinja", {"review": item, "budget": budget, "form": form})


# --- Checking flagged spending (rules 9 and 10) -----------------------------------------------------------


class SpendCheckForm(forms.Form):
    decision = forms.ChoiceField(
        label="What have you decided?",
        widget=forms.RadioSelect,
        error_messages={"required": spending.CHECK_CHOOSE, "invalid_choice": spending.CHECK_CHOOSE},
    )
    line = forms.ModelChoiceField(
        label="The part of the plan it paid for",
        help_text="Only when you code it to a line of the plan",
        queryset=None,
        required=False,
        error_messages={"invalid_choice": spending.CHECK_LINE},
    )
    reasons = forms.CharField(
        label="Reasons",
        help_text="Needed to accept it or refer it for recovery. The person may ask to read them",
        widget=forms.Textarea,
        required=False,
        max_length=2000,
        error_messages={"max_length": "Keep the reasons to 2,000 characters or fewer"},
    )

    def __init__(self, *args, item: spending.FlaggedSpend, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(value, label) for value, label in SpendCheck.choices]
        if item.can_be_coded:
            self.fields["line"].queryset = spending.check_lines(item)
            self.fields["line"].label_from_instance = lambda line: line.plan_line.description
        else:  # already on a line (a prohibited purchase): it is accepted or referred, not coded again
            choices = [(value, label) for value, label in choices if value != SpendCheck.CODED]
            del self.fields["line"]
        self.fields["decision"].choices = choices

    def clean(self):
        data = super().clean()
        decision = data.get("decision")
        if decision == SpendCheck.CODED and not data.get("line") and "line" not in self.errors:
            self.add_error("line", spending.CHECK_LINE)
        if decision in spending.CHECK_REASONS and not data.get("reasons", "").strip() and "reasons" not in self.errors:
            self.add_error("reasons", spending.CHECK_REASONS[decision])
        return data


@login_required
def purchase_check(request: HttpRequest, pk: int, purchase_pk: int) -> HttpResponse:
    return _spend_check(request, pk, "purchase", purchase_pk)


@login_required
def holder_spend_check(request: HttpRequest, pk: int, holder_spend_pk: int) -> HttpResponse:
    return _spend_check(request, pk, "holder", holder_spend_pk)


def _spend_check(request: HttpRequest, pk: int, kind: str, spend_pk: int) -> HttpResponse:
    """One flagged item: what was paid and why it was flagged, and the care coordinator's or broker's decision."""
    budget = _staff_budget(request, pk)
    item = spending.flagged_spend_get(budget, kind, spend_pk)
    if item is None or not spending.may_check_spending(request.user, budget):
        raise Http404
    form = SpendCheckForm(request.POST if request.method == "POST" else None, item=item)
    if request.method == "POST" and item.spend.check_decision:
        form.add_error(None, spending.CHECK_DONE)  # checked meanwhile, by someone else or a second click
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            checked = spending.spend_check(
                item=item,
                decision=data["decision"],
                line=data.get("line"),
                reasons=data["reasons"],
                acting_user=request.user,
            )
            messages.success(
                request,
                f"Checked: {checked.spend.payee}, {checked.spend.get_check_decision_display().lower()}.",
            )
            return redirect("budgets:monitoring", pk=budget.pk)
        except BudgetError as exc:
            form.add_error(None, str(exc))
    return render(
        request,
        "budgets/monitoring/spend_check.jinja",
        {"budget": budget, "item": item, "form": form, "may_recover": request.user.has_perm("budgets.recover_money")},
    )


# --- The person's side ------------------------------------------------------------------------------------


class ReturnForm(forms.Form):
    kind = forms.ChoiceField(
        label="What are you sending?",
        choices=EvidenceKind.choices,
        error_messages={"required": "Choose what you are sending"},
    )
    file = forms.FileField(
        label="Upload the document",
        help_text="A PDF, JPEG or PNG file, smaller than 10MB",
        error_messages={
            "required": "Upload a bank statement, timesheet or invoice",
            "empty": "The file you chose is empty",
        },
    )
    notes = forms.CharField(
        label="Anything you want to tell us (optional)", required=False, widget=forms.Textarea, max_length=2000
    )
    declaration = forms.BooleanField(
        label="I confirm the direct payment was spent only on the support in the plan, and these records are true",
        error_messages={"required": "Confirm the declaration"},
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > RECEIPT_MAX_BYTES:
            raise forms.ValidationError("The file must be smaller than 10MB")
        return sniff_upload(upload)


@login_required
def my_returns(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        budget = person_selectors.my_budget(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    due = budget.dp_returns.filter(submitted_at__isnull=True, holder__isnull=True).order_by("period_start")
    current = due.first()
    form = ReturnForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and current is not None and form.is_valid():
        data = form.cleaned_data
        try:
            monitoring.return_submit(
                dp_return=current,
                evidence=[(data["kind"], data["file"])],
                declaration=data["declaration"],
                notes=data["notes"],
                acting_user=request.user,
            )
            return redirect("budgets:my-returns", pk=budget.pk)
        except BudgetError as exc:
            form.add_error(None, str(exc))
    return render(
        request,
        "budgets/monitoring/my_returns.jinja",
        {
            "budget": budget,
            "current": current,
            "form": form,
            "returns": DirectPaymentReturn.objects.filter(budget=budget, holder__isnull=True).order_by("-period_start"),
        },
    )


@login_required
def my_consent(request: HttpRequest, pk: int) -> HttpResponse:
    """Withdrawing consent: a plain confirmation page, then the budget stops at once (rule 17)."""
    try:
        budget = person_selectors.my_budget(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    problem = None
    if request.method == "POST" and request.POST.get("confirm") == "withdraw":
        try:
            monitoring.consent_withdraw(budget=budget, acting_user=request.user)
            return redirect("budgets:my-budget", pk=budget.pk)
        except (BudgetError, BrokerageError) as exc:
            problem = str(exc)
    return render(request, "budgets/monitoring/my_consent.jinja", {"budget": budget, "problem": problem})


class ReconsiderRequestForm(forms.Form):
    evidence = forms.CharField(
        label="Why should we look at this again?",
        help_text="Tell us what we got wrong and what shows it, for example receipts or a letter from the provider",
        widget=forms.Textarea,
        max_length=4000,
        error_messages={"required": "Tell us why we should look at this again"},
    )


@login_required
def my_reconsideration(request: HttpRequest, pk: int, recovery_pk: int) -> HttpResponse:
    """The person (or their representative or nominee) asks for a recovery notice to be reconsidered (rule 18):
    it is paused until someone other than its issuer decides."""
    from budgets import ending

    try:
        budget = person_selectors.my_budget(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    recovery = budget.recoveries.filter(pk=recovery_pk).first()
    if recovery is None:
        raise Http404
    form = ReconsiderRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ending.recovery_reconsider(
                recovery=recovery, evidence=form.cleaned_data["evidence"], acting_user=request.user
            )
            return redirect("budgets:my-budget", pk=budget.pk)
        except (BudgetError, ending.EndingError) as exc:
            form.add_error(None, str(exc))
    return render(
        request, "budgets/monitoring/my_reconsider.jinja", {"budget": budget, "recovery": recovery, "form": form}
    )
