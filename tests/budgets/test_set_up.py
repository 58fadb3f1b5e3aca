"""Setting a budget up from journey 1's agreed three-line plan, checked against the ledger to the penny."""

import datetime

import pytest

from accounts.roles import Role
from brokerage import services as plans
from brokerage.models import PlanStatus
from budgets import services
from budgets.models import BudgetAccount, PaymentKind, PaymentStatus, ScheduledPayment
from ledger import selectors as ledger_selectors
from ledger.models import Account, Transfer
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


def balance(budget, purpose) -> Account:
    return Account.objects.get(pk=BudgetAccount.objects.get(budget=budget, purpose=purpose).account_id)


def test_set_up_opens_the_chart_allocates_ring_fences_commits_and_schedules(agreed):
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    agreed["plan"].refresh_from_db()
    assert agreed["plan"].status == PlanStatus.SETTING_UP
    purposes = set(budget.accounts.values_list("purpose", flat=True))
    lines = {line.management_type: line for line in budget.lines.all()}
    holder = lines["third_party"].plan_line.third_party_holder_id
    assert purposes == {
        "funding:icb",
        "held:icb",
        "contingency",
        "held:direct-payment",
        f"held:third-party:{holder}",
        *(f"spend:line:{line.plan_line_id}" for line in lines.values()),
    }
    # £12,000 allocated; £572 contingency ring-fenced; first 4-weekly period of district nursing committed
    # (£6,032 / 13 = £464.00, pending).
    assert balance(budget, "funding:icb").posted_balance == 1_200_000
    assert balance(budget, "contingency").posted_balance == 57_200
    held = balance(budget, "held:icb")
    assert (held.posted_balance, held.available_balance) == (1_200_000 - 57_200, 1_200_000 - 57_200 - 46_400)
    nursing = balance(budget, f"spend:line:{lines['notional'].plan_line_id}")
    assert (nursing.posted_balance, nursing.pending_balance) == (0, 46_400)
    # Thirteen instalments of the £300 direct payment and of the £5,096 third-party line, adding up exactly.
    for kind, annual in ((PaymentKind.DIRECT_PAYMENT, 30_000), (PaymentKind.THIRD_PARTY, 509_600)):
        payments = ScheduledPayment.objects.filter(budget=budget, kind=kind)
        assert payments.count() == 13 and sum(p.amount_pence for p in payments) == annual
        assert [p.due_on for p in payments][:2] == [START, START + datetime.timedelta(days=28)]
    assert ledger_selectors.trial_balance().balances


def test_the_first_payment_makes_the_plan_active_and_paying_twice_pays_once(agreed):
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    first_dp = ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT).first()
    services.scheduled_payment_pay(payment=first_dp, acting_user=agreed["finance"])
    services.scheduled_payment_pay(payment=first_dp, acting_user=agreed["finance"])
    agreed["plan"].refresh_from_db()
    assert agreed["plan"].status == PlanStatus.ACTIVE
    assert ScheduledPayment.objects.get(pk=first_dp.pk).status == PaymentStatus.PAID
    assert Transfer.objects.filter(idempotency_key=first_dp.transfer_key).count() == 1
    assert balance(budget, "held:direct-payment").posted_balance == first_dp.amount_pence == 30_000 // 13
    holder_payment = ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.THIRD_PARTY).first()
    services.scheduled_payment_pay(payment=holder_payment, acting_user=agreed["finance"])
    held = balance(budget, "held:icb")
    assert held.posted_balance == 1_200_000 - 57_200 - first_dp.amount_pence - holder_payment.amount_pence
    assert ledger_selectors.trial_balance().balances


def test_a_notional_only_budget_is_in_use_from_its_start_date_with_reviews_and_can_be_stopped(agreed):
    """Most budgets are notional: nothing is paid out to the person or a holder, so no instalment can mark the
    budget as in use. It is active from set-up, its first review is 3 months on, and it can be suspended or
    stopped like any other."""
    from brokerage.models import PlanLine
    from budgets import monitoring

    PlanLine.objects.filter(plan=agreed["plan"]).update(management_type="notional", third_party_holder=None)
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    agreed["plan"].refresh_from_db()
    assert agreed["plan"].status == PlanStatus.ACTIVE and not budget.payments.exists()
    assert budget.first_paid_on == START
    assert agreed["plan"].transitions.filter(transition="activate", by=agreed["finance"]).exists()
    review = monitoring.reviews_schedule(budget)
    assert (review.reason, review.due_on) == ("first", datetime.date(2027, 3, 1))
    monitoring.stop_decide(
        budget=budget, ground="needs_not_met", reasons="Needs met by the NHS", acting_user=agreed["coordinator"]
    )
    agreed["plan"].refresh_from_db()
    assert agreed["plan"].status == PlanStatus.STOPPING


def test_no_budget_without_an_agreed_plan_and_never_twice(agreed):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    draft = complete_plan(person=person, broker=crew["broker"])
    with pytest.raises(services.BudgetError, match="agreed plan"):
        services.budget_set_up(plan=draft, acting_user=agreed["finance"])
    services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    with pytest.raises(services.BudgetError):
        services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    assert Transfer.objects.filter(reference__startswith="budget:").count() > 0


def test_people_outside_finance_and_the_team_cannot_set_budgets_up(agreed):
    outsider = user_with_role(Role.PATIENT)
    with pytest.raises(plans.errors.TransitionRefused):
        services.budget_set_up(plan=agreed["plan"], acting_user=outsider, start_date=START)
    agreed["plan"].refresh_from_db()
    assert agreed["plan"].status == PlanStatus.AGREED
    assert not Account.objects.filter(owner_ref__startswith="budget:").exists()


def test_monthly_and_quarterly_schedules_add_up():
    assert services.period_dates(datetime.date(2026, 1, 31), "monthly")[1] == datetime.date(2026, 2, 28)
    assert len(services.period_dates(datetime.date(2026, 1, 1), "quarterly")) == 4
    assert sum(services.split(100_001, 13)) == 100_001
