"""Direct-payment spending: each purchase is posted from the dedicated account to the plan line it pays for,
or to the budget's uncoded account and flagged for review (rule 9). The account's no-overdraft limit means
nobody can record spending the account does not hold."""

from __future__ import annotations

import datetime

from django.db import transaction

from brokerage.models import CarePlan, ManagementType, PlanStatus
from budgets.models import BudgetAccount, BudgetLine, DirectPaymentSpend, SpendFlag
from budgets.services import BudgetError
from ledger import services as ledger
from ledger.exceptions import InsufficientFunds
from ledger.models import AccountKind

MAX_SPEND_PENCE = 50_000_00
NOT_ENOUGH = "The direct-payment account does not hold enough for this"


def dp_spend_record(
    *, budget, line: BudgetLine | None, payee: str, spent_on: datetime.date, amount_pence: int, key: str, acting_user
) -> DirectPaymentSpend:
    status = CarePlan.objects.filter(pk=budget.plan_id).values_list("status", flat=True).get()  # never a stale copy
    if status not in (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.STOPPING):
        raise BudgetError(f"The plan is {PlanStatus(status).label.lower()}: spending cannot be recorded")
    if not 0 < amount_pence <= MAX_SPEND_PENCE:
        raise BudgetError("The amount must be between 1p and £50,000.00")
    if line is not None and (line.budget_id != budget.pk or line.management_type != ManagementType.DIRECT_PAYMENT):
        raise BudgetError("Choose one of this budget's direct-payment lines, or leave the line empty")
    existing = DirectPaymentSpend.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        accounts = {a.purpose: a.account for a in BudgetAccount.objects.filter(budget=budget).select_related("account")}
        if "held:direct-payment" not in accounts:
            raise BudgetError("This budget has no direct payment")
        if line is not None:
            target, flag = line.spend_account, SpendFlag.NONE
        else:
            target, flag = _uncoded_account(budget, accounts), SpendFlag.UNCODED
        spend = DirectPaymentSpend.objects.create(
            budget=budget,
            budget_line=line,
            payee=payee,
            spent_on=spent_on,
            amount_pence=amount_pence,
            flag=flag,
            recorded_by=acting_user,
            idempotency_key=key,
        )
        try:
            ledger.transfer_post(
                key=f"dp-spend:{key}",
                debit_account_id=target.pk,
                credit_account_id=accounts["held:direct-payment"].pk,
                amount=amount_pence,
                code="dp_spend",
                effective_date=spent_on,
                reference=f"plan-line:{line.plan_line_id}" if line else budget.owner_ref,
                description=f"Paid to {payee}"[:300],
                acting_user=acting_user,
            )
        except InsufficientFunds as exc:
            raise BudgetError(NOT_ENOUGH) from exc
    return spend


def _uncoded_account(budget, accounts):
    if "spend:uncoded" in accounts:
        return accounts["spend:uncoded"]
    account = ledger.account_open(
        code=f"{budget.owner_ref}:spend:uncoded",
        name="Spend not coded to a plan line",
        kind=AccountKind.EXPENSE,
        owner_ref=budget.owner_ref,
    )
    BudgetAccount.objects.create(budget=budget, purpose="spend:uncoded", account=account)
    return account
