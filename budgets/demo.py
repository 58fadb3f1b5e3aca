"""Demo budgets: every plan the brokerage demo agreed and meant to go further is set up for real, paid
through payment runs and invoices up to today, then taken to its intended state (review, suspension,
stopping, final audit, closing, or a variation)."""

from __future__ import annotations

import csv
import datetime
import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import models
from django.utils import timezone

from accounts.roles import Role
from brokerage import services as plans
from brokerage.models import CarePlan
from budgets import ending, funder_payments, invoices, monitoring, payment_runs, reports, services, spending
from budgets.card_payments import stripe_balance_account
from budgets.models import (
    Budget,
    DirectPaymentAccount,
    HolderBankAccount,
    PaymentStatus,
    ScheduledPayment,
    SurplusAlert,
)
from budgets.services import BudgetError
from ledger import services as ledger
from ledger.models import AccountKind, CashAccount, CsvMapping, StatementSource, Transfer


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
        budget = plan.budget_record
        coordinator = users[Role.CARE_COORDINATOR]
        for name in steps:
            if name in ("start_setting_up", "activate"):
                continue
            # The monitoring services take the plan there, with the records a real team would leave behind.
            if name == "start_review":
                review = monitoring.review_trigger(
                    budget=budget, reason="concern", note="Carer reports Joan is struggling at night", today=today
                )
                monitoring.review_start(review=review, acting_user=coordinator)
            elif name == "suspend":
                monitoring.suspension_start(
                    budget=budget, reason="hospital", reasons="In hospital after a fall", acting_user=coordinator
                )
            elif name == "stop":
                monitoring.stop_decide(
                    budget=budget,
                    ground=rng.choice(["consent_withdrawn", "not_eligible"]),
                    reasons="No longer eligible for continuing healthcare after review",
                    acting_user=coordinator,
                )
            elif name == "begin_final_audit":
                decision = budget.stop_decisions.get()
                ending.final_audit_begin(budget=budget, acting_user=finance, today=decision.ends_on)
                owed = ending.liability_record(
                    budget=budget,
                    kind="holiday_pay",
                    payee="Karen Dobson (PA)",
                    amount_pence=18_450,
                    acting_user=finance,
                )
                ending.liability_pay(liability=owed, acting_user=finance)
            elif name == "close":
                close_the_budget(budget, today=today, finance=finance, manager=manager)
            else:
                plans.plan_transition(plan=plan, name=name, acting_user=finance)
            plan.refresh_from_db()
    # Most people send their returns; a few are late. Then what the daily task would have done by now: reviews
    # scheduled, late returns escalated, surplus alerts raised.
    for budget in Budget.objects.filter(plan__status__in=monitoring.LIVE):
        for dp_return in monitoring.returns_schedule(budget, today):
            if rng.random() < 0.8:
                statement = ContentFile(DEMO_PDF, name=f"statement-{dp_return.period_end}.pdf")
                statement.content_type = "application/pdf"
                monitoring.return_submit(
                    dp_return=dp_return,
                    evidence=[("bank_statement", statement)],
                    declaration=True,
                    notes="",
                    acting_user=budget.plan.person.user or finance,
                )
    monitoring.monitoring_run(today)
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
        start = services.earliest_start(new, today)  # the old version paid this month's instalment already
        set_up_and_pay(new, start=start, today=today, rng=rng, finance=finance, manager=manager, pay=True)
    ask_for_money_back(today=today, finance=finance, manager=manager)
    local_authorities_pay(
        today=today,
        finance=finance,
        icb=context["organisations"]["icb"],
        local_authority=context["organisations"]["la"],
    )
    seed_reconciliation(today=today, rng=rng)


def local_authorities_pay(*, today: datetime.date, finance, icb, local_authority) -> None:
    """The demo's local authority pays what the last quarter's recharges asked of it, early this month, so the
    recharges show it paid and this month's bank statement has its credit to match by reference."""
    quarter = reports.Quarter.last_completed(today)
    owed = sum(
        statement.net
        for statement in reports.recharges(quarter).statements
        if statement.key == ("local_authority", local_authority.pk)
    )
    if owed > 0:
        funder_payments.funder_payment_record(
            icb=icb,
            local_authority=local_authority,
            quarter=quarter,
            amount_pence=owed,
            received_on=today.replace(day=min(3, today.day)),
            reference=f"{local_authority.ods_code or 'LA'} RECHARGE {quarter.code}",
            key=f"demo:{quarter.code}:{local_authority.pk}",
            acting_user=finance,
        )


STATEMENT_DIR = settings.BASE_DIR / "var" / "demo"


def demo_statement_path(today: datetime.date) -> Path:
    return STATEMENT_DIR / f"natwest-{today:%Y-%m}.csv"


def seed_reconciliation(*, today: datetime.date, rng: random.Random) -> None:
    """The ICB's bank account and Stripe balance set up for reconciling from the 1st of this month, and this
    month's bank statement written as the bank would give it (one line per payment run, the repayments, and a
    charge the ledger does not know about yet) for finance to import on the Reconciliation page."""
    start = today.replace(day=1)
    ledger.account_open(code="icb:bank-charges", name="Bank charges", kind=AccountKind.EXPENSE, owner_ref="icb")
    mapping, _ = CsvMapping.objects.get_or_create(
        name="NatWest",
        defaults={
            "date_column": "Date",
            "date_format": "%d/%m/%Y",
            "description_column": "Description",
            "amount_column": "Value",
            "balance_column": "Balance",
            "reference_column": "Reference",
        },
    )
    bank_account = ending.icb_bank_account()
    opening = _balance_before(bank_account, start)
    CashAccount.objects.get_or_create(
        account=bank_account,
        defaults={
            "name": "ICB personal health budgets account (NatWest)",
            "source": StatementSource.CSV,
            "csv_mapping": mapping,
            "reconcile_from": start,
            "opening_balance": opening,
        },
    )
    stripe_account = stripe_balance_account()
    CashAccount.objects.get_or_create(
        account=stripe_account,
        defaults={
            "name": "Stripe (card payments)",
            "source": StatementSource.STRIPE,
            "reconcile_from": start,
            "opening_balance": _balance_before(stripe_account, start),
        },
    )
    moves = Transfer.objects.filter(
        models.Q(debit_account=bank_account) | models.Q(credit_account=bank_account),
        effective_date__gte=start,
        effective_date__lte=today,
        phase="posted",
    ).order_by("effective_date", "id")
    lines: dict[tuple, list] = {}  # one bank line per payment run, one per other movement
    for move in moves:
        signed = move.amount if move.debit_account_id == bank_account.pk else -move.amount
        run, recharge = move.code == "bacs_payment", move.code == funder_payments.RECEIVED_TRANSFER_CODE
        key = (move.effective_date, move.reference) if run else (move.effective_date, move.pk)
        text = "BACS PAYMENT FILE" if run else "FASTER PAYMENT " + move.description[:40].upper()
        reference = move.reference if run or recharge else ""
        lines.setdefault(key, [move.effective_date, text, reference, 0])[3] += signed
    rows = sorted(lines.values(), key=lambda row: row[0])
    rows.append([today, "SERVICE CHARGE", "", -rng.choice([450, 750, 1250])])
    STATEMENT_DIR.mkdir(parents=True, exist_ok=True)
    balance = opening
    with demo_statement_path(today).open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Date", "Type", "Description", "Reference", "Value", "Balance"])
        for day, text, reference, amount in rows:
            balance += amount
            kind = "BAC" if text.startswith("BACS") else ("CHG" if amount < 0 and not reference else "TFR")
            writer.writerow([f"{day:%d/%m/%Y}", kind, text, reference, f"{amount / 100:.2f}", f"{balance / 100:.2f}"])


def _balance_before(account, day: datetime.date) -> int:
    sums = Transfer.objects.filter(effective_date__lt=day, phase="posted").aggregate(
        debits=models.Sum("amount", filter=models.Q(debit_account=account), default=0),
        credits=models.Sum("amount", filter=models.Q(credit_account=account), default=0),
    )
    return sums["debits"] - sums["credits"]


# A one-line stand-in for a scanned bank statement: the demo's returns need some evidence attached.
DEMO_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def close_the_budget(budget, *, today, finance, manager) -> None:
    """What third-party holders still hold comes back, the balance left after the liabilities is asked back and
    repaid by bank transfer, and the budget is closed."""
    for _name, _balance, purpose in ending.final_audit(budget).third_party_balances:
        ending.holder_balance_returned(budget=budget, purpose=purpose, acting_user=finance, today=today)
    audit = ending.final_audit(budget)
    if audit.recoverable > 0:
        person = budget.plan.person
        notice = ending.recovery_propose(
            budget=budget,
            reasons="The budget has ended: this is what was left in the account after paying what was owed",
            amount_pence=audit.recoverable,
            deadline=today + datetime.timedelta(days=28),
            addressee="person",
            addressee_name=person.full_name,
            acting_user=finance,
            from_balance=True,
        )
        notice = ending.recovery_approve(recovery=notice, acting_user=manager)
        ending.recovery_repaid(
            recovery=notice,
            amount_pence=audit.recoverable,
            key=f"demo-close:{budget.pk}",
            acting_user=finance,
            method="bank",
        )
    ending.budget_close(budget=budget, acting_user=manager)


def ask_for_money_back(*, today, finance, manager) -> None:
    """Recoveries in progress: a surplus offset against the next instalment (rule 15) with what is left asked
    back in a notice waiting for a finance manager's approval (rule 4), and money spent outside the plan that the
    person has asked to be reconsidered."""
    alert = SurplusAlert.objects.filter(status="open").select_related("budget__plan__person").first()
    if alert is not None:
        budget = alert.budget
        try:
            monitoring.surplus_resolve(alert=alert, action="offset", acting_user=finance)
            offset = ScheduledPayment.objects.filter(budget=budget, offset_pence__gt=0).order_by("due_on").first()
        except BudgetError:  # no instalment left to offset against: it is all asked back
            offset = None
        left = alert.surplus_pence - (offset.offset_pence if offset else 0)
        if left > 0:
            ending.recovery_propose(
                budget=budget,
                reasons="More has built up in the account than the plan needs, even after taking some off the "
                "next payment",
                amount_pence=left,
                deadline=today + datetime.timedelta(days=28),
                addressee="person",
                addressee_name=budget.plan.person.full_name,
                acting_user=finance,
                from_balance=True,
                surplus_alert=None if offset else alert,
            )
    # A reduction on notice: a new version asks for 10% less; the old amounts are paid until the notice ends.
    reduced = (
        Budget.objects.filter(plan__status__in=["active", "under_review", "suspended"])
        .exclude(plan__person__plans__version__gt=models.F("plan__version"))
        .order_by("pk")
        .first()
    )
    if reduced is not None:
        draft = plans.plan_create(person=reduced.plan.person, acting_user=finance)
        CarePlan.objects.filter(pk=draft.pk).update(budget=draft.budget.amount * 9 / 10)
        draft.refresh_from_db()
        ending.reduction_notice_issue(
            budget=reduced,
            new_plan=draft,
            reasons="The review found two visits a week are no longer needed",
            effective_on=today + datetime.timedelta(days=reduced.plan.notice_period_days),
            acting_user=finance,
            today=today,
        )
    spent = (
        Budget.objects.filter(plan__status__in=["active", "under_review"], dp_spends__isnull=False)
        .exclude(pk=getattr(reduced, "pk", None))
        .annotate(uncoded=models.Count("dp_spends", filter=models.Q(dp_spends__flag="uncoded")))
        .order_by("-uncoded", "pk")
        .first()
    )
    if spent is not None:
        uncoded = spent.dp_spends.order_by("-flag", "amount_pence").first()  # uncoded first, if any
        notice = ending.recovery_propose(
            budget=spent,
            reasons=f"£{uncoded.amount_pence / 100:,.2f} was paid to {uncoded.payee} "
            "without a receipt showing it was for the plan",
            amount_pence=uncoded.amount_pence,
            deadline=today + datetime.timedelta(days=28),
            addressee="person",
            addressee_name=spent.plan.person.full_name,
            acting_user=finance,
        )
        notice = ending.recovery_approve(recovery=notice, acting_user=manager)
        ending.recovery_reconsider(
            recovery=notice, evidence="The shop sold the continence pads the plan pays for", acting_user=finance
        )


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
    # Earlier months were paid before reconciliation began; this month's go through payment runs, so the bank
    # statement the demo writes has runs to match (seed_reconciliation).
    due = ScheduledPayment.objects.filter(budget=budget, status=PaymentStatus.DUE, due_on__lte=today)
    for payment in due.filter(due_on__lt=today.replace(day=1)):
        services.scheduled_payment_pay(payment=payment, acting_user=finance)
    if due.exists():
        run, _left_out = payment_runs.payment_run_create(run_date=today, acting_user=finance)
        payment_runs.payment_run_approve(run=run, acting_user=manager)
        payment_runs.payment_run_post(run=run, acting_user=finance)
    for payment in due.all():  # no bank details yet: paid by hand, as finance would
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
