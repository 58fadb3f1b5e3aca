"""Keeping an eye on a live budget: reviews (rule 13), returns and their escalation (rule 20), surplus alerts
(rule 14), suspension and resumption (rule 16) and stopping (rule 17).

The scheduled parts (`reviews_schedule`, `returns_schedule`, `returns_escalate`, `surplus_check`) are idempotent:
the daily task may run them twice, or late, and nothing is created twice.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import Organisation, User
from accounts.tasks import send_email
from brokerage import services as plans
from brokerage.models import CarePlan, ManagementType, PlanStatus
from budgets import ending, letters
from budgets.models import (
    Budget,
    DirectPaymentReturn,
    PaymentStatus,
    ReturnEvidence,
    Review,
    ReviewDecision,
    ReviewOutcome,
    ReviewReason,
    ScheduledPayment,
    StopDecision,
    StopGround,
    StopReconsideration,
    SurplusAlert,
    SurplusStatus,
    Suspension,
)
from budgets.services import BudgetError, dp_surplus, surplus_offset

LIVE = (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.SUSPENDED, PlanStatus.STOPPING)
SCHEDULED = (ReviewReason.FIRST, ReviewReason.ANNUAL)


def add_months(day: datetime.date, months: int) -> datetime.date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    days_in_month = (datetime.date(year + month // 12, month % 12 + 1, 1) - datetime.timedelta(days=1)).day
    return day.replace(year=year, month=month, day=min(day.day, days_in_month))


def _today(today: datetime.date | None) -> datetime.date:
    return today or timezone.localdate()


# --- Reviews ----------------------------------------------------------------------------------------------


def is_social_care(budget: Budget) -> bool:
    """A social-care direct payment (the local authority's money only) follows the 6-month first review; anything
    with NHS money follows the stricter health rule."""
    plan = budget.plan
    return plan.funding_icb.amount == 0 and plan.funding_local_authority.amount > 0


def reviews_schedule(budget: Budget) -> Review | None:
    """Make sure the next scheduled review exists: the first within 3 (health) or 6 (social care) months of the
    first payment, then within 12 months of the last review completed, whatever its reason."""
    if budget.first_paid_on is None:
        return None
    if budget.reviews.filter(reason__in=SCHEDULED, completed_on__isnull=True).exists():
        return None
    if not budget.reviews.filter(reason=ReviewReason.FIRST).exists():
        months = (
            settings.REVIEW_FIRST_MONTHS_SOCIAL_CARE if is_social_care(budget) else settings.REVIEW_FIRST_MONTHS_HEALTH
        )
        reason, due_on = ReviewReason.FIRST, add_months(budget.first_paid_on, months)
    else:
        last = budget.reviews.aggregate(last=Max("completed_on"))["last"]
        reason, due_on = ReviewReason.ANNUAL, add_months(last, settings.REVIEW_INTERVAL_MONTHS)
    review, _ = Review.objects.get_or_create(budget=budget, reason=reason, due_on=due_on)
    return review


def review_trigger(*, budget: Budget, reason: str, note: str = "", acting_user=None, today=None) -> Review:
    """A review called for by a concern, a health change, a surplus or late returns: due now. An open review
    for the same reason is reused rather than doubled."""
    if reason in SCHEDULED or reason not in ReviewReason.values:
        raise BudgetError("Choose why the review is needed")
    if reason in (ReviewReason.CONCERN, ReviewReason.HEALTH_CHANGE) and not note.strip():
        raise BudgetError("Say what the concern or change is")
    existing = budget.reviews.filter(reason=reason, completed_on__isnull=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Review.objects.create(
                budget=budget, reason=reason, due_on=_today(today), raised_note=note, raised_by=acting_user
            )
    except IntegrityError:  # raised twice the same day
        return budget.reviews.get(reason=reason, due_on=_today(today))


def review_complete(
    *,
    review: Review,
    participants: str,
    progress: dict[int, tuple[str, str]],
    decision: str,
    reasons: str,
    acting_user,
    today=None,
) -> Review:
    """Record the review: who took part, each outcome of the plan assessed, and the decision, then act on it:
    a variation starts a new version of the plan (approved again), a suspension or stop goes ahead with the
    review's reasons. The next scheduled review is then set."""
    today = _today(today)
    budget, plan = review.budget, review.budget.plan
    if review.completed_on is not None:
        raise BudgetError("This review has already been completed")
    if not participants.strip():
        raise BudgetError("Say who took part in the review")
    outcomes = {outcome.pk: outcome for outcome in plan.outcomes.all()}
    if set(progress) != set(outcomes):
        raise BudgetError("Say how far each outcome of the plan has been achieved")
    if decision not in ReviewDecision.values:
        raise BudgetError("Choose the decision")
    if decision != ReviewDecision.NO_CHANGE and not reasons.strip():
        raise BudgetError("Give the reasons for the decision")
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        if review.completed_on is not None:
            raise BudgetError("This review has already been completed")
        for outcome_id, (level, notes) in progress.items():
            ReviewOutcome.objects.create(review=review, outcome=outcomes[outcome_id], progress=level, notes=notes)
        review.completed_on, review.completed_by = today, acting_user
        review.participants, review.decision, review.decision_reasons = participants, decision, reasons
        review.save()
        plan.refresh_from_db()
        if plan.status == PlanStatus.UNDER_REVIEW and decision != ReviewDecision.STOP:
            plans.plan_transition(plan=plan, name="finish_review", acting_user=acting_user, reasons="Review completed")
        if decision == ReviewDecision.VARY:
            plans.plan_create(person=plan.person, acting_user=acting_user)
        elif decision == ReviewDecision.SUSPEND:
            suspension_start(budget=budget, reason="breach", reasons=reasons, acting_user=acting_user, today=today)
        elif decision == ReviewDecision.STOP:
            stop_decide(
                budget=budget, ground=StopGround.NEEDS_NOT_MET, reasons=reasons, acting_user=acting_user, today=today
            )
        reviews_schedule(budget)
    return review


def review_start(*, review: Review, acting_user) -> None:
    """The plan shows it is under review while the review is being done."""
    plan = review.budget.plan
    plan.refresh_from_db()
    if plan.status == PlanStatus.ACTIVE:
        plans.plan_transition(
            plan=plan, name="start_review", acting_user=acting_user, reasons=review.get_reason_display()
        )


# --- Returns ----------------------------------------------------------------------------------------------


def _has_direct_payment(budget: Budget) -> bool:
    return budget.lines.filter(management_type=ManagementType.DIRECT_PAYMENT).exists()


def returns_schedule(budget: Budget, today=None) -> list[DirectPaymentReturn]:
    """One return per period (quarterly by default) from the first payment, for each period that has ended:
    from the direct-payment holder, and from each third-party holder of the budget."""
    today = _today(today)
    if budget.first_paid_on is None:
        return []
    holders = list(
        Organisation.objects.filter(
            pk__in=budget.lines.exclude(plan_line__third_party_holder=None).values("plan_line__third_party_holder")
        )
    )
    returners = ([None] if _has_direct_payment(budget) else []) + holders
    created, start = [], budget.first_paid_on
    while (end := add_months(start, settings.RETURN_PERIOD_MONTHS) - datetime.timedelta(days=1)) < today:
        for holder in returners:
            dp_return, made = DirectPaymentReturn.objects.get_or_create(
                budget=budget,
                holder=holder,
                period_start=start,
                defaults={"period_end": end, "due_on": end + datetime.timedelta(days=settings.RETURN_DUE_DAYS)},
            )
            if made:
                created.append(dp_return)
        start = end + datetime.timedelta(days=1)
    return created


def return_submit(*, dp_return: DirectPaymentReturn, evidence, declaration: bool, notes: str, acting_user):
    """Evidence is a list of (kind, checked upload with its content_type)."""
    if dp_return.submitted_at is not None:
        raise BudgetError("This return has already been submitted")
    if not declaration:
        raise BudgetError("Confirm the declaration")
    if not evidence:
        raise BudgetError("Upload at least one bank statement, timesheet or invoice")
    with transaction.atomic():
        for kind, upload in evidence:
            ReturnEvidence.objects.create(dp_return=dp_return, kind=kind, file=upload, content_type=upload.content_type)
        updated = DirectPaymentReturn.objects.filter(pk=dp_return.pk, submitted_at__isnull=True).update(
            submitted_at=timezone.now(), submitted_by=acting_user, declaration=True, notes=notes
        )
        if not updated:
            raise BudgetError("This return has already been submitted")
    dp_return.refresh_from_db()
    return dp_return


def returns_escalate(today=None) -> int:
    """Step late returns up, once per step: a reminder to the person, then the coordinator is told, then a
    review is called. Returns how many steps were taken."""
    today = _today(today)
    steps = settings.RETURN_ESCALATION_DAYS
    taken = 0
    late = DirectPaymentReturn.objects.filter(submitted_at__isnull=True, due_on__lt=today).select_related(
        "budget__plan__person__user", "budget__plan__care_coordinator"
    )
    for dp_return in late:
        days_late = (today - dp_return.due_on).days
        level = sum(1 for threshold in steps if days_late >= threshold)
        if level <= dp_return.escalation_level:
            continue
        with transaction.atomic():
            updated = DirectPaymentReturn.objects.filter(
                pk=dp_return.pk, escalation_level=dp_return.escalation_level
            ).update(escalation_level=level, escalated_on=today)
            if not updated:
                continue  # another worker took this step
            _escalate(dp_return, level, days_late, today)
        taken += 1
    return taken


def _escalate(dp_return: DirectPaymentReturn, level: int, days_late: int, today) -> None:
    plan = dp_return.budget.plan
    period = f"{dp_return.period_start:%-d %B %Y} to {dp_return.period_end:%-d %B %Y}"
    if level >= 1 and dp_return.holder_id:
        staff = User.objects.filter(organisation_id=dp_return.holder_id, role_memberships__role="third_party_staff")
        if staff:
            send_email.defer(
                subject=f"Your return for {plan.person.full_name}'s budget is late",
                body=f"The return for {period} was due on {dp_return.due_on:%-d %B %Y}. Please submit it from "
                "Budgets we hold.",
                to=sorted({user.email for user in staff}),
            )
    elif level >= 1 and plan.person.user_id:
        send_email.defer(
            subject="Your direct-payment return is late",
            body=f"Your return for {period} was due on {dp_return.due_on:%-d %B %Y}. Please send it as soon as "
            "you can: sign in and choose Returns.",
            to=[plan.person.user.email],
        )
    if level >= 2 and plan.care_coordinator_id:
        send_email.defer(
            subject=f"Return {days_late} days late: {plan.person.full_name}",
            body=f"The {'return from ' + dp_return.holder.name if dp_return.holder_id else 'direct-payment return'} "
            f"for {period} is {days_late} days late.",
            to=[plan.care_coordinator.email],
        )
    if level >= 3:
        review_trigger(
            budget=dp_return.budget,
            reason=ReviewReason.LATE_RETURNS,
            note=f"The return for {period} is {days_late} days late",
            today=today,
        )


# --- Surplus ----------------------------------------------------------------------------------------------


def surplus_check(budget: Budget, today=None) -> SurplusAlert | None:
    """Rule 14: alert (once while open) when the account holds more than N weeks of scheduled spend, and call
    a review."""
    status = CarePlan.objects.filter(pk=budget.plan_id).values_list("status", flat=True).get()  # never stale
    if status not in (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW) or not _has_direct_payment(budget):
        return None
    surplus = dp_surplus(budget)
    if surplus <= 0 or budget.surplus_alerts.filter(status=SurplusStatus.OPEN).exists():
        return None
    try:
        with transaction.atomic():
            alert = SurplusAlert.objects.create(
                budget=budget, raised_on=_today(today), surplus_pence=surplus, weeks=settings.SURPLUS_WEEKS
            )
            review_trigger(
                budget=budget, reason=ReviewReason.SURPLUS, note=f"{surplus / 100:,.2f} pounds above", today=today
            )
    except IntegrityError:  # another worker raised it at the same moment
        return None
    return alert


def surplus_resolve(*, alert: SurplusAlert, action: str, acting_user, today=None) -> SurplusAlert:
    """The finance officer decides: offset against the next instalment (rule 15), or no action. A recovery is
    opened from the recovery pages and marks the alert there."""
    if alert.status != SurplusStatus.OPEN:
        raise BudgetError("This surplus has already been dealt with")
    if action == SurplusStatus.OFFSET:
        if surplus_offset(budget=alert.budget) is None:
            raise BudgetError("There is no instalment to offset the surplus against")
    elif action not in (SurplusStatus.DISMISSED, SurplusStatus.RECOVERY):
        raise BudgetError("Choose what to do about the surplus")
    SurplusAlert.objects.filter(pk=alert.pk, status=SurplusStatus.OPEN).update(
        status=action, resolved_by=acting_user, resolved_on=_today(today)
    )
    alert.refresh_from_db()
    return alert


# --- Suspension and stopping ------------------------------------------------------------------------------


def suspension_start(*, budget: Budget, reason: str, reasons: str, acting_user, today=None) -> Suspension:
    if not reasons.strip():
        raise BudgetError("Give the reasons for the suspension")
    plan = budget.plan
    plan.refresh_from_db()
    with transaction.atomic():
        if plan.status == PlanStatus.UNDER_REVIEW:
            plans.plan_transition(plan=plan, name="finish_review", acting_user=acting_user, reasons="Suspending")
        plans.plan_transition(plan=plan, name="suspend", acting_user=acting_user, reasons=reasons)
        suspension = Suspension.objects.create(
            budget=budget, reason=reason, reasons=reasons, started_on=_today(today), started_by=acting_user
        )
        ending.letter_for_suspension(suspension)  # the written notice is part of the record
    return suspension


def suspension_end(*, budget: Budget, acting_user, today=None) -> Suspension:
    """Resume: what fell due while suspended is not paid (it is marked skipped), and any surplus built up is
    offset against the next instalment before payments start again."""
    today = _today(today)
    suspension = budget.suspensions.filter(ended_on__isnull=True).first()
    if suspension is None:
        raise BudgetError("This budget is not suspended")
    with transaction.atomic():
        plan = budget.plan
        plan.refresh_from_db()
        plans.plan_transition(plan=plan, name="resume", acting_user=acting_user, reasons="Suspension ended")
        ScheduledPayment.objects.filter(
            budget=budget, status=PaymentStatus.DUE, due_on__gte=suspension.started_on, due_on__lt=today
        ).filter(Q(run_item__isnull=True)).update(status=PaymentStatus.SKIPPED)
        suspension.ended_on, suspension.ended_by = today, acting_user
        suspension.save(update_fields=["ended_on", "ended_by"])
        if _has_direct_payment(budget):
            surplus_offset(budget=budget)
    return suspension


def consent_withdraw(*, budget: Budget, acting_user, today=None) -> StopDecision:
    """Rule 17: the person withdrawing consent stops the budget at once; the notice period runs from today."""
    today = _today(today)
    plan = budget.plan
    plan.refresh_from_db()
    with transaction.atomic():
        plans.plan_transition(plan=plan, name="withdraw_consent", acting_user=acting_user, reasons="Consent withdrawn")
        decision = StopDecision.objects.create(
            budget=budget,
            ground=StopGround.CONSENT_WITHDRAWN,
            decided_by=acting_user,
            decided_on=today,
            ends_on=today + datetime.timedelta(days=plan.notice_period_days),
        )
        ending.letter_for_stop(decision)
    return decision


def stop_decide(*, budget: Budget, ground: str, reasons: str, acting_user, today=None) -> StopDecision:
    """Any other ground needs a decision with reasons (rule 17)."""
    today = _today(today)
    if ground == StopGround.CONSENT_WITHDRAWN:
        return consent_withdraw(budget=budget, acting_user=acting_user, today=today)
    if ground not in StopGround.values:
        raise BudgetError("Choose why the budget is stopping")
    if not reasons.strip():
        raise BudgetError("Give the reasons for stopping the budget")
    plan = budget.plan
    plan.refresh_from_db()
    with transaction.atomic():
        plans.plan_transition(plan=plan, name="stop", acting_user=acting_user, reasons=reasons)
        decision = StopDecision.objects.create(
            budget=budget,
            ground=ground,
            reasons=reasons,
            decided_by=acting_user,
            decided_on=today,
            ends_on=today + datetime.timedelta(days=plan.notice_period_days),
        )
        ending.letter_for_stop(decision)
    return decision


STOP_NOT_RECONSIDERABLE = (
    "Only a decision the ICB made to stop can be reconsidered, not a withdrawal of consent or a death"
)
STOP_NOT_STOPPING = "The budget is no longer stopping, so there is nothing to reconsider"
STOP_ALREADY_RECONSIDERED = "This decision to stop has already been reconsidered"
STOP_NOT_RECONSIDERING = "Nobody has asked for this decision to stop to be reconsidered"
STOP_CANNOT_DECIDE = "Only an ICB approver for this person, who did not decide to stop, can decide a reconsideration"


def stop_reconsider(*, decision: StopDecision, asked_by: str, reasons: str, acting_user, today=None) -> StopDecision:
    """The person (or someone for them) asks for a decision to stop to be looked at again (rule 5): the final audit
    waits until an ICB approver decides."""
    if not asked_by.strip():
        raise BudgetError("Say who is asking for the decision to be reconsidered")
    if not reasons.strip():
        raise BudgetError("Give their reasons, and any evidence they sent")
    with transaction.atomic():
        decision = StopDecision.objects.select_for_update().select_related("budget__plan").get(pk=decision.pk)
        if not decision.can_be_reconsidered:
            raise BudgetError(STOP_NOT_RECONSIDERABLE)
        if decision.reconsideration_asked_on is not None:
            raise BudgetError(STOP_ALREADY_RECONSIDERED)
        if decision.budget.plan.status != PlanStatus.STOPPING:
            raise BudgetError(STOP_NOT_STOPPING)
        decision.reconsideration_asked_by = asked_by.strip()
        decision.reconsideration_reasons = reasons.strip()
        decision.reconsideration_asked_on = _today(today)
        decision.reconsideration_recorded_by = acting_user
        decision.save()
    return decision


def can_decide_stop(decision: StopDecision, user) -> bool:
    return user.pk != decision.decided_by_id and user.has_perm("brokerage.approve_careplan", decision.budget.plan)


def stop_reconsider_decide(
    *, decision: StopDecision, outcome: str, reasons: str, acting_user, today=None
) -> StopDecision:
    """Decide a reconsideration of a stop, with reasons, by an ICB approver who did not decide to stop (rule 4). If
    overturned the budget goes back to what it was (active, or suspended if a suspension is still open) and
    instalments that fell due meanwhile are paid by the next run. The outcome is sent as a letter."""
    if outcome not in StopReconsideration.values:
        raise BudgetError("Choose whether the decision to stop stands or is overturned")
    if not reasons.strip():
        raise BudgetError("Give the reasons for the decision")
    with transaction.atomic():
        decision = StopDecision.objects.select_for_update().select_related("budget__plan").get(pk=decision.pk)
        if not decision.reconsidering:
            raise BudgetError(STOP_NOT_RECONSIDERING)
        if not can_decide_stop(decision, acting_user):
            raise BudgetError(STOP_CANNOT_DECIDE)
        if outcome == StopReconsideration.OVERTURNED:
            budget = decision.budget
            plan = CarePlan.objects.get(pk=budget.plan_id)
            suspended = budget.suspensions.filter(ended_on__isnull=True).exists()
            plans.plan_transition(
                plan=plan,
                name="reinstate_suspended" if suspended else "reinstate",
                acting_user=acting_user,
                reasons=f"Decision to stop overturned on reconsideration: {reasons.strip()}",
            )
        decision.reconsideration_outcome = outcome
        decision.reconsideration_decision_reasons = reasons.strip()
        decision.reconsideration_decided_by = acting_user
        decision.reconsideration_decided_on = _today(today)
        decision.save()
        letters.letter_for_stop_decision(decision)
    return decision


# --- The daily run ----------------------------------------------------------------------------------------


def monitoring_run(today=None) -> dict[str, int]:
    """What the daily task does, safe to run twice: schedule reviews and returns, escalate late returns, check
    for surplus."""
    today = _today(today)
    counts = {"reviews": 0, "returns": 0, "escalations": 0, "surplus_alerts": 0}
    for budget in Budget.objects.filter(plan__status__in=LIVE).select_related("plan"):
        counts["reviews"] += reviews_schedule(budget) is not None
        counts["returns"] += len(returns_schedule(budget, today))
        counts["surplus_alerts"] += surplus_check(budget, today) is not None
    counts["escalations"] = returns_escalate(today)
    return counts
