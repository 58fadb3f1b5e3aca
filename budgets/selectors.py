"""Reads for budgets: each line's planned, committed, spent and remaining figures come from the ledger."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts.roles import Role
from brokerage import selectors as plan_selectors
from brokerage.models import PlanStatus
from budgets.models import Budget, BudgetAccount, BudgetLine, PaymentKind, PaymentRun, PaymentRunItem, ScheduledPayment
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


def _line_figures(line: BudgetLine) -> LineFigures:
    return LineFigures(
        description=line.plan_line.description,
        management_type=line.plan_line.get_management_type_display().split(" (")[0],
        planned=line.annual_pence,
        committed=line.spend_account.debits_pending - line.spend_account.credits_pending,
        spent=line.spend_account.posted_balance,
        account_code=line.spend_account.code,
    )


def line_figures(budget: Budget) -> list[LineFigures]:
    # A list of budgets prefetches their lines (budgets_with_lines) rather than asking once per budget.
    if "lines" in getattr(budget, "_prefetched_objects_cache", {}):
        return [_line_figures(line) for line in budget.lines.all()]
    return [_line_figures(line) for line in budget.lines.select_related("plan_line", "spend_account")]


@dataclasses.dataclass(frozen=True)
class LineTable:
    """The staff budget page's table: the plan's lines, then the spending not coded to a line yet (the row the
    person's page and the statement show), so its columns add up to the budget's totals."""

    rows: list[LineFigures]

    @property
    def planned(self) -> int:
        return sum(row.planned for row in self.rows)

    @property
    def committed(self) -> int:
        return sum(row.committed for row in self.rows)

    @property
    def spent(self) -> int:
        return sum(row.spent for row in self.rows)

    @property
    def remaining(self) -> int:
        return sum(row.remaining for row in self.rows)


def line_table(budget: Budget, accounts: list[tuple[str, Account]] | None = None) -> LineTable:
    """`line_figures` and the "Not coded to a line (to be checked)" row while any spending waits to be coded.
    `accounts` (from `budget_accounts`) saves reading the budget's accounts again."""
    from budgets.person_selectors import UNCODED_PURPOSE, uncoded_row  # it builds on this module

    if accounts is None:
        accounts = budget_accounts(budget)
    rows = line_figures(budget)
    uncoded = next((account for purpose, account in accounts if purpose == UNCODED_PURPOSE), None)
    if uncoded is not None and uncoded.posted_balance:
        rows.append(uncoded_row(uncoded))
    return LineTable(rows)


def budgets_with_lines(budgets):
    """`budgets` with the lines line_figures reads, in one more query for the lot."""
    return budgets.prefetch_related(
        Prefetch("lines", queryset=BudgetLine.objects.select_related("plan_line", "spend_account"))
    )


def line_figures_all() -> Iterator[tuple[Budget, LineFigures]]:
    """Every budget's lines with the figures its budget page shows, in one streamed query (finance exports)."""
    lines = BudgetLine.objects.select_related("budget__plan", "plan_line", "spend_account").order_by("budget_id", "id")
    for line in lines.iterator(chunk_size=1_000):
        yield line.budget, _line_figures(line)


def budget_accounts(budget: Budget) -> list[tuple[str, Account]]:
    rows = BudgetAccount.objects.filter(budget=budget).select_related("account").order_by("purpose")
    return [(row.purpose, row.account) for row in rows]


def upcoming_payments(budget: Budget, limit: int = 6):
    return ScheduledPayment.objects.filter(budget=budget, status="due").select_related("holder")[:limit]


FUNDERS = (
    ("funding_icb", "ICB"),
    ("funding_local_authority", "Local authority"),
    ("funding_contribution", "Person's contribution"),
)


def apportion(amount: int, weights: list[int]) -> list[int]:
    """Split `amount` pence in proportion to `weights`, largest remainder first, so the parts add up exactly."""
    total = sum(weights)
    if total <= 0:
        return [amount] + [0] * (len(weights) - 1)
    exact = [amount * weight for weight in weights]
    parts = [value // total for value in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] % total, reverse=True)
    for index in by_remainder[: amount - sum(parts)]:
        parts[index] += 1
    return parts


PAYMENT_KIND_TOTALS = {
    PaymentKind.DIRECT_PAYMENT: "Direct-payment instalments",
    PaymentKind.THIRD_PARTY: "Transfers to third-party holders",
}


@dataclasses.dataclass(frozen=True)
class RunTotals:
    by_type: dict[str, int]
    by_funder: dict[str, int]
    by_method: dict[str, int]
    total: int


RUN_ITEM_RELATIONS = (
    "scheduled_payment__budget__plan",
    "invoice__budget_line__budget__plan",
    "dp_invoice__budget__plan",
)


def run_items(run) -> QuerySet[PaymentRunItem]:
    """A run's items with what their totals and descriptions read: prefetched by `payment_runs_with_items`."""
    return run.items.select_related(*RUN_ITEM_RELATIONS).order_by("id")


def payment_runs_with_items() -> QuerySet[PaymentRun]:
    """Runs, newest first, each with its items prefetched once for the whole list (`run.items.all()`)."""
    items = PaymentRunItem.objects.select_related(*RUN_ITEM_RELATIONS).order_by("id")
    return PaymentRun.objects.prefetch_related(Prefetch("items", queryset=items)).order_by("-id")


def run_totals(run, items=None) -> RunTotals:
    """The preview a finance officer checks before approving: what the run pays, by type, by funder (each payment
    shared in proportion to its plan's funding split) and by how it is sent. `items` saves a query per run in a
    list: `run.items.all()` of a run from `payment_runs_with_items`."""
    by_type: dict[str, int] = {}
    by_funder: dict[str, int] = {label: 0 for _, label in FUNDERS}
    by_method: dict[str, int] = {}
    for item in run_items(run) if items is None else items:
        if item.scheduled_payment_id:
            kind = PAYMENT_KIND_TOTALS[item.scheduled_payment.kind]
        else:
            kind = "Provider invoices" if item.invoice_id else "Invoices paid from direct payments"
        by_type[kind] = by_type.get(kind, 0) + item.amount_pence
        method = item.get_method_display()
        by_method[method] = by_method.get(method, 0) + item.amount_pence
        plan = item.budget.plan
        weights = [int(getattr(plan, field).amount * 100) for field, _ in FUNDERS]
        for (_, label), share in zip(FUNDERS, apportion(item.amount_pence, weights), strict=True):
            by_funder[label] += share
    return RunTotals(
        by_type=by_type,
        by_funder={label: amount for label, amount in by_funder.items() if amount},
        by_method=by_method,
        total=sum(by_type.values()),
    )


def budgets_held_by(organisation) -> QuerySet[Budget]:
    """Live budgets with at least one line this third-party holder holds."""
    if organisation is None:
        return Budget.objects.none()
    return (
        Budget.objects.filter(lines__plan_line__third_party_holder=organisation)
        .distinct()
        .select_related("plan__person")
        .order_by("plan__person__family_name", "pk")
    )


def held_budget_for(*, user, pk: int) -> Budget:
    """A budget the user's organisation holds money for; any other id is not found."""
    if not user.has_role("third_party_staff"):
        raise Budget.DoesNotExist
    return budgets_held_by(user.organisation).get(pk=pk)


def held_line_figures(budget: Budget, holder) -> list[LineFigures]:
    return [
        figures
        for figures, line in zip(line_figures(budget), budget.lines.select_related("plan_line"), strict=True)
        if line.plan_line.third_party_holder_id == holder.pk
    ]


def held_balance(budget: Budget, holder) -> int:
    row = BudgetAccount.objects.filter(budget=budget, purpose=f"held:third-party:{holder.pk}").select_related("account")
    return row[0].account.posted_balance if row else 0


REVIEWED = (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.SUSPENDED, PlanStatus.STOPPING)


def overdue_reviews(user, today=None):
    """Open reviews past their due date for the budgets this user may see (the coordinator's people; the ICB's
    for an approver), oldest first."""
    from budgets.models import Review

    today = today or timezone.localdate()
    return (
        Review.objects.filter(
            completed_on__isnull=True,
            due_on__lt=today,
            budget__plan__in=plan_selectors.plans_visible_to(user),
            # A version replaced by a new one (or a closed budget) leaves its open review behind: only live
            # budgets are reviewed, so the person is not listed twice.
            budget__plan__status__in=REVIEWED,
        )
        .select_related("budget__plan__person")
        .order_by("due_on", "id")
    )


def open_monitoring(user, today=None) -> dict:
    """What a coordinator or approver should act on: overdue reviews, late returns, open surplus alerts and (a
    coordinator or broker) flagged spending to check."""
    from budgets.models import DirectPaymentReturn, SurplusAlert
    from budgets.spending import spending_to_check

    today = today or timezone.localdate()
    plans = plan_selectors.plans_visible_to(user)
    return {
        "overdue_reviews": list(overdue_reviews(user, today)[:20]),
        "late_returns": list(
            DirectPaymentReturn.objects.filter(submitted_at__isnull=True, due_on__lt=today, budget__plan__in=plans)
            .select_related("budget__plan__person")
            .order_by("due_on")[:20]
        ),
        "surplus_alerts": list(
            SurplusAlert.objects.filter(status="open", budget__plan__in=plans).select_related("budget__plan__person")[
                :20
            ]
        ),
        # Flagged spending the care coordinator or broker is to check (rules 9 and 10), by budget.
        "spending_to_check": spending_to_check(user),
    }


def recoveries_to_approve(user) -> list:
    """Notices asking for money back that this user may approve (rule 4: never their own), oldest first."""
    from budgets.models import Recovery, RecoveryStatus  # ending's models, read here for the dashboards

    if not (user.has_perm("budgets.write_off") or user.has_role(Role.ICB_APPROVER)):
        return []
    waiting = (
        Recovery.objects.filter(status=RecoveryStatus.PROPOSED, budget__plan__in=plan_selectors.plans_visible_to(user))
        .exclude(issued_by=user)
        .select_related("budget__plan__person", "issued_by")
        .order_by("proposed_on", "id")
    )
    return list(waiting[:20])


def finance_work(user) -> dict:
    """A finance officer's or manager's dashboard: payment runs to approve (someone else's, rule 4) and to pay,
    how many provider invoices wait for their approval, and agreed plans whose budget is not set up yet."""
    from budgets.models import Invoice, InvoiceStatus, RunStatus

    if not user.has_perm("budgets.run_payments"):
        return {}
    runs = list(
        PaymentRun.objects.filter(status__in=[RunStatus.DRAFT, RunStatus.APPROVED])
        .select_related("author", "approved_by")
        .order_by("created_at")
    )
    to_set_up = (
        plan_selectors.plans_visible_to(user)
        .filter(status=PlanStatus.AGREED, budget_record__isnull=True)
        .select_related("person")
        .order_by("updated_at")
    )
    return {
        "runs_to_approve": [run for run in runs if run.status == RunStatus.DRAFT and run.author_id != user.pk],
        "runs_to_pay": [run for run in runs if run.status == RunStatus.APPROVED],
        "invoices_to_approve": Invoice.objects.filter(status=InvoiceStatus.RECORDED).exclude(recorded_by=user).count(),
        "plans_to_set_up": list(to_set_up[: plan_selectors.WORK_LIMIT]),
    }


def holder_work(user, today=None) -> dict:
    """A third-party holder's dashboard: how many budgets it holds and its returns due in the next 30 days or late,
    oldest first."""
    from budgets.models import DirectPaymentReturn

    organisation = user.organisation if user.has_perm("budgets.hold_budgets") else None
    if organisation is None:
        return {"held": 0, "returns": []}
    today = today or timezone.localdate()
    returns = (
        DirectPaymentReturn.objects.filter(
            holder=organisation, submitted_at__isnull=True, due_on__lte=today + datetime.timedelta(days=30)
        )
        .select_related("budget__plan__person")
        .order_by("due_on", "id")
    )
    return {"held": budgets_held_by(organisation).count(), "returns": list(returns[:20])}


def budgets_found(query: str = "") -> QuerySet[Budget]:
    """Every budget (finance and auditors read them all), newest version first for each person, matching the
    person's name or NHS number when `query` is given."""
    budgets = Budget.objects.select_related("plan__person")
    if query:
        budgets = budgets.filter(plan_selectors.person_search(query, path="plan__person__"))
    return budgets.order_by(
        "plan__person__family_name", "plan__person__given_name", "plan__person_id", "-plan__version"
    )
