"""Reads for budgets: each line's planned, committed, spent and remaining figures come from the ledger."""

from __future__ import annotations

import dataclasses

from brokerage import selectors as plan_selectors
from budgets.models import Budget, BudgetAccount, ScheduledPayment
from ledger.models import Account


@dataclasses.dataclass(frozen=True)
class LineFigures:
    description: str
    management_type: str
    planned: int
    committed: int
    spent: int
    account_code: str

    @property
    def remaining(self) -> int:
        return self.planned - self.committed - self.spent


def budget_for(*, user, pk: int) -> Budget:
    """A budget the user may see: the same scope as its person."""
    plans = plan_selectors.plans_visible_to(user)
    return Budget.objects.select_related("plan__person").get(pk=pk, plan__in=plans)


def line_figures(budget: Budget) -> list[LineFigures]:
    lines = budget.lines.select_related("plan_line", "spend_account")
    return [
        LineFigures(
            description=line.plan_line.description,
            management_type=line.plan_line.get_management_type_display().split(" (")[0],
            planned=line.annual_pence,
            committed=line.spend_account.debits_pending - line.spend_account.credits_pending,
            spent=line.spend_account.posted_balance,
            account_code=line.spend_account.code,
        )
        for line in lines
    ]


def budget_accounts(budget: Budget) -> list[tuple[str, Account]]:
    rows = BudgetAccount.objects.filter(budget=budget).select_related("account").order_by("purpose")
    return [(row.purpose, row.account) for row in rows]


def upcoming_payments(budget: Budget, limit: int = 6):
    return ScheduledPayment.objects.filter(budget=budget, status="due").select_related("holder")[:limit]
