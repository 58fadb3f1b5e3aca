"""The plan's payment amount (rule 2) is worked out from its lines, so the plan says what the budget will pay.

Journey 1's plan pays £300 a year as a direct payment and £5,096 a year through the trust; district nursing is
notional. Every 4 weeks: £300 / 13 = £23.07 (the year's last instalment takes the rounding) and
£5,096 / 13 = £392.00, so £415.07 in all.
"""

import datetime
import re

import pytest
from django.urls import reverse
from djmoney.money import Money

from brokerage import services as plans
from brokerage.models import ManagementType, PlanLine
from budgets import services
from budgets.models import ScheduledPayment
from tests.brokerage.helpers import complete_plan, make_person, team

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_submitted_payment_amount_is_what_the_budget_pays_each_period(agreed):
    plan = agreed["plan"]
    assert plan.payment_amount == Money("415.07", "GBP")  # recorded when it was submitted

    budget = services.budget_set_up(plan=plan, acting_user=agreed["finance"], start_date=START)
    first = ScheduledPayment.objects.filter(budget=budget, due_on=START)
    assert sorted(first.values_list("amount_pence", flat=True)) == [2307, 39200]
    assert sum(first.values_list("amount_pence", flat=True)) == 41507
    # The year adds up: the last instalment takes the rounding the plan's amount leaves out.
    direct = ScheduledPayment.objects.filter(budget=budget, kind="direct_payment").order_by("due_on")
    assert sum(direct.values_list("amount_pence", flat=True)) == 30000
    assert direct.last().amount_pence == 30000 - 2307 * 12


def test_the_payments_page_shows_each_frequency_s_instalment_and_the_summary_splits_it_by_payee(client):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    plan = complete_plan(person=person, broker=crew["broker"])
    client.force_login(crew["broker"])

    page = text(client.get(reverse("brokerage:plan-section", kwargs={"pk": plan.pk, "section": "payments"})))
    assert "Every 4 weeks, in advance: £415.07 each payment" in page
    assert "Monthly, in advance: £449.66 each payment" in page  # £25.00 + £424.66
    assert "Once a year: £5,396.00 each payment" in page
    assert "Payment amount" not in page  # nothing to type: it cannot disagree with the lines

    summary = text(client.get(reverse("brokerage:plan-check", kwargs={"pk": plan.pk})))
    assert "£415.07, every 4 weeks, in advance" in summary
    assert "£23.07 to the direct-payment account" in summary
    assert "£392.00 to Tyneside Independent User Trust" in summary

    # Changing a line changes the amount; a posted "payment_amount" is ignored.
    line = PlanLine.objects.get(plan=plan, management_type=ManagementType.DIRECT_PAYMENT)
    plans.plan_item_remove(plan=plan, acting_user=crew["broker"], item=line)
    response = client.post(
        reverse("brokerage:plan-section", kwargs={"pk": plan.pk, "section": "payments"}),
        {
            "payment_amount": "999.99",
            "payment_frequency": "monthly",
            "contingency_amount": "500",
            "contingency_description": "Agency cover",
        },
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.payment_per_period == Money("424.66", "GBP")
    assert "£424.66, monthly, in advance" in text(client.get(reverse("brokerage:plan-check", kwargs={"pk": plan.pk})))


def test_a_notional_only_plan_has_no_instalments_and_can_still_be_submitted(client):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    plan = complete_plan(person=person, broker=crew["broker"])
    for line in PlanLine.objects.filter(plan=plan).exclude(management_type=ManagementType.NOTIONAL):
        plans.plan_item_remove(plan=plan, acting_user=crew["broker"], item=line)
    client.force_login(crew["broker"])
    assert "No instalments: the ICB pays for the services directly" in text(
        client.get(reverse("brokerage:plan-check", kwargs={"pk": plan.pk}))
    )
    plans.plan_submit(plan=plan, acting_user=crew["broker"])
    plan.refresh_from_db()
    assert plan.payment_amount == Money(0, "GBP")
