"""Spending from a direct payment or by a third-party holder, holder returns, and money into the dedicated
account. Direct-payment spending: each purchase is posted from the dedicated account to the plan line it pays for,
or to the budget's uncoded account and flagged for review (rule 9). The account's no-overdraft limit means
nobody can record spending the account does not hold."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from brokerage.models import CarePlan, ConnectedPerson, ManagementType, PlanStatus
from budgets.models import (
    BudgetAccount,
    BudgetLine,
    DirectPaymentMoneyIn,
    DirectPaymentReturn,
    DirectPaymentSpend,
    HolderReturn,
    HolderSpend,
    MoneyInSource,
    SpendFlag,
)
from budgets.services import BudgetError, budget_account
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.exceptions import InsufficientFunds
from ledger.models import AccountKind, Phase, Transfer

MAX_SPEND_PENCE = 50_000_00
NOT_ENOUGH = "The direct-payment account does not hold enough for this"
MOVED = (Phase.POSTED, Phase.POST_PENDING)  # the phases that move money; pending ones only reserve it
CONNECTED_REFUSED = (
    "You cannot pay a spouse, partner, or a family member or friend who lives with the person, until the ICB "
    "has approved that it is necessary. Ask the care coordinator"
)
HOLDER_NOT_ENOUGH = "Your organisation does not hold enough for this budget to pay this"


SPENDING_STATUSES = (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.STOPPING)


def blocked_connection(budget, provider):
    """The person's connection to this payee if paying them is refused (rule 11: a spouse, partner, or family member
    or friend living with them, without a dated necessity approval, or whose approval was withdrawn); else None."""
    connected = ConnectedPerson.objects.filter(person_id=budget.plan.person_id, provider=provider).first()
    return connected if connected is not None and connected.blocked else None


def blocked_payees() -> set[tuple[int, int]]:
    """Every (person, provider) pair that paying is refused for now (rule 11), read once for a whole payment run."""
    waiting = ConnectedPerson.objects.filter(necessity_approved_on__isnull=True)
    return {(connection.person_id, connection.provider_id) for connection in waiting if connection.blocked}


def check_spend(budget, line: BudgetLine | None, amount_pence: int, management_type: str, line_error: str) -> None:
    status = CarePlan.objects.filter(pk=budget.plan_id).values_list("status", flat=True).get()  # never a stale copy
    if status not in SPENDING_STATUSES:
        raise BudgetError(f"The plan is {PlanStatus(status).label.lower()}: spending cannot be recorded")
    if not 0 < amount_pence <= MAX_SPEND_PENCE:
        raise BudgetError("The amount must be between 1p and £50,000.00")
    if line is not None and (line.budget_id != budget.pk or line.management_type != management_type):
        raise BudgetError(line_error)


def _post_spend(*, budget, accounts, line, paid_from: str, payee, spent_on, amount_pence, key, acting_user) -> None:
    """Post spending from the account that holds the money to the line's spend account, or to the budget's
    uncoded account when there is no line. The holding account's no-overdraft limit refuses overspending."""
    target = line.spend_account if line is not None else _uncoded_account(budget, accounts)
    posted_on = ledger_selectors.first_open_day(spent_on)
    try:
        ledger.transfer_post(
            key=key,
            debit_account_id=target.pk,
            credit_account_id=accounts[paid_from].pk,
            amount=amount_pence,
            code="dp_spend" if paid_from == "held:direct-payment" else "holder_spend",
            effective_date=posted_on,
            reference=f"plan-line:{line.plan_line_id}" if line else budget.owner_ref,
            description=(f"Paid to {payee}" + _late(spent_on, posted_on))[:300],
            acting_user=acting_user,
        )
    except InsufficientFunds as exc:
        raise BudgetError(NOT_ENOUGH if paid_from == "held:direct-payment" else HOLDER_NOT_ENOUGH) from exc


def _late(moved_on: datetime.date, posted_on: datetime.date) -> str:
    """A note for money recorded after finance closed its month: it is posted in the first open month, and the
    record keeps the day it moved."""
    return "" if moved_on == posted_on else f" on {moved_on:%-d %B %Y} (recorded after that month was closed)"


def _accounts(budget) -> dict:
    return {a.purpose: a.account for a in BudgetAccount.objects.filter(budget=budget).select_related("account")}


def dp_spend_record(
    *,
    budget,
    line: BudgetLine | None,
    payee: str,
    spent_on: datetime.date,
    amount_pence: int,
    key: str,
    acting_user,
    category=None,
    connected_person=None,
    receipt=None,
) -> DirectPaymentSpend:
    """Record a purchase from the direct payment (rules 9 to 11): coded to a line or flagged as uncoded; a prohibited
    category is recorded but flagged for review; paying a connected person needs a dated necessity approval."""
    if connected_person is not None and (
        connected_person.person_id != budget.plan.person_id or connected_person.blocked
    ):
        raise BudgetError(CONNECTED_REFUSED)
    check_spend(
        budget,
        line,
        amount_pence,
        ManagementType.DIRECT_PAYMENT,
        "Choose one of this budget's direct-payment lines, or leave the line empty",
    )
    existing = DirectPaymentSpend.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        accounts = _accounts(budget)
        if "held:direct-payment" not in accounts:
            raise BudgetError("This budget has no direct payment")
        spend = DirectPaymentSpend.objects.create(
            budget=budget,
            budget_line=line,
            payee=payee,
            spent_on=spent_on,
            amount_pence=amount_pence,
            flag=_flag(line, category),
            category=category,
            connected_person=connected_person,
            receipt=receipt or "",
            receipt_type=getattr(receipt, "content_type", "") if receipt else "",
            recorded_by=acting_user,
            idempotency_key=key,
        )
        _post_spend(
            budget=budget,
            accounts=accounts,
            line=line,
            paid_from="held:direct-payment",
            payee=payee,
            spent_on=spent_on,
            amount_pence=amount_pence,
            key=f"dp-spend:{key}",
            acting_user=acting_user,
        )
    return spend


def _flag(line, category) -> str:
    if category is not None and category.is_prohibited:
        return SpendFlag.PROHIBITED
    return SpendFlag.NONE if line else SpendFlag.UNCODED


def holder_spend_record(
    *, budget, holder, line: BudgetLine | None, payee: str, spent_on, amount_pence: int, key: str, acting_user
) -> HolderSpend:
    """A third-party holder's staff record what they paid for the budget, from what they hold for it."""
    if line is not None and line.plan_line.third_party_holder_id != holder.pk:
        raise BudgetError("Choose one of the lines your organisation holds, or leave the line empty")
    check_spend(
        budget,
        line,
        amount_pence,
        ManagementType.THIRD_PARTY,
        "Choose one of the lines your organisation holds, or leave the line empty",
    )
    existing = HolderSpend.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    paid_from = f"held:third-party:{holder.pk}"
    with transaction.atomic():
        accounts = _accounts(budget)
        if paid_from not in accounts:
            raise BudgetError("Your organisation holds nothing for this budget")
        spend = HolderSpend.objects.create(
            budget=budget,
            holder=holder,
            budget_line=line,
            payee=payee,
            spent_on=spent_on,
            amount_pence=amount_pence,
            flag=SpendFlag.NONE if line else SpendFlag.UNCODED,
            recorded_by=acting_user,
            idempotency_key=key,
        )
        _post_spend(
            budget=budget,
            accounts=accounts,
            line=line,
            paid_from=paid_from,
            payee=payee,
            spent_on=spent_on,
            amount_pence=amount_pence,
            key=f"holder-spend:{key}",
            acting_user=acting_user,
        )
    return spend


def holder_return_submit(*, budget, holder, period_start, period_end, note: str, acting_user) -> HolderReturn:
    """Rule 20: the holder's return for a period, its figures taken from the ledger as they stand now."""
    if period_end < period_start:
        raise BudgetError("The end of the period must be on or after its start")
    if period_end > timezone.localdate():
        raise BudgetError("A return can only cover a period that has ended")
    held = BudgetAccount.objects.filter(budget=budget, purpose=f"held:third-party:{holder.pk}").first()
    if held is None:
        raise BudgetError("Your organisation holds nothing for this budget")
    if HolderReturn.objects.filter(budget=budget, holder=holder, period_start=period_start).exists():
        raise BudgetError("A return for this period has already been submitted")
    figures = holder_period_figures(budget=budget, holder=holder, period_start=period_start, period_end=period_end)
    with transaction.atomic():
        submitted = HolderReturn.objects.create(
            budget=budget,
            holder=holder,
            period_start=period_start,
            period_end=period_end,
            note=note,
            submitted_by=acting_user,
            **figures,
        )
        # The return that was due for this period is now in: it stops escalating.
        DirectPaymentReturn.objects.filter(
            budget=budget, holder=holder, period_start=period_start, submitted_at__isnull=True
        ).update(submitted_at=timezone.now(), submitted_by=acting_user, declaration=True, notes=note)
    return submitted


def holder_period_figures(*, budget, holder, period_start, period_end) -> dict[str, int]:
    held_id = BudgetAccount.objects.get(budget=budget, purpose=f"held:third-party:{holder.pk}").account_id
    posted = Transfer.objects.filter(phase__in=MOVED, effective_date__range=(period_start, period_end))
    received = posted.filter(debit_account_id=held_id).aggregate(total=Sum("amount"))["total"] or 0
    spends = HolderSpend.objects.filter(budget=budget, holder=holder, spent_on__range=(period_start, period_end))
    spent = spends.aggregate(total=Sum("amount_pence"))["total"] or 0
    uncoded = spends.filter(budget_line__isnull=True).aggregate(total=Sum("amount_pence"))["total"] or 0
    until_end = Transfer.objects.filter(phase__in=MOVED, effective_date__lte=period_end)
    balance = (until_end.filter(debit_account_id=held_id).aggregate(total=Sum("amount"))["total"] or 0) - (
        until_end.filter(credit_account_id=held_id).aggregate(total=Sum("amount"))["total"] or 0
    )
    return {"received_pence": received, "spent_pence": spent, "uncoded_pence": uncoded, "balance_pence": balance}


def dp_money_in_record(
    *, budget, received_on, amount_pence: int, payer: str, source: str, key: str, acting_user
) -> DirectPaymentMoneyIn:
    """Money into the dedicated account from outside a payment run (rule 8). From a funder or the person's
    contribution it adds to what the account holds; from anyone else it is kept in a "mixed funds" account,
    apart from the budget, and flagged for the finance team to follow up."""
    if not 0 < amount_pence <= MAX_SPEND_PENCE:
        raise BudgetError("The amount must be between 1p and £50,000.00")
    if source not in MoneyInSource.values:
        raise BudgetError("Choose where the money came from")
    existing = DirectPaymentMoneyIn.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        accounts = _accounts(budget)
        if "held:direct-payment" not in accounts:
            raise BudgetError("This budget has no direct payment")
        mixing = source == MoneyInSource.OTHER
        purpose, name, kind = (
            ("mixed-funds", "Money in from other sources (mixing)", AccountKind.LIABILITY)
            if mixing
            else ("money-in:" + source, f"Money in: {MoneyInSource(source).label}", AccountKind.EQUITY)
        )
        credit = accounts.get(purpose) or budget_account(budget, purpose, name, kind)
        money_in = DirectPaymentMoneyIn.objects.create(
            budget=budget,
            received_on=received_on,
            amount_pence=amount_pence,
            payer=payer,
            source=source,
            mixing=mixing,
            recorded_by=acting_user,
            idempotency_key=key,
        )
        ledger.transfer_post(
            key=f"dp-money-in:{key}",
            debit_account_id=accounts["held:direct-payment"].pk,
            credit_account_id=credit.pk,
            amount=amount_pence,
            code="dp_money_in",
            effective_date=(posted_on := ledger_selectors.first_open_day(received_on)),
            reference=budget.owner_ref,
            description=(f"From {payer}" + _late(received_on, posted_on))[:300],
            acting_user=acting_user,
        )
    return money_in


def _uncoded_account(budget, accounts):
    return accounts.get("spend:uncoded") or budget_account(
        budget, "spend:uncoded", "Spend not coded to a plan line", AccountKind.EXPENSE
    )
