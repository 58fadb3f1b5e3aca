"""Spending from a direct payment or by a third-party holder, holder returns, and money into the dedicated
account. Direct-payment spending: each purchase is posted from the dedicated account to the plan line it pays for,
or to the budget's uncoded account and flagged for review (rule 9). The account's no-overdraft limit means
nobody can record spending the account does not hold."""

from __future__ import annotations

import dataclasses
import datetime
import functools

import pghistory
from django.conf import settings
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from accounts.tasks import send_email
from brokerage.models import CarePlan, ConnectedPerson, ManagementType, Person, PlanStatus
from budgets.models import (
    Budget,
    BudgetAccount,
    BudgetLine,
    DirectPaymentMoneyIn,
    DirectPaymentReturn,
    DirectPaymentSpend,
    HolderReturn,
    HolderSpend,
    MoneyInSource,
    SpendCheck,
    SpendFlag,
    StopDecision,
    StopGround,
)
from budgets.services import BudgetError, budget_account
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.exceptions import InsufficientFunds, LedgerError
from ledger.models import AccountKind, Phase, Transfer

MAX_SPEND_PENCE = 50_000_00
NOT_ENOUGH = "The direct-payment account does not hold enough for this"
MOVED = (Phase.POSTED, Phase.POST_PENDING)  # the phases that move money; pending ones only reserve it
CONNECTED_REFUSED = (
    "You cannot pay a spouse, partner, or a family member or friend who lives with the person, until the ICB "
    "has approved that it is necessary. Ask the care coordinator"
)
HOLDER_NOT_ENOUGH = "Your organisation does not hold enough for this budget to pay this"
SPENT_AHEAD = "The date paid must be today or in the past"
SPENT_BEFORE_START = "The payment is dated before the budget started on {start:%-d %B %Y}"


class SpendDateError(BudgetError):
    """The date paid is before the budget started or after today; it belongs on the form's date field."""

    field = "spent_on"


def spend_date_problem(budget, spent_on: datetime.date) -> str | None:
    """Why money cannot have been spent from the budget on `spent_on`, else None: a budget pays nothing before it
    started (as an invoice cannot be dated before it: budgets/invoices.py), and nothing is paid in the future.
    Forms call this to show the error beside the date; the spending services call it again, so nothing skips it."""
    if spent_on < budget.start_date:
        return SPENT_BEFORE_START.format(start=budget.start_date)
    if spent_on > timezone.localdate():
        return SPENT_AHEAD
    return None


def check_spend_date(budget, spent_on: datetime.date) -> None:
    problem = spend_date_problem(budget, spent_on)
    if problem is not None:
        raise SpendDateError(problem)


RECEIVED_AHEAD = "The date the money arrived must be today or in the past"
RECEIVED_BEFORE_START = "The money is dated before the budget started on {start:%-d %B %Y}"


class MoneyInDateError(BudgetError):
    """The date money arrived in the direct-payment account is before the budget started or after today; it belongs
    on the form's date field."""

    field = "received_on"


def money_in_date_problem(budget, received_on: datetime.date) -> str | None:
    """Why money cannot have arrived in the budget's direct-payment account on `received_on`, else None: the same
    rule as spending (`spend_date_problem`), between the budget's start and today. Forms and API serializers call it
    to put the message by the date; `dp_money_in_record` calls it again, so nothing skips it."""
    if received_on < budget.start_date:
        return RECEIVED_BEFORE_START.format(start=budget.start_date)
    if received_on > timezone.localdate():
        return RECEIVED_AHEAD
    return None


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
    check_spend_date(budget, spent_on)
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
    check_spend_date(budget, spent_on)
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
    if (problem := money_in_date_problem(budget, received_on)) is not None:
        raise MoneyInDateError(problem)
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


# --- Checking flagged spending (rules 9 and 10) ----------------------------------------------------------------
# Spending not coded to a plan line, or in a category the budget cannot pay for, is recorded and flagged; the care
# coordinator or broker then checks each item from the budget's monitoring page: codes it to a plan line (the money
# moves from the uncoded account to that line's spend account by a correcting transfer: the ledger is never
# changed), accepts it as checked with a written reason, or refers it for recovery (finance then writes the notice
# on its own page). Who decided and when is on the spend's row, and its history (pghistory) keeps the change.

SPEND_KINDS: dict[str, type[DirectPaymentSpend] | type[HolderSpend]] = {
    "purchase": DirectPaymentSpend,  # from the direct payment, recorded by the person (or for them)
    "holder": HolderSpend,  # by a third-party holder
}
CHECKERS = (Role.CARE_BROKER, Role.CARE_COORDINATOR)
CHECK_NOT_YOURS = "Only the person's care coordinator or broker can check flagged spending"
CHECK_OWN = "You recorded this spending, so someone else must check it"
CHECK_DONE = "This spending has already been checked"
CHECK_NOT_FLAGGED = "This spending was not flagged for checking"
CHECK_CHOOSE = "Choose what to do with this spending"
CHECK_LINE = "Choose the part of the plan it paid for"
CHECK_REASONS = {
    SpendCheck.ACCEPTED: "Enter why the spending is accepted",
    SpendCheck.RECOVERY: "Enter why the money should be paid back",
}
CHECK_CODED_ALREADY = "This spending is already coded to a line of the plan: accept it or refer it for recovery"
CORRECTION_CODE = "spend_coded"


@dataclasses.dataclass(frozen=True)
class FlaggedSpend:
    """One flagged item as the monitoring page lists it."""

    kind: str  # a key of SPEND_KINDS
    spend: DirectPaymentSpend | HolderSpend

    @property
    def recorded_for(self) -> str:
        return f"{self.spend.holder.name} (third-party holder)" if self.kind == "holder" else "Direct payment"

    @property
    def why(self) -> str:
        if self.spend.flag == SpendFlag.PROHIBITED:
            category = getattr(self.spend, "category", None)
            return f"{category.name}: a kind of purchase the budget cannot pay for" if category else "Not allowed"
        return "Not coded to a line of the plan"

    @property
    def check_url(self) -> str:
        if self.kind == "holder":
            return reverse(
                "budgets:holder-spend-check", kwargs={"pk": self.spend.budget_id, "holder_spend_pk": self.spend.pk}
            )
        return reverse("budgets:purchase-check", kwargs={"pk": self.spend.budget_id, "purchase_pk": self.spend.pk})

    @property
    def can_be_coded(self) -> bool:
        return self.spend.budget_line_id is None


def may_check_spending(user, budget) -> bool:
    """The person's care coordinator or broker (assigned to them) checks flagged spending."""
    return user.has_role(*CHECKERS) and user.has_perm("brokerage.run_budget", budget.plan)


def flagged_spending(budget, *, checked: bool = False) -> list[FlaggedSpend]:
    """The budget's flagged spending still to check (or, `checked`, already checked, most recent decision first),
    both kinds in one list: two queries whatever the number."""
    items = []
    for kind, model in SPEND_KINDS.items():
        related = ["budget_line__plan_line", "recorded_by", "checked_by"]
        related += ["category"] if model is DirectPaymentSpend else ["holder"]
        rows = model.objects.filter(budget=budget).exclude(flag=SpendFlag.NONE).select_related(*related)
        rows = rows.exclude(check_decision="") if checked else rows.filter(check_decision="")
        items += [FlaggedSpend(kind, spend) for spend in rows]
    if checked:
        return sorted(items, key=lambda item: (item.spend.checked_at, item.spend.pk), reverse=True)
    return sorted(items, key=lambda item: (item.spend.spent_on, item.kind, item.spend.pk))


@dataclasses.dataclass(frozen=True)
class SpendingToCheck:
    """A budget with flagged spending still to check, for the dashboards."""

    budget: Budget
    count: int


def spending_to_check(user) -> list[SpendingToCheck]:
    """Budgets of the people assigned to this care coordinator or broker (those whose flagged spending they may
    check) with flagged spending still to check, by person: one query, whatever the number of people or items."""
    if not user.is_authenticated or not user.has_role(*CHECKERS):
        return []
    assigned = Person.assigned_staff.through.objects.filter(user=user).values("person_id")
    counts = {}
    for name, model in (("purchases", DirectPaymentSpend), ("holder", HolderSpend)):
        waiting = model.objects.filter(budget=OuterRef("pk"), check_decision="").exclude(flag=SpendFlag.NONE)
        counts[name] = Coalesce(
            Subquery(waiting.values("budget").annotate(n=Count("pk")).values("n")), 0, output_field=IntegerField()
        )
    budgets = (
        Budget.objects.filter(Q(plan__person__care_coordinator=user) | Q(plan__person__in=assigned))
        .annotate(**counts)
        .filter(Q(purchases__gt=0) | Q(holder__gt=0))
        .select_related("plan__person")
        .order_by("plan__person__family_name", "plan__person__given_name", "pk")
    )
    return [SpendingToCheck(budget, budget.purchases + budget.holder) for budget in budgets]


def flagged_spend_get(budget, kind: str, pk: int) -> FlaggedSpend | None:
    """One of the budget's flagged items, checked or not; None if there is no such item on this budget."""
    model = SPEND_KINDS.get(kind)
    if model is None:
        return None
    spend = model.objects.filter(budget=budget, pk=pk).exclude(flag=SpendFlag.NONE).first()
    return FlaggedSpend(kind, spend) if spend is not None else None


def check_lines(item: FlaggedSpend):
    """The plan lines flagged spending may be coded to: the direct payment's lines for a purchase, the lines the
    holder holds for a holder's spending."""
    lines = item.spend.budget.lines.select_related("plan_line")
    if item.kind == "holder":
        return lines.filter(management_type=ManagementType.THIRD_PARTY, plan_line__third_party_holder=item.spend.holder)
    return lines.filter(management_type=ManagementType.DIRECT_PAYMENT)


def spend_check(
    *, item: FlaggedSpend, decision: str, acting_user, line: BudgetLine | None = None, reasons: str = ""
) -> FlaggedSpend:
    """Record the check of one flagged item, once: coded to a plan line (with a correcting transfer from the
    uncoded account), accepted with reasons, or referred for recovery with reasons."""
    budget = item.spend.budget
    if not may_check_spending(acting_user, budget):
        raise BudgetError(CHECK_NOT_YOURS)
    if decision not in SpendCheck.values:
        raise BudgetError(CHECK_CHOOSE)
    reasons = reasons.strip()
    if decision in CHECK_REASONS and not reasons:
        raise BudgetError(CHECK_REASONS[decision])
    model = SPEND_KINDS[item.kind]
    with transaction.atomic(), pghistory.context(user=acting_user.pk, action="spend_check"):
        spend = model.objects.select_for_update().select_related("budget").get(pk=item.spend.pk)
        if not spend.flag:
            raise BudgetError(CHECK_NOT_FLAGGED)
        if spend.check_decision:
            raise BudgetError(CHECK_DONE)
        if spend.recorded_by_id == acting_user.pk:
            raise BudgetError(CHECK_OWN)
        if decision == SpendCheck.CODED:
            _code_to_line(FlaggedSpend(item.kind, spend), line, acting_user)
        spend.check_decision = decision
        spend.check_reasons = reasons
        spend.checked_by = acting_user
        spend.checked_at = timezone.now()
        spend.save(update_fields=["budget_line", "check_decision", "check_reasons", "checked_by", "checked_at"])
        checked = FlaggedSpend(item.kind, spend)
        _tell_the_person(checked, acting_user)
    return checked


CHECKED_SUBJECT = "Spending from your personal health budget has been checked"
CHECKED_NEXT = {
    SpendCheck.CODED: "They matched it to a part of your care and support plan, so it now counts as spending on that "
    "part of your plan. You do not need to do anything.",
    SpendCheck.ACCEPTED: "They accepted it. You do not need to do anything.",
    SpendCheck.RECOVERY: "They decided it should not have been paid from your budget, and have asked our finance team "
    "to recover the money. If the finance team asks for it back, you will get a letter saying how much, why and by "
    "when, and you can ask us to reconsider. You do not need to pay anything until you get that letter.",
}


def _tell_the_person(item: FlaggedSpend, acting_user) -> None:
    """Email the person, and their representatives and nominees who sign in, what was decided and what happens next,
    once the check commits. Like the statement email, it names no amount and no payee: those stay behind the
    sign-in, on the transactions page, which shows the outcome against the payment."""
    from budgets.person_selectors import checker_title
    from budgets.statements import statement_recipients  # the person, or those who act for them

    spend = item.spend
    budget = spend.budget
    if StopDecision.objects.filter(budget=budget, ground=StopGround.DEATH).exists():
        return  # as for letters (budgets/letters.py): nobody is emailed about spending after a death
    recipients = statement_recipients(budget)
    if not recipients:
        return
    checker = checker_title(is_coordinator=acting_user.has_role(Role.CARE_COORDINATOR))
    what = (
        f"a payment {spend.holder.name} made from your budget on {spend.spent_on:%-d %B %Y}"
        if item.kind == "holder"
        else f"a payment from your direct payment on {spend.spent_on:%-d %B %Y}"
    )
    why = (
        "it looked like a kind of purchase the budget cannot pay for"
        if spend.flag == SpendFlag.PROHIBITED
        else "it was not matched to a part of your plan"
    )
    link = settings.SITE_URL.rstrip("/") + reverse("budgets:my-transactions", kwargs={"pk": budget.pk})
    body = (
        f"Hello,\n\nYour {checker} has checked {what}. It was waiting to be checked because {why}.\n\n"
        f"{CHECKED_NEXT[spend.check_decision]}\n\nSign in to see it on your transactions page:\n\n{link}\n\n"
        "For your privacy this email does not say how much was paid or who to. If you have questions, contact "
        "your care coordinator.\n"
    )
    for email in recipients:
        transaction.on_commit(functools.partial(send_email.defer, subject=CHECKED_SUBJECT, body=body, to=[email]))


def _code_to_line(item: FlaggedSpend, line: BudgetLine | None, acting_user) -> None:
    spend = item.spend
    if spend.budget_line_id is not None:
        raise BudgetError(CHECK_CODED_ALREADY)
    if line is None or not check_lines(item).filter(pk=line.pk).exists():
        raise BudgetError(CHECK_LINE)
    uncoded = BudgetAccount.objects.get(budget=spend.budget, purpose="spend:uncoded").account_id
    today = timezone.localdate()
    try:
        ledger.transfer_post(
            key=f"spend-check:{item.kind}:{spend.pk}",
            debit_account_id=line.spend_account_id,
            credit_account_id=uncoded,
            amount=spend.amount_pence,
            code=CORRECTION_CODE,
            effective_date=ledger_selectors.first_open_day(today),
            reference=f"plan-line:{line.plan_line_id}",
            description=(
                f"Paid to {spend.payee} on {spend.spent_on:%-d %B %Y}: coded to {line.plan_line.description} "
                "after checking"
            )[:300],
            acting_user=acting_user,
        )
    except LedgerError as exc:
        raise BudgetError(f"The money could not be moved to the line: {exc}") from exc
    spend.budget_line = line
