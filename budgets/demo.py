"""Demo budgets: every plan the brokerage demo agreed and meant to go further is set up for real, paid
through payment runs and invoices up to today, then taken to its intended state (review, suspension,
stopping, final audit, closing, or a variation)."""

from __future__ import annotations

import datetime
import random

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.roles import Role
from brokerage import services as plans
from brokerage.models import CarePlan
from budgets import invoices, services, spending
from budgets.models import DirectPaymentAccount, HolderBankAccount, PaymentStatus, ScheduledPayment


def seed(*, rng: random.Random, people: int, context: dict) -> None:
    steps_by_plan = context.get("money_steps", {})
    if not steps_by_plan:
        return
    users = context["users"]
    finance, manager = users[Role.FINANCE_OFFICER], users[Role.FINANCE_MANAGER]
    holder = context["organisations"]["trust"]
    HolderBankAccount.objects.get_or_create(
        organisation=holder,
        defaults={"account_name": "TYNESIDE IUT", "sort_code": "401162", "account_number": "71234567"},
    )
    today = timezone.localdate()
    for plan_pk, steps in steps_by_plan.items():
        plan = CarePlan.objects.get(pk=plan_pk)
        activate = "activate" in steps
        start = today - datetime.timedelta(weeks=rng.randint(4, 44)) if activate else today + datetime.timedelta(days=7)
        set_up_and_pay(plan, start=start, today=today, rng=rng, finance=finance, manager=manager, pay=activate)
        plan.refresh_from_db()  # the first payment activated it through another instance
        for name in steps:
            if name in ("start_setting_up", "activate"):
                continue
            plans.plan_transition(
                plan=plan,
                name=name,
                acting_user=finance if name not in ("start_review", "finish_review") else users[Role.CARE_COORDINATOR],
            )
    for plan_pk in context.get("vary", []):
        old = CarePlan.objects.get(pk=plan_pk)
        new = plans.plan_create(person=old.person, acting_user=users[Role.CARE_BROKER])
        plans.plan_submit(plan=new, acting_user=users[Role.CARE_BROKER])
        plans.plan_approve(plan=new, acting_user=users[Role.ICB_APPROVER])
        plans.plan_record_agreement(
            plan=new,
            acting_user=users[Role.CARE_BROKER],
            agreed_by_name=old.person.full_name,
            agreed_on=today,
            icb_signatory=users[Role.ICB_APPROVER],
        )
        set_up_and_pay(new, start=today, today=today, rng=rng, finance=finance, manager=manager, pay=True)


PAYEES = ["Harmony Singers", "Tyne Taxis", "Swim Newcastle", "Gym Pass Ltd", "Carers Direct", "Art Space CIC"]


def spend_the_payments(budget, *, rng, today, recorder) -> None:
    """Most of each payment is spent within its four weeks: the person's purchases against their direct-payment
    line (now and then one not coded to a line, flagged for review), the holder's against the lines it holds."""
    dp_line = budget.lines.filter(management_type="direct_payment").first()
    for payment in ScheduledPayment.objects.filter(budget=budget, status=PaymentStatus.PAID).select_related("holder"):
        for number in range(2):
            spent_on = min(payment.due_on + datetime.timedelta(days=rng.randint(2, 26)), today)
            amount = payment.amount_pence * rng.randint(35, 46) // 100
            key = f"demo:{payment.pk}:{number}"
            if payment.kind == "direct_payment" and dp_line is not None:
                coded = rng.random() > 0.06
                spending.dp_spend_record(
                    budget=budget,
                    line=dp_line if coded else None,
                    payee=rng.choice(PAYEES) if coded else "Corner Shop",
                    spent_on=spent_on,
                    amount_pence=amount,
                    key=key,
                    acting_user=recorder,
                )
            elif payment.kind == "third_party":
                line = budget.lines.filter(plan_line__third_party_holder=payment.holder).first()
                spending.holder_spend_record(
                    budget=budget,
                    holder=payment.holder,
                    line=line,
                    payee="Carers Direct Ltd",
                    spent_on=spent_on,
                    amount_pence=amount,
                    key=key,
                    acting_user=get_user_model().objects.filter(organisation=payment.holder).first() or recorder,
                )


def set_up_and_pay(plan, *, start, today, rng, finance, manager, pay: bool) -> None:
    budget = services.budget_set_up(plan=plan, acting_user=finance, start_date=start)
    person = plan.person
    DirectPaymentAccount.objects.create(
        budget=budget,
        kind=rng.choice(["bank", "prepaid_card", "managed"]),
        account_name=f"{person.family_name} PHB".upper()[:18],
        sort_code=f"{rng.randint(10, 99)}0000",
        account_number=f"{rng.randint(10_000_000, 99_999_999)}",
        signatories=person.full_name,
    )
    if not pay:
        return
    for payment in ScheduledPayment.objects.filter(budget=budget, status=PaymentStatus.DUE, due_on__lte=today):
        services.scheduled_payment_pay(payment=payment, acting_user=finance)
    spend_the_payments(budget, rng=rng, today=today, recorder=plan.person.user or finance)
    # The provider invoices each elapsed four weeks of the notional line, a little under the order.
    for line in budget.lines.filter(management_type="notional"):
        period = 0
        while (
            commitment := invoices.open_commitment(line)
        ) is not None and commitment.effective_date + datetime.timedelta(days=27) <= today:
            period += 1
            invoice = invoices.invoice_record(
                line=line,
                provider=line.plan_line.provider,
                invoice_number=f"{line.pk}-{period:03d}",
                invoice_date=commitment.effective_date + datetime.timedelta(days=27),
                amount_pence=commitment.amount - rng.randint(0, 3) * 5_800,
                acting_user=finance,
            )
            invoices.invoice_approve(invoice=invoice, acting_user=manager)
            invoices.invoice_pay(invoice=invoice, acting_user=finance)
