"""Monitoring with time moved by time-machine: the 3-month and yearly reviews, a late return escalating, the
surplus alert at 8 weeks and not at 7, a suspension and resumption, a withdrawal of consent. After each the
ledger verifies and the audit rows are there."""

import datetime
import json

import pytest
import time_machine
from django.db import connection

from accounts.roles import Role
from brokerage.exceptions import TransitionRefused
from brokerage.models import CarePlan, PlanEvent, PlanStatus
from budgets import monitoring, payment_runs, selectors, services, spending
from budgets.models import (
    DirectPaymentReturn,
    PaymentKind,
    PaymentStatus,
    Review,
    ReviewReason,
    ScheduledPayment,
    StopDecision,
    SurplusAlert,
    Suspension,
)
from ledger.verification import ledger_verify
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


def at(day: datetime.date):
    return time_machine.travel(datetime.datetime.combine(day, datetime.time(7, 0)), tick=False)


@pytest.fixture
def live(agreed):
    agreed["budget"] = budget_in_use(agreed, start=START)
    return agreed


def plan_status(crew) -> str:
    return CarePlan.objects.get(pk=crew["plan"].pk).status


def complete(review, crew, decision="no_change", reasons="", day=None):
    progress = {outcome.pk: ("partly", "Getting there") for outcome in crew["plan"].outcomes.all()}
    return monitoring.review_complete(
        review=review,
        participants="Joan Robson\nCare coordinator",
        progress=progress,
        decision=decision,
        reasons=reasons,
        acting_user=crew["coordinator"],
        today=day,
    )


def test_an_open_review_of_a_version_replaced_since_is_no_longer_listed_as_overdue(live):
    with at(datetime.date(2027, 2, 1)):
        monitoring.monitoring_run()
    first = Review.objects.get()
    with at(datetime.date(2027, 3, 10)):
        assert list(selectors.overdue_reviews(live["coordinator"])) == [first]
        CarePlan.objects.filter(pk=live["plan"].pk).update(status=PlanStatus.VARIED)  # a new version took over
        assert list(selectors.overdue_reviews(live["coordinator"])) == []


def test_the_first_review_is_due_3_months_after_the_first_payment_then_yearly(live):
    with at(datetime.date(2027, 2, 1)):
        monitoring.monitoring_run()
        monitoring.monitoring_run()  # a second run creates nothing twice
    first = Review.objects.get()
    assert (first.reason, first.due_on) == (ReviewReason.FIRST, datetime.date(2027, 3, 1))
    with at(datetime.date(2027, 3, 10)):
        assert list(selectors.overdue_reviews(live["coordinator"])) == [first]
        assert list(selectors.overdue_reviews(live["approver"])) == [first]  # the ICB sees it too
        assert list(selectors.overdue_reviews(user_with_role(Role.CARE_COORDINATOR))) == []  # not theirs
        monitoring.review_start(review=first, acting_user=live["coordinator"])
        assert plan_status(live) == PlanStatus.UNDER_REVIEW
        with pytest.raises(services.BudgetError, match="each outcome"):
            monitoring.review_complete(
                review=first,
                participants="Joan",
                progress={},
                decision="no_change",
                reasons="",
                acting_user=live["coordinator"],
            )
        complete(first, live)
    assert plan_status(live) == PlanStatus.ACTIVE
    annual = Review.objects.get(completed_on__isnull=True)
    assert (annual.reason, annual.due_on) == (ReviewReason.ANNUAL, datetime.date(2028, 3, 10))
    assert first.outcomes.count() == live["plan"].outcomes.count()
    assert Review.pgh_event_model.objects.filter(pgh_obj_id=first.pk).count() >= 2  # created, then completed
    assert PlanEvent.objects.filter(plan=live["plan"], transition="finish_review").exists()
    assert ledger_verify().ok


def test_a_social_care_direct_payment_is_first_reviewed_at_6_months(live):
    plan = live["plan"]
    total = plan.funding_icb + plan.funding_local_authority
    CarePlan.objects.filter(pk=plan.pk).update(funding_icb=0, funding_local_authority=total.amount)
    budget = live["budget"]
    budget.refresh_from_db()
    review = monitoring.reviews_schedule(budget)
    assert review.due_on == datetime.date(2027, 6, 1)


def test_a_review_deciding_to_vary_starts_a_new_version_to_approve(live):
    review = monitoring.review_trigger(
        budget=live["budget"], reason=ReviewReason.HEALTH_CHANGE, note="Needs more support", today=START
    )
    with at(START):
        complete(review, live, decision="vary", reasons="More hours of support needed")
    versions = CarePlan.objects.filter(person=live["plan"].person).order_by("version")
    assert [plan.status for plan in versions] == [PlanStatus.ACTIVE, PlanStatus.DRAFT]
    with pytest.raises(services.BudgetError, match="Say what the concern"):
        monitoring.review_trigger(budget=live["budget"], reason=ReviewReason.CONCERN, note=" ")


def test_a_late_return_escalates_step_by_step_and_calls_a_review(live, empty_job_queue):
    with at(datetime.date(2027, 3, 5)):
        monitoring.monitoring_run()
    dp_return = DirectPaymentReturn.objects.get(holder=None)
    assert (dp_return.period_end, dp_return.due_on) == (datetime.date(2027, 2, 28), datetime.date(2027, 3, 28))
    levels = []
    for day in (
        datetime.date(2027, 4, 3),
        datetime.date(2027, 4, 4),
        datetime.date(2027, 4, 18),
        datetime.date(2027, 5, 9),
    ):
        with at(day):
            monitoring.returns_escalate()
            monitoring.returns_escalate()  # safe to run twice
        dp_return.refresh_from_db()
        levels.append(dp_return.escalation_level)
    assert levels == [0, 1, 2, 3]
    assert Review.objects.filter(reason=ReviewReason.LATE_RETURNS).count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT args FROM procrastinate_jobs WHERE task_name = 'accounts.send_email'")
        bodies = [json.loads(args)["body"] for (args,) in cursor.fetchall()]
    # The person (no sign-in here) cannot be emailed; the coordinator is told at steps 2 and 3 of each return.
    assert sum("The direct-payment return for" in body for body in bodies) == 2
    assert sum("The return from " in body for body in bodies) == 2


def test_the_surplus_alert_fires_above_8_weeks_and_not_at_7(live):
    budget = live["budget"]
    annual = sum(line.annual_pence for line in budget.lines.filter(management_type="direct_payment"))
    held = budget.accounts.get(purpose="held:direct-payment").account
    held.refresh_from_db()
    seven_weeks = annual * 7 // 52

    def top_up_to(target, key):
        held.refresh_from_db()
        with at(START):  # money in is dated today or earlier
            spending.dp_money_in_record(
                budget=budget,
                received_on=START,
                amount_pence=target - held.posted_balance,
                payer="Joan Robson",
                source="contribution",
                key=key,
                acting_user=live["finance"],
            )

    top_up_to(seven_weeks, "to-7-weeks")
    assert monitoring.surplus_check(budget) is None
    top_up_to(annual * 8 // 52 + 1, "past-8-weeks")
    alert = monitoring.surplus_check(budget)
    assert alert.surplus_pence == 1 and monitoring.surplus_check(budget) is None  # one open alert at a time
    assert Review.objects.filter(reason=ReviewReason.SURPLUS).count() == 1
    monitoring.surplus_resolve(alert=alert, action="offset", acting_user=live["finance"])
    offset = ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT, offset_pence__gt=0).get()
    assert offset.offset_pence == 1
    assert SurplusAlert.pgh_event_model.objects.filter(pgh_obj_id=alert.pk).count() == 2


def test_the_person_is_still_paid_while_their_plan_is_under_review(live):
    """A review is routine: the instalment that falls due during it is gathered and paid as usual."""
    budget = live["budget"]
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=live["icb"])
    review = monitoring.review_trigger(
        budget=budget, reason="concern", note="Carer unwell", acting_user=live["coordinator"], today=START
    )
    monitoring.review_start(review=review, acting_user=live["coordinator"])
    assert plan_status(live) == PlanStatus.UNDER_REVIEW
    with at(datetime.date(2026, 12, 29)):
        run, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 29), acting_user=live["finance"])
    assert {(item.scheduled_payment.budget_id, item.scheduled_payment.due_on) for item in run.items.all()} >= {
        (budget.pk, datetime.date(2026, 12, 29))
    }
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    assert payment_runs.payment_run_post(run=run, acting_user=live["finance"]).status == "posted"
    paid = ScheduledPayment.objects.filter(budget=budget, due_on=datetime.date(2026, 12, 29))
    assert set(paid.values_list("status", flat=True)) == {PaymentStatus.PAID}
    assert plan_status(live) == PlanStatus.UNDER_REVIEW and ledger_verify().ok


def test_a_run_prepared_before_a_suspension_cannot_be_approved_and_is_discarded_and_prepared_again(live):
    budget = live["budget"]
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=live["icb"])
    with at(datetime.date(2026, 12, 29)):
        run, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 29), acting_user=live["finance"])
        assert run.items.filter(scheduled_payment__budget=budget).exists()
        monitoring.suspension_start(
            budget=budget, reason="hospital", reasons="In hospital for 10 weeks", acting_user=live["coordinator"]
        )
        with pytest.raises(services.BudgetError, match=r"can no longer be paid: Joan Robson \(the plan is suspended\)"):
            payment_runs.payment_run_approve(run=run, acting_user=manager)
        payment_runs.payment_run_discard(run=run, acting_user=manager)
        run.refresh_from_db()
        assert run.status == "discarded" and not run.items.exists()
        assert run.pgh_event_model.objects.filter(pgh_obj_id=run.pk, status="discarded").exists()
        with pytest.raises(services.BudgetError, match="Only a run waiting for approval"):
            payment_runs.payment_run_discard(run=run, acting_user=manager)
        again, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 29), acting_user=live["finance"])
    assert not again.items.filter(scheduled_payment__budget=budget).exists()  # suspended: left out


def test_a_run_approved_before_a_suspension_pays_what_was_approved(live):
    """Approval releases the run to the bank: the ledger records what was sent, whatever happens after."""
    budget = live["budget"]
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=live["icb"])
    with at(datetime.date(2026, 12, 29)):
        run, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 29), acting_user=live["finance"])
        payment_runs.payment_run_approve(run=run, acting_user=manager)
        monitoring.suspension_start(
            budget=budget, reason="hospital", reasons="In hospital for 10 weeks", acting_user=live["coordinator"]
        )
        assert payment_runs.payment_run_post(run=run, acting_user=live["finance"]).status == "posted"
    paid = ScheduledPayment.objects.filter(budget=budget, due_on=datetime.date(2026, 12, 29))
    assert set(paid.values_list("status", flat=True)) == {PaymentStatus.PAID} and ledger_verify().ok


def test_a_suspension_stops_payments_and_resuming_skips_what_fell_due(live):
    budget = live["budget"]
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=live["icb"])
    with at(datetime.date(2026, 12, 10)):
        with pytest.raises(services.BudgetError, match="reasons"):
            monitoring.suspension_start(budget=budget, reason="hospital", reasons="", acting_user=live["coordinator"])
        monitoring.suspension_start(
            budget=budget, reason="hospital", reasons="In hospital for 10 weeks", acting_user=live["coordinator"]
        )
    assert plan_status(live) == PlanStatus.SUSPENDED
    with at(datetime.date(2027, 1, 5)):
        run, _ = payment_runs.payment_run_create(run_date=datetime.date(2027, 1, 5), acting_user=live["finance"])
        assert run.items.count() == 0  # nothing is paid while suspended
    with at(datetime.date(2027, 2, 20)):
        monitoring.suspension_end(budget=budget, acting_user=live["coordinator"])
    assert plan_status(live) == PlanStatus.ACTIVE
    skipped = ScheduledPayment.objects.filter(budget=budget, status=PaymentStatus.SKIPPED)
    assert {p.due_on for p in skipped} == {datetime.date(2026, 12, 29), datetime.date(2027, 1, 26)}
    with at(datetime.date(2027, 2, 23)):
        run, _ = payment_runs.payment_run_create(run_date=datetime.date(2027, 2, 23), acting_user=live["finance"])
    assert {item.scheduled_payment.due_on for item in run.items.all()} == {datetime.date(2027, 2, 23)}
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    payment_runs.payment_run_post(run=run, acting_user=live["finance"])
    assert Suspension.pgh_event_model.objects.count() == 2 and ledger_verify().ok


def test_withdrawing_consent_stops_at_once_other_grounds_need_reasons(live):
    patient = user_with_role(Role.PATIENT)
    person = live["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    with pytest.raises(services.BudgetError, match="reasons"):
        monitoring.stop_decide(budget=live["budget"], ground="misuse", reasons="", acting_user=live["coordinator"])
    assert plan_status(live) == PlanStatus.ACTIVE
    with at(datetime.date(2027, 1, 4)):
        decision = monitoring.consent_withdraw(budget=live["budget"], acting_user=patient)
    assert plan_status(live) == PlanStatus.STOPPING
    assert decision.ends_on == datetime.date(2027, 2, 1)  # the 28-day notice period runs
    assert StopDecision.pgh_event_model.objects.count() == 1
    assert PlanEvent.objects.filter(transition="withdraw_consent", by=patient).exists()
    other = user_with_role(Role.PATIENT)
    with pytest.raises(TransitionRefused, match="You cannot withdraw consent"):
        monitoring.consent_withdraw(budget=budget_in_use_other(), acting_user=other)


def budget_in_use_other():
    from tests.brokerage.helpers import agreed_crew

    return budget_in_use(agreed_crew(), start=START)


def test_a_third_party_holders_late_return_escalates_and_its_submission_stops_it(live, empty_job_queue):
    holder = live["budget"].lines.get(management_type="third_party").plan_line.third_party_holder
    staff = user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder)
    with at(datetime.date(2027, 3, 5)):
        monitoring.monitoring_run()
    due = DirectPaymentReturn.objects.get(holder=holder)
    assert (due.period_start, due.due_on) == (START, datetime.date(2027, 3, 28))
    with at(datetime.date(2027, 4, 4)):
        monitoring.returns_escalate()
    due.refresh_from_db()
    assert due.escalation_level == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT args FROM procrastinate_jobs WHERE task_name = 'accounts.send_email'")
        recipients = [json.loads(args)["to"] for (args,) in cursor.fetchall()]
    assert [staff.email] in recipients  # the holder's staff are reminded, not the person
    with at(datetime.date(2027, 4, 10)):
        spending.holder_return_submit(
            budget=live["budget"],
            holder=holder,
            period_start=START,
            period_end=datetime.date(2027, 2, 28),
            note="Timesheets attached",
            acting_user=staff,
        )
    with at(datetime.date(2027, 5, 20)):
        assert (
            monitoring.returns_escalate() == 0
            or not DirectPaymentReturn.objects.filter(holder=holder, escalation_level__gt=1).exists()
        )
    due.refresh_from_db()
    assert due.submitted_at is not None and due.escalation_level == 1
    assert not Review.objects.filter(reason=ReviewReason.LATE_RETURNS, raised_note__contains="holder").exists()
