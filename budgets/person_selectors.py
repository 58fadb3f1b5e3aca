"""Reads for the person's own pages (and their representative's or nominee's): their budgets, the balance, each
line's planned, spent and remaining, the year's spend chart, their transactions and what is coming up. Every
figure comes from the ledger, the same numbers the finance pages and statements show."""

from __future__ import annotations

import dataclasses
import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import RoleMembership
from accounts.roles import Role
from brokerage import selectors as plan_selectors
from budgets.card_payments import LEDGER_CODE as CARD_PAYMENT_CODE
from budgets.card_payments import REFUND_CODE as CARD_REFUND_CODE
from budgets.charts import ChartPoint, month_points
from budgets.ending import RECOVERY_REFUND_CODE
from budgets.models import (
    Budget,
    BudgetAccount,
    CardPaymentPurpose,
    DirectPaymentSpend,
    HolderSpend,
    PaymentStatus,
    Recovery,
    ScheduledPayment,
    SpendCheck,
    SpendFlag,
)
from budgets.selectors import LineFigures, line_figures
from config.formatting import format_date, format_pence
from ledger.models import Phase, Transfer

MOVED = (Phase.POSTED, Phase.POST_PENDING)
BOOKKEEPING = ("allocation", "contingency")  # how the year was set up, not money the person would recognise


def budgets_for_person_pages(user) -> QuerySet[Budget]:
    """The budgets a patient, representative or nominee acts for; nobody else's."""
    if not user.is_authenticated or not user.has_role("patient", "representative", "nominee"):
        return Budget.objects.none()
    return (
        Budget.objects.filter(plan__in=plan_selectors.plans_visible_to(user))
        .select_related("plan__person", "plan__care_coordinator")
        .order_by("plan__person__family_name", "-created_at")
    )


def my_budget(*, user, pk: int) -> Budget:
    return budgets_for_person_pages(user).get(pk=pk)


@dataclasses.dataclass(frozen=True)
class Overview:
    budget: Budget
    lines: list[LineFigures]  # the plan's lines
    budget_total: int
    planned: int
    spent: int
    remaining: int
    contingency: int
    direct_payment_balance: int | None
    direct_payment_set_aside: int  # reserved for invoices the person paid that are not yet sent
    next_review: datetime.date | None
    chart: list[ChartPoint]
    uncoded: LineFigures | None = None  # spending not coded to a plan line yet, as the statement's row shows it

    @property
    def rows(self) -> list[LineFigures]:
        """The line table's rows: the plan's lines, then the uncoded spending; its columns add up to the totals."""
        return [*self.lines, self.uncoded] if self.uncoded else list(self.lines)


def overview(budget: Budget) -> Overview:
    lines = line_figures(budget)
    rows = list(budget.accounts.select_related("account"))
    balances = {row.purpose: row.account.posted_balance for row in rows}
    set_aside = sum(row.account.credits_pending for row in rows if row.purpose == "held:direct-payment")
    dp_balance = balances.get("held:direct-payment")
    if dp_balance is not None:
        dp_balance -= balances.get("mixed-funds", 0)  # money from other sources is not the budget's
    uncoded_account = next((row.account for row in rows if row.purpose == UNCODED_PURPOSE), None)
    uncoded = uncoded_row(uncoded_account) if uncoded_account is not None and uncoded_account.posted_balance else None
    planned = sum(line.planned for line in lines)
    spent = sum(line.spent for line in lines) + (uncoded.spent if uncoded else 0)
    return Overview(
        budget=budget,
        lines=lines,
        budget_total=budget.annual_pence,
        planned=planned,
        spent=spent,
        remaining=planned - spent,
        contingency=balances.get("contingency", 0),
        direct_payment_balance=dp_balance,
        direct_payment_set_aside=set_aside,
        next_review=next_review(budget, timezone.localdate()),
        chart=spend_chart_points(budget, planned),
        uncoded=uncoded,
    )


def next_review(budget: Budget, as_of: datetime.date) -> datetime.date | None:
    """The first review still to be done on `as_of` (one completed later was still to be done then), else the
    date the plan set for its first review."""
    due = (
        budget.reviews.filter(Q(completed_on__isnull=True) | Q(completed_on__gt=as_of))
        .order_by("due_on")
        .values_list("due_on", flat=True)
        .first()
    )
    return due or budget.plan.first_review_date


@dataclasses.dataclass(frozen=True)
class AccountNames:
    """What a budget's ledger accounts are to the person: spend accounts by the plan line they pay for, and the
    budget's other accounts by purpose ("held:direct-payment", ...)."""

    spend: dict[int, str]
    purposes: dict[int, str]


UNCODED_LINE = "Not coded to a line"
UNCODED_ROW = f"{UNCODED_LINE} (to be checked)"  # the row the budget page and the statement (statements.py) show
UNCODED_PURPOSE = "spend:uncoded"


def uncoded_row(account) -> LineFigures:
    """Spending not coded to a plan line (rule 9), as a row beside the lines: nothing planned, all of it spent, until
    the care coordinator codes it to a line or accepts it (budgets/spending.py, spend_check)."""
    return LineFigures(
        description=UNCODED_ROW,
        management_type="",
        planned=0,
        committed=0,
        spent=account.posted_balance,
        account_code=account.code,
    )


def account_names(budget: Budget, *, purposes: dict[int, str] | None = None, lines=None) -> AccountNames:
    """The budget's account names; a caller that has read its BudgetAccount purposes (account id to purpose) or
    its lines with their plan lines already passes them, saving the queries."""
    if purposes is None:
        purposes = dict(BudgetAccount.objects.filter(budget=budget).values_list("account_id", "purpose"))
    if lines is None:
        lines = budget.lines.select_related("plan_line")
    spend = {line.spend_account_id: line.plan_line.description for line in lines}
    spend.update({account_id: UNCODED_LINE for account_id, purpose in purposes.items() if purpose == UNCODED_PURPOSE})
    return AccountNames(spend, purposes)


def spend_chart_points(budget: Budget, planned: int) -> list[ChartPoint]:
    # Net of credits to a spend account (a reversal, or uncoded spending later coded to a line: a move between two
    # spend accounts counts nothing), as the statement's chart is, so the last bar equals "spent so far".
    ids = set(account_names(budget).spend)
    moves = Transfer.objects.filter(phase__in=MOVED).filter(Q(debit_account_id__in=ids) | Q(credit_account_id__in=ids))
    spends = [
        (day, (amount if debit in ids else 0) - (amount if credit in ids else 0))
        for day, amount, debit, credit in moves.values_list(
            "effective_date", "amount", "debit_account_id", "credit_account_id"
        )
    ]
    return month_points(budget.start_date, planned, spends, timezone.localdate())


@dataclasses.dataclass(frozen=True)
class Transaction:
    date: datetime.date
    description: str
    line: str
    money_in: int
    money_out: int
    note: str = ""  # for spending flagged for checking: still to check, or what was decided (the person's pages)


# Recovery notices (budgets/ending.py) as a person reads them. A notice asking for money back is not money leaving the
# budget, so its claim, and whatever is later released or written off, are shown for information with nothing in or
# out. Paying it back is money out: by bank transfer, the repayment itself; by card, the card payment, once (the
# repayment that moves it on from the budget's card account, and the mirror of that when the card payment is
# refunded, are the ledger's own bookkeeping). A refund of a card repayment is money back in.
RECOVERY_REPAYMENT_CODE = "recovery_repayment"
RECOVERY_CARD = f"card:{CardPaymentPurpose.RECOVERY}"


def transactions(
    budget: Budget,
    *,
    line_id: int | None = None,
    since: datetime.date | None = None,
    until=None,
    account_ids: list[int] | None = None,
) -> QuerySet[Transfer]:
    """Money moved for the budget, newest first: spending on each line, and payments into the accounts that hold
    the money for the person. `account_ids`: the budget's BudgetAccount accounts, when the caller has them. The
    ledger's own steps in paying a recovery notice back by card are left out (see the note on RECOVERY_CARD)."""
    if account_ids is None:
        account_ids = list(BudgetAccount.objects.filter(budget=budget).values_list("account_id", flat=True))
    card_accounts = BudgetAccount.objects.filter(budget=budget, purpose__startswith="card:").values("account_id")
    query = (
        Transfer.objects.filter(phase__in=MOVED)
        .filter(Q(debit_account_id__in=account_ids) | Q(credit_account_id__in=account_ids))
        .exclude(code__in=BOOKKEEPING)
        .exclude(code=RECOVERY_REFUND_CODE)
        .exclude(code=RECOVERY_REPAYMENT_CODE, debit_account_id__in=card_accounts)
    )
    if line_id is not None:
        line = budget.lines.filter(pk=line_id).first()
        query = query.filter(debit_account_id=line.spend_account_id) if line else query.none()
    if since:
        query = query.filter(effective_date__gte=since)
    if until:
        query = query.filter(effective_date__lte=until)
    return query.order_by("-effective_date", "-id")


def _notice_number(transfer: Transfer) -> str:
    """The recovery notice a posting is about, from its key ("recovery:<id>:claim", ...)."""
    parts = transfer.idempotency_key.split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "recovery" and parts[1].isdigit() else ""


def _recovery_row(transfer: Transfer, debit: str, credit: str, from_balance: set[str]) -> Transaction | None:
    """A recovery notice's posting or a card payment towards one, as the person reads it; None for anything else,
    and for the ledger's own steps (which `transactions` leaves out already). A notice asking back money the
    direct-payment account still holds takes it out of that balance when issued (and puts back what is withdrawn),
    so its claim is money out and paying it back later moves nothing more: `from_balance`, those notices' numbers."""
    amount, day = format_pence(transfer.amount), transfer.effective_date
    notice = _notice_number(transfer)
    about = f"recovery notice {notice}" if notice else "recovery notice"
    if transfer.code in ("recovery_claim", "recovery_closing"):
        if credit.startswith("held:"):
            return Transaction(day, f"Money asked back from the account: {amount} ({about})", "", 0, transfer.amount)
        return Transaction(day, f"Money asked back: {amount} ({about})", "", 0, 0)
    if transfer.code == "recovery_released":
        how = "withdrawn" if "withdrawn" in transfer.description else "reduced"
        back = transfer.amount if debit.startswith("held:") else 0
        return Transaction(day, f"No longer asked back: {amount} ({about} {how} after reconsideration)", "", back, 0)
    if transfer.code == "recovery_write_off":
        return Transaction(day, f"No longer asked back: {amount} ({about}, written off)", "", 0, 0)
    if transfer.code == RECOVERY_REPAYMENT_CODE:
        if debit.startswith("card:"):
            return None  # the card payment's own row says it
        out = 0 if notice in from_balance else transfer.amount  # already out of the balance when it was asked for
        return Transaction(day, f"Paid back {amount} by bank transfer ({about})", "", 0, out)
    if transfer.code == RECOVERY_REFUND_CODE:
        return None  # owed again: the refund's own row says it, and the notice shows what is left to pay
    if transfer.code == CARD_PAYMENT_CODE and credit == RECOVERY_CARD:
        return Transaction(day, f"Paid back {amount} by card", "", 0, transfer.amount)
    if transfer.code == CARD_REFUND_CODE and debit == RECOVERY_CARD:
        return Transaction(day, f"Refunded {amount} to your card (money you paid back)", "", transfer.amount, 0)
    return None


def describe(
    budget: Budget, transfers, *, names: AccountNames | None = None, checks: bool = False
) -> list[Transaction]:
    """Turn ledger transfers into lines a person reads: what, which plan line, money in or out. `checks`: note on
    spending flagged for checking whether it is still to be checked or what was decided (two more queries)."""
    names = names or account_names(budget)
    spend_accounts, purposes = names.spend, names.purposes
    transfers = list(transfers)
    notes = check_notes(budget, transfers) if checks else {}
    repaid = {_notice_number(transfer) for transfer in transfers if transfer.code == RECOVERY_REPAYMENT_CODE}
    from_balance = (
        {
            str(pk)
            for pk in Recovery.objects.filter(pk__in=repaid - {""}, from_balance=True).values_list("pk", flat=True)
        }
        if repaid
        else set()
    )
    rows = []
    for transfer in transfers:
        debit, credit = purposes.get(transfer.debit_account_id, ""), purposes.get(transfer.credit_account_id, "")
        description = transfer.description or transfer.code.replace("_", " ").capitalize()
        if transfer.code.startswith("recovery_") or transfer.code in (CARD_PAYMENT_CODE, CARD_REFUND_CODE):
            recovery = _recovery_row(transfer, debit, credit, from_balance)
            if recovery is not None:
                rows.append(recovery)
                continue
            if transfer.code.startswith("recovery_"):
                continue  # the ledger's own step in a card repayment, or its refund: shown once, by the card's row
        if transfer.debit_account_id in spend_accounts and transfer.credit_account_id in spend_accounts:
            # Spending moved between lines (uncoded spending coded after checking): nothing came in or went out.
            line = spend_accounts[transfer.debit_account_id]
            rows.append(Transaction(transfer.effective_date, description, line, 0, 0))
        elif transfer.debit_account_id in spend_accounts:
            rows.append(
                Transaction(
                    transfer.effective_date,
                    description,
                    spend_accounts[transfer.debit_account_id],
                    0,
                    transfer.amount,
                    notes.get(transfer.pk, ""),
                )
            )
        elif debit.startswith("held:") or credit.startswith("card:"):
            rows.append(Transaction(transfer.effective_date, description, "", transfer.amount, 0))
        else:
            rows.append(Transaction(transfer.effective_date, description, "", 0, transfer.amount))
    return rows


# --- What was decided about flagged spending, as the person reads it (budgets/spending.py, spend_check) ----------

SPEND_KEY_PREFIXES = {"dp_spend": "dp-spend:", "holder_spend": "holder-spend:"}  # spending._post_spend's keys
TO_BE_CHECKED = "To be checked by your care coordinator"


def checker_title(*, is_coordinator: bool) -> str:
    return "care coordinator" if is_coordinator else "care broker"


def check_outcome(spend, *, checker: str) -> str:
    """What the person reads about flagged spending: that it is still to be checked, or what was decided ("Checked
    by your care coordinator on 3 November 2026: accepted"); "" for spending nobody flagged. `spend` has its budget
    line and plan line read with it."""
    if not spend.flag:
        return ""
    if not spend.check_decision:
        return TO_BE_CHECKED
    decided = {
        SpendCheck.CODED: "matched to "
        + (spend.budget_line.plan_line.description if spend.budget_line_id else "a part of your plan"),
        SpendCheck.ACCEPTED: "accepted",
        SpendCheck.RECOVERY: "referred for recovery. You may be asked to pay it back: if so, you will get a letter",
    }[spend.check_decision]
    return f"Checked by your {checker} on {format_date(timezone.localtime(spend.checked_at))}: {decided}"


def with_checker(spends: QuerySet) -> QuerySet:
    """Flagged spending with what `check_outcome` reads: the line, and whether a care coordinator checked it."""
    coordinator = RoleMembership.objects.filter(user=OuterRef("checked_by"), role=Role.CARE_COORDINATOR)
    return spends.select_related("budget_line__plan_line").annotate(checked_by_coordinator=Exists(coordinator))


def outcome_text(spend) -> str:
    return check_outcome(spend, checker=checker_title(is_coordinator=getattr(spend, "checked_by_coordinator", False)))


def check_notes(budget: Budget, transfers: list[Transfer]) -> dict[int, str]:
    """For each spending transfer whose spending was flagged: whether it is still to be checked, or what was decided.
    By transfer id; one query for each kind of spending, whatever the number."""
    keys: dict[str, dict[str, int]] = {code: {} for code in SPEND_KEY_PREFIXES}
    for transfer in transfers:
        prefix = SPEND_KEY_PREFIXES.get(transfer.code)
        if prefix and transfer.idempotency_key.startswith(prefix):
            keys[transfer.code][transfer.idempotency_key.removeprefix(prefix)] = transfer.pk
    notes = {}
    for code, model in (("dp_spend", DirectPaymentSpend), ("holder_spend", HolderSpend)):
        if not keys[code]:
            continue
        flagged = model.objects.filter(budget=budget, idempotency_key__in=list(keys[code])).exclude(flag=SpendFlag.NONE)
        for spend in with_checker(flagged):
            notes[keys[code][spend.idempotency_key]] = outcome_text(spend)
    return notes


def upcoming(budget: Budget, limit: int = 8) -> list[tuple[datetime.date, str, int]]:
    """Payments coming up: instalments into the direct-payment account and transfers to a holder."""
    due = ScheduledPayment.objects.filter(budget=budget, status=PaymentStatus.DUE).select_related("holder")[:limit]
    return [
        (
            payment.due_on,
            "paid into the direct-payment account"
            if payment.kind == "direct_payment"
            else f"paid to {payment.holder.name}, who holds part of the budget",
            payment.amount_pence - payment.offset_pence,
        )
        for payment in due
    ]
