"""Setting a budget up from an agreed plan, and paying its scheduled payments.

`budget_set_up` is the one place a plan moves from agreed to setting up: in one transaction it opens the
budget's accounts, allocates the year's funding, ring-fences the contingency, commits the first period of
each notional line and writes the payment schedule. The first payment made moves the plan to active.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from brokerage import services as plans
from brokerage.models import PERIODS_A_YEAR, CarePlan, ManagementType, PaymentFrequency, PlanStatus
from budgets.models import (
    Budget,
    BudgetAccount,
    BudgetLine,
    DirectPaymentAccount,
    HolderBankAccount,
    PaymentKind,
    PaymentStatus,
    ReductionNotice,
    ScheduledPayment,
)
from config.formatting import format_date
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.models import AccountKind
from ledger.services import TransferRequest


class BudgetError(Exception):
    """The budget cannot be set up or paid as asked; nothing changed."""


# Instalments are paid while the budget is being set up, in use, or being reviewed: a review is routine and must
# never cut the person's money off. Suspended, stopping and ended budgets are not paid.
PAYABLE = (PlanStatus.SETTING_UP, PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW)


def pence(money) -> int:
    return int((money.amount * 100).to_integral_value())


def period_dates(start: datetime.date, frequency: str) -> list[datetime.date]:
    """Payment dates for the first year, in advance: the first on the start date."""
    count = PERIODS_A_YEAR[frequency]
    if frequency == PaymentFrequency.FOUR_WEEKLY:
        return [start + datetime.timedelta(days=28 * n) for n in range(count)]
    months = 12 // count
    dates = []
    for n in range(count):
        month_index = start.month - 1 + n * months
        year, month = start.year + month_index // 12, month_index % 12 + 1
        dates.append(start.replace(year=year, month=month, day=min(start.day, 28)))
    return dates


def split(total: int, parts: int) -> list[int]:
    """Equal shares of `total` pence; the last absorbs the rounding so the year adds up exactly."""
    share = total // parts
    return [share] * (parts - 1) + [total - share * (parts - 1)]


def budget_set_up(*, plan: CarePlan, acting_user, start_date: datetime.date | None = None) -> Budget:
    start_date = start_date or timezone.localdate()
    if plan.status != PlanStatus.AGREED:
        raise BudgetError("Only an agreed plan can have its budget set up (no money without an agreed plan)")
    with transaction.atomic():
        notice = _reduction_notice_for(plan)
        _check_no_overlap(plan, start_date)
        plans.plan_start_setting_up(plan=plan, acting_user=acting_user)  # retires the version it replaces
        budget = Budget.objects.create(
            plan=plan, start_date=start_date, annual_pence=pence(plan.budget), set_up_by=acting_user
        )
        accounts = _open_accounts(budget, plan)
        lines = [
            BudgetLine.objects.create(
                budget=budget,
                plan_line=line,
                management_type=line.management_type,
                annual_pence=pence(line.annual_cost),
                spend_account=accounts[f"spend:line:{line.pk}"],
            )
            for line in plan.lines.select_related("third_party_holder")
        ]
        ledger.transfers_record(_opening_transfers(budget, plan, accounts, lines), acting_user=acting_user)
        extra = _write_schedule(budget, plan, lines, notice=notice)
        if extra > 0:
            _fund_notice_period(budget, plan, accounts, notice, extra, acting_user)
        if not budget.payments.exists():
            # Notional lines only: nothing is paid out to wait for; the first service order above is the money
            # committed, so the budget is in use, and its reviews run, from its start date.
            budget.first_paid_on = start_date
            budget.save(update_fields=["first_paid_on"])
            plans.plan_transition(
                plan=plan, name="activate", acting_user=acting_user, reasons="Services ordered (notional budget)"
            )
    return budget


OVERLAPS_OLD_VERSION = (
    "The version this replaces has paid for the period up to {day}: start this budget on {day} or later, so nothing "
    "is paid twice"
)


def _paid_until(plan: CarePlan) -> datetime.date | None:
    """For a new version: the day the old version's payments have paid up to, the due date of its first instalment
    after the last one paid (or sent in a payment run); None when the old version paid nothing."""
    if not plan.previous_id:
        return None
    old = ScheduledPayment.objects.filter(budget__plan_id=plan.previous_id)
    paid = old.filter(Q(status=PaymentStatus.PAID) | Q(run_item__isnull=False)).order_by("-due_on").first()
    if paid is None:
        return None
    following = old.filter(due_on__gt=paid.due_on).order_by("due_on").first()
    return following.due_on if following else paid.due_on + datetime.timedelta(days=1)


def _check_no_overlap(plan: CarePlan, start_date: datetime.date) -> None:
    """A new version's budget takes over from the old one's when it is set up; the old one kept paying until
    then, in advance, so the new one starts where the old one's payments run out."""
    paid_until = _paid_until(plan)
    if paid_until is not None and start_date < paid_until:
        raise BudgetError(OVERLAPS_OLD_VERSION.format(day=format_date(paid_until)))


def earliest_start(plan: CarePlan, today: datetime.date | None = None) -> datetime.date:
    """The start date to offer: today, or for a new version the day the old one's payments run out if later."""
    today = today or timezone.localdate()
    paid_until = _paid_until(plan)
    return max(today, paid_until) if paid_until else today


# --- Reductions (rule 6): a reduced version pays the old amounts until its notice's effective date ------------

REDUCTION_NEEDS_NOTICE = (
    "This version reduces the budget: issue a written notice of the reduction, with reasons and an effective date, "
    "before setting it up"
)
REDUCTION_RECONSIDERING = "The person has asked for the reduction to be reconsidered: wait for the decision"


def _reduction_notice_for(plan: CarePlan) -> ReductionNotice | None:
    """The notice a reduced version needs (refused without one, or while a reconsideration waits); None when the
    version does not reduce the budget it replaces."""
    old = Budget.objects.filter(plan_id=plan.previous_id).first() if plan.previous_id else None
    if old is None or pence(plan.budget) >= old.annual_pence:
        return None
    notice = ReductionNotice.objects.filter(budget=old, new_plan=plan).order_by("-issued_on", "-id").first()
    if notice is None:
        raise BudgetError(REDUCTION_NEEDS_NOTICE)
    if plans.reconsideration_pending(plan) or plans.reconsideration_pending(old.plan):
        raise BudgetError(REDUCTION_RECONSIDERING)
    return notice


def _old_amount(notice: ReductionNotice, kind: str, holder_id: int | None, due_on: datetime.date) -> int | None:
    """What the replaced budget paid for this kind of payment in the period that includes `due_on`."""
    old = ScheduledPayment.objects.filter(budget_id=notice.budget_id, kind=kind, holder_id=holder_id)
    in_force = old.filter(due_on__lte=due_on).order_by("-due_on", "-id").first() or old.order_by("due_on").first()
    return in_force.amount_pence if in_force else None


def _fund_notice_period(budget, plan, accounts, notice, extra: int, acting_user) -> None:
    """Paying the old amounts until the effective date costs more than the new year's funding: the ICB funds the
    difference, as its own posting, so the ICB's holding never runs short at the end of the year."""
    funding = accounts.get("funding:icb") or next(a for p, a in accounts.items() if p.startswith("funding:"))
    ledger.transfer_post(
        key=f"{budget.owner_ref}:allocation:notice-period",
        debit_account_id=accounts["held:icb"].pk,
        credit_account_id=funding.pk,
        amount=extra,
        code="allocation",
        effective_date=budget.start_date,
        reference=budget.owner_ref,
        description=f"Old amounts paid until the reduction takes effect on {notice.effective_on:%d/%m/%Y}",
        acting_user=acting_user,
    )


def _open_accounts(budget: Budget, plan: CarePlan) -> dict:
    wanted = {"held:icb": ("Funds held by the ICB", AccountKind.ASSET, True)}
    for purpose, money, name in (
        ("funding:icb", plan.funding_icb, "Funding from the ICB"),
        ("funding:local-authority", plan.funding_local_authority, "Funding from the local authority"),
        ("funding:contribution", plan.funding_contribution, "The person's contribution"),
    ):
        if money.amount > 0:
            wanted[purpose] = (name, AccountKind.EQUITY, False)
    if plan.contingency_amount.amount > 0:
        wanted["contingency"] = ("Contingency (ring-fenced)", AccountKind.ASSET, True)
    for line in plan.lines.select_related("third_party_holder"):
        wanted[f"spend:line:{line.pk}"] = (f"Spend: {line.description}", AccountKind.EXPENSE, False)
        if line.management_type == ManagementType.DIRECT_PAYMENT:
            wanted["held:direct-payment"] = ("Direct-payment account", AccountKind.ASSET, True)
        elif line.management_type == ManagementType.THIRD_PARTY:
            wanted[f"held:third-party:{line.third_party_holder_id}"] = (
                f"Held by {line.third_party_holder.name}",
                AccountKind.ASSET,
                True,
            )
    accounts = {}
    for purpose, (name, kind, no_overdraft) in wanted.items():
        account = ledger.account_open(
            code=f"{budget.owner_ref}:{purpose}",
            name=name,
            kind=kind,
            owner_ref=budget.owner_ref,
            credits_must_not_exceed_debits=no_overdraft,
        )
        BudgetAccount.objects.create(budget=budget, purpose=purpose, account=account)
        accounts[purpose] = account
    return accounts


def _opening_transfers(budget: Budget, plan: CarePlan, accounts: dict, lines: list[BudgetLine]):
    ref, day = budget.owner_ref, budget.start_date
    held = accounts["held:icb"].pk
    requests = [
        TransferRequest(
            key=f"{ref}:allocation:{purpose}",
            debit_account_id=held,
            credit_account_id=accounts[purpose].pk,
            amount=pence(money),
            code="allocation",
            effective_date=day,
            reference=ref,
            description="Budget for the year",
        )
        for purpose, money in (
            ("funding:icb", plan.funding_icb),
            ("funding:local-authority", plan.funding_local_authority),
            ("funding:contribution", plan.funding_contribution),
        )
        if purpose in accounts
    ]
    if "contingency" in accounts:
        requests.append(
            TransferRequest(
                key=f"{ref}:contingency",
                debit_account_id=accounts["contingency"].pk,
                credit_account_id=held,
                amount=pence(plan.contingency_amount),
                code="contingency",
                effective_date=day,
                reference=ref,
                description="Contingency, kept apart from spending",
            )
        )
    periods = PERIODS_A_YEAR[plan.payment_frequency]
    for line in lines:
        if line.management_type == ManagementType.NOTIONAL and line.annual_pence > 0:
            requests.append(
                TransferRequest(
                    key=f"{ref}:commitment:line-{line.plan_line_id}:1",
                    debit_account_id=line.spend_account_id,
                    credit_account_id=held,
                    amount=split(line.annual_pence, periods)[0],
                    code="commitment",
                    effective_date=day,
                    reference=f"plan-line:{line.plan_line_id}",
                    phase="pending",
                    description=f"First period's service order: {line.plan_line.description}",
                )
            )
    return requests


def _write_schedule(
    budget: Budget, plan: CarePlan, lines: list[BudgetLine], *, notice: ReductionNotice | None = None
) -> int:
    """Write the year's payments; with a reduction notice, those due before its effective date keep the old
    amounts. Returns how much more than the new amounts that costs."""
    extra = 0
    dates = period_dates(budget.start_date, plan.payment_frequency)
    totals: dict[tuple[str, int | None], int] = defaultdict(int)
    for line in lines:
        if line.management_type == ManagementType.DIRECT_PAYMENT:
            totals[(PaymentKind.DIRECT_PAYMENT, None)] += line.annual_pence
        elif line.management_type == ManagementType.THIRD_PARTY:
            totals[(PaymentKind.THIRD_PARTY, line.plan_line.third_party_holder_id)] += line.annual_pence
    for (kind, holder_id), annual in totals.items():
        for number, (due_on, amount) in enumerate(zip(dates, split(annual, len(dates)), strict=True), start=1):
            if notice is not None and due_on < notice.effective_on:
                old = _old_amount(notice, kind, holder_id, due_on)
                if old is not None:
                    extra += old - amount
                    amount = old
            ScheduledPayment.objects.create(
                budget=budget,
                kind=kind,
                holder_id=holder_id,
                due_on=due_on,
                amount_pence=amount,
                transfer_key=f"{budget.owner_ref}:{kind}:{holder_id or 'person'}:{number}",
            )
    return extra


def scheduled_payment_pay(*, payment: ScheduledPayment, acting_user, approved_in_run: bool = False) -> ScheduledPayment:
    """Post one scheduled payment from the ICB's funds to the person's or holder's account, exactly once.
    The budget's first payment moves the plan to active. A payment in an approved run is paid even if the budget
    was suspended or stopped since: approval released it to the bank."""
    with transaction.atomic():
        payment = (
            ScheduledPayment.objects.select_for_update(of=("self",))
            .select_related("budget__plan", "holder")
            .get(pk=payment.pk)
        )
        budget = payment.budget
        if budget.plan.status not in PAYABLE and not (approved_in_run and budget.first_paid_on is not None):
            raise BudgetError(f"The plan is {budget.plan.get_status_display().lower()}: nothing can be paid")
        if payment.status == PaymentStatus.PAID:
            return payment
        accounts = {a.purpose: a.account_id for a in budget.accounts.all()}
        target = (
            "held:direct-payment"
            if payment.kind == PaymentKind.DIRECT_PAYMENT
            else f"held:third-party:{payment.holder_id}"
        )
        paid_on = ledger_selectors.first_open_day(payment.due_on)  # arrears paid after their month was closed
        ledger.transfer_post(
            key=payment.transfer_key,
            debit_account_id=accounts[target],
            credit_account_id=accounts["held:icb"],
            amount=payment.amount_pence,
            code=payment.kind,
            effective_date=paid_on,
            reference=budget.owner_ref,
            # Read by the person on their transactions and statements: who now holds the money.
            description=payment.get_kind_display()
            if payment.kind == PaymentKind.DIRECT_PAYMENT
            else f"Instalment paid to {payment.holder.name}, who holds part of the budget"[:300],
            acting_user=acting_user,
        )
        if payment.offset_pence:
            # The surplus offset, as its own posting: back from the direct-payment account to the ICB.
            ledger.transfer_post(
                key=f"{payment.transfer_key}:offset",
                debit_account_id=accounts["held:icb"],
                credit_account_id=accounts[target],
                amount=payment.offset_pence,
                code="surplus_offset",
                effective_date=paid_on,
                reference=budget.owner_ref,
                acting_user=acting_user,
                description="Surplus offset against this instalment",
            )
        payment.status = PaymentStatus.PAID
        payment.save(update_fields=["status"])
        if budget.first_paid_on is None:
            budget.first_paid_on = payment.due_on
            budget.save(update_fields=["first_paid_on"])
            plans.plan_transition(
                plan=budget.plan, name="activate", acting_user=acting_user, reasons="First payment made"
            )
    return payment


def dp_surplus(budget: Budget, *, weeks: int | None = None) -> int:
    """Pence of the budget's money held in the direct-payment account above `weeks` of its scheduled spend. The
    contingency sits in its own account, so it is never counted (rule 14)."""
    from django.conf import settings

    weeks = settings.SURPLUS_WEEKS if weeks is None else weeks
    annual = sum(line.annual_pence for line in budget.lines.filter(management_type=ManagementType.DIRECT_PAYMENT))
    balances = {row.purpose: row.account.posted_balance for row in budget.accounts.select_related("account")}
    # Money in from other sources (mixing) sits in the account but is not the budget's, so it is no surplus.
    held = balances["held:direct-payment"] - balances.get("mixed-funds", 0)
    return max(0, held - annual * weeks // 52)


def surplus_offset(*, budget: Budget, weeks: int | None = None) -> ScheduledPayment | None:
    """Rule 15: offset the surplus against the next direct-payment instalment, by at most its amount. The
    instalment is then paid net (the run pays less) and the offset is posted as its own transfer when it is
    paid. Only the next instalment, and only once."""
    with transaction.atomic():
        payment = (
            ScheduledPayment.objects.select_for_update()
            .filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT, status=PaymentStatus.DUE)
            .order_by("due_on", "id")
            .first()
        )
        surplus = dp_surplus(budget, weeks=weeks)
        if payment is None or payment.offset_pence or surplus == 0:
            return None
        payment.offset_pence = min(surplus, payment.amount_pence)
        payment.save(update_fields=["offset_pence"])
    return payment


def dedicated_account_save(*, budget: Budget, acting_user, recipient=None, **details) -> DirectPaymentAccount:
    """Record or change where the direct payment goes (rule 8) and who receives it (rule 7): the person, or one
    of their active representatives or nominees. Every change is kept in the account's history."""
    if not budget.lines.filter(management_type=ManagementType.DIRECT_PAYMENT).exists():
        raise BudgetError("This budget has no direct payment")
    if recipient is not None and (recipient.person_id != budget.plan.person_id or not recipient.active):
        raise BudgetError("The recipient must be the person or one of their current representatives or nominees")
    with transaction.atomic():
        account, _ = DirectPaymentAccount.objects.update_or_create(
            budget=budget, defaults={**details, "recipient": recipient}
        )
    return account


def holder_bank_account_save(*, organisation, acting_user, **details) -> HolderBankAccount:
    if organisation.kind != "third_party_holder":
        raise BudgetError("Only a third-party holder organisation has holder bank details")
    with transaction.atomic():
        account, _ = HolderBankAccount.objects.update_or_create(organisation=organisation, defaults=details)
    return account


def budget_account(budget: Budget, purpose: str, name: str, kind: str, **flags):
    """The budget's ledger account for `purpose`, opened on first use (uncoded spending, card payments, recovery,
    mixed funds...). Two requests may open it at once: the loser's INSERT waits for the winner, fails, and reads
    the winner's row."""
    existing = BudgetAccount.objects.filter(budget=budget, purpose=purpose).select_related("account").first()
    if existing is not None:
        return existing.account
    try:
        with transaction.atomic():
            account = ledger.account_open(
                code=f"{budget.owner_ref}:{purpose}", name=name, kind=kind, owner_ref=budget.owner_ref, **flags
            )
            BudgetAccount.objects.create(budget=budget, purpose=purpose, account=account)
            return account
    except IntegrityError:
        return BudgetAccount.objects.select_related("account").get(budget=budget, purpose=purpose).account
