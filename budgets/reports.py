"""Finance reports (read-only): the NHS England quarterly PHB return, and recharges between the funders of
integrated budgets (DESIGN.md §2 rule 21; reference/domain.md rules 28 and 29).

Quarters are of the financial year, April to March: "2026-Q1" is April to June 2026, "2026-Q4" January to
March 2027. The year in the code is the calendar year the financial year starts in.

When a budget is in force
  A budget counts from its `start_date` (it has been set up from an agreed plan: a draft, submitted or merely
  agreed plan is not a PHB). It is in force on every day from then until it ends, where it ends:
  - on the notice end date (`StopDecision.ends_on`) when it was stopped: a stopping budget keeps paying for
    care through its notice period, and is no longer in force from that date, when the final audit may start;
  - on the decision date when it was stopped because the person died;
  - when a later version of the plan replaced it (a variation), on the day the new version's budget starts;
    until then the person keeps the old budget;
  - a budget that is stopping, in final audit or closed with no stop decision on record (not made through the
    services) ends on the day its plan left the live states.
  A suspended budget is still in force: suspension stops payments but does not cancel the plan (rule 16), and
  the person still has a PHB.

The quarterly return (NHS England / NHS Digital "Personal Health Budgets" data collection)
  Two measures, both counts of people, not budgets:
  - received in the year to date: at least one budget in force on at least one day from 1 April of the
    financial year to the quarter's last day;
  - active at quarter end: at least one budget in force on the quarter's last day.
  Adults are 18 or over on the quarter's last day; children and young people are under 18 then.
  By cohort: the person's cohort (`Person.cohort`) as recorded now.
  By type: each budget's management types are those of its lines (one plan may mix them line by line). A person
  counts once in each type they hold across the budgets counted for the measure, so the type rows can add up to
  more than the number of people; the total counts each person once.

Recharges for integrated budgets
  An integrated (co-funded) budget is one whose plan has more than one funder with a share above zero: the ICB,
  the local authority and the person's assessed contribution. For a quarter, for each such budget in force in
  the quarter or with money moving in it:
  - spent: money that reached the budget's spending accounts with an effective date in the quarter (plan-line
    spending, whether provider invoices, direct-payment or third-party spending, spending not coded to a line,
    and liabilities paid when the budget ended), less reversals. Money paid into a direct-payment or third-party
    account but not yet spent is not spending: it is recharged when it is spent;
  - each funder's share of that spending, in proportion to the plan's funding split, apportioned with
    `budgets.selectors.apportion` so the shares add up to the penny;
  - paid: the person's contribution received in the quarter (card payments for the contribution, net of refunds,
    and money into the dedicated account recorded as the contribution), and what each local authority paid the
    ICB for the quarter (budgets/funder_payments.py), shared between that authority's budgets at that ICB in
    proportion to their shares of the spending. A payment for a quarter in which none of the authority's budgets
    there counts is listed apart, as unallocated. The ICB holds the pooled money and pays for everything, so it
    paid the spending less what the others paid in;
  - net = share - paid: above zero the funder owes that much to the ICB that holds the budget; below zero it is
    owed that much (a person who paid their contribution ahead of the spending is in credit). For each budget the
    funders' nets add up to zero.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import re
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Case, QuerySet, Sum, Value, When
from django.utils import timezone

from brokerage.models import CarePlan, Cohort, ManagementType, Person, PlanEvent, PlanStatus
from budgets.models import Budget, BudgetAccount, BudgetLine, FunderPayment, StopDecision, StopGround
from budgets.selectors import apportion
from config.db_router import reads_from_replica
from ledger.models import Transfer
from ledger.selectors import POSTED_PHASES

QUARTER_INVALID = "Enter a quarter like 2026-Q2: the year the financial year starts in, then Q1 to Q4"
QUARTER_YEAR_RANGE = "Enter a year between 2000 and 2099"
FIRST_YEAR, LAST_YEAR = 2000, 2099
ADULT_AGE = 18

_QUARTER_PATTERN = re.compile(r"^\s*(\d{4})\s*[-/ ]?\s*Q\s*([1-4])\s*$", re.IGNORECASE | re.ASCII)


# --- Quarters of the financial year -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class Quarter:
    year: int  # the calendar year the financial year starts in: 2026 is April 2026 to March 2027
    number: int  # 1 (April to June) to 4 (January to March)

    def __post_init__(self):
        if not FIRST_YEAR <= self.year <= LAST_YEAR:
            raise ValueError(QUARTER_YEAR_RANGE)
        if self.number not in (1, 2, 3, 4):
            raise ValueError(QUARTER_INVALID)

    @classmethod
    def parse(cls, text: str) -> Quarter:
        match = _QUARTER_PATTERN.match(text or "")
        if match is None:
            raise ValueError(QUARTER_INVALID)
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, day: datetime.date) -> Quarter:
        year = day.year if day.month >= 4 else day.year - 1
        return cls(year, (day.month - 4) % 12 // 3 + 1)

    @classmethod
    def ending(cls, day: datetime.date) -> Quarter:
        quarter = cls.containing(day)
        if quarter.end != day:
            raise ValueError(f"{day.isoformat()} is not the last day of a quarter")
        return quarter

    @classmethod
    def last_completed(cls, today: datetime.date | None = None) -> Quarter:
        return cls.containing(today or timezone.localdate()).previous()

    def previous(self) -> Quarter:
        return Quarter(self.year, self.number - 1) if self.number > 1 else Quarter(self.year - 1, 4)

    @property
    def start(self) -> datetime.date:
        months = 3 + 3 * (self.number - 1)  # months after January of the starting year
        return datetime.date(self.year + months // 12, months % 12 + 1, 1)

    @property
    def end(self) -> datetime.date:
        last_month = self.start.month + 2
        return datetime.date(self.start.year, last_month, calendar.monthrange(self.start.year, last_month)[1])

    @property
    def year_start(self) -> datetime.date:
        return datetime.date(self.year, 4, 1)

    @property
    def code(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def financial_year(self) -> str:
        return f"{self.year} to {self.year + 1}"

    @property
    def label(self) -> str:
        return f"Quarter {self.number} of {self.financial_year} ({self.start:%B} to {self.end:%B %Y})"


def as_quarter(value: Quarter | datetime.date | tuple[int, int] | str) -> Quarter:
    """A quarter from a Quarter, a quarter's last day, (year, number) or "2026-Q2"; ValueError otherwise."""
    if isinstance(value, Quarter):
        return value
    if isinstance(value, datetime.date):
        return Quarter.ending(value)
    if isinstance(value, str):
        return Quarter.parse(value)
    year, number = value
    return Quarter(int(year), int(number))


# --- When each budget is in force ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Span:
    """A budget's time in force: from `start` up to, not including, `end` (None: still in force)."""

    budget_id: int
    person_id: int
    start: datetime.date
    end: datetime.date | None
    types: frozenset[str]

    def in_force_on(self, day: datetime.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def in_force_between(self, first: datetime.date, last: datetime.date) -> bool:
        return self.start <= last and (self.end is None or self.end > first)


ENDED_STATUSES = (PlanStatus.STOPPING, PlanStatus.FINAL_AUDIT, PlanStatus.CLOSED)


def budget_spans(budgets: QuerySet[Budget]) -> list[Span]:
    """When each budget is in force and which management types it holds (see the module docstring)."""
    rows = list(budgets.values_list("pk", "plan_id", "plan__person_id", "plan__status", "start_date"))
    ids = [row[0] for row in rows]
    types: dict[int, set[str]] = defaultdict(set)
    for budget_id, management_type in BudgetLine.objects.filter(budget_id__in=ids).values_list(
        "budget_id", "management_type"
    ):
        types[budget_id].add(management_type)
    stops: dict[int, datetime.date] = {}
    for budget_id, ground, decided_on, ends_on in (
        StopDecision.objects.filter(budget_id__in=ids)
        .order_by("decided_on", "id")
        .values_list("budget_id", "ground", "decided_on", "ends_on")
    ):
        stops.setdefault(budget_id, decided_on if ground == StopGround.DEATH else ends_on)
    varied = [plan_id for _, plan_id, _, status, _ in rows if status == PlanStatus.VARIED]
    replaced_on = dict(
        Budget.objects.filter(plan__previous_id__in=varied).values_list("plan__previous_id", "start_date")
    )
    unexplained = [plan_id for pk, plan_id, _, status, _ in rows if status in ENDED_STATUSES and pk not in stops]
    left_live: dict[int, datetime.date] = {}
    for plan_id, at in (
        PlanEvent.objects.filter(plan_id__in=unexplained, to_status=PlanStatus.STOPPING)
        .order_by("at", "id")
        .values_list("plan_id", "at")
    ):
        left_live.setdefault(plan_id, timezone.localdate(at))

    spans = []
    for pk, plan_id, person_id, status, start in rows:
        if pk in stops:
            end = stops[pk]
        elif status == PlanStatus.VARIED:
            end = replaced_on.get(plan_id)
        elif status in ENDED_STATUSES:
            end = left_live.get(plan_id)
        else:
            end = None
        spans.append(Span(pk, person_id, start, end, frozenset(types[pk])))
    return spans


# --- The quarterly PHB return ------------------------------------------------------------------------------------

AGE_GROUPS = (("adults", "Adults (18 and over)"), ("cyp", "Children and young people (under 18)"))
TYPES = tuple((value, label.split(" (")[0]) for value, label in ManagementType.choices)


@dataclasses.dataclass(frozen=True)
class CountRow:
    key: str
    label: str
    adults: int
    cyp: int

    @property
    def total(self) -> int:
        return self.adults + self.cyp


@dataclasses.dataclass(frozen=True)
class CountTable:
    caption: str
    heading: str  # what the rows are: "Cohort" or "Type"
    rows: tuple[CountRow, ...]
    total: CountRow


@dataclasses.dataclass(frozen=True)
class Measure:
    key: str  # "ytd" or "active"
    title: str
    description: str
    by_cohort: CountTable
    by_type: CountTable

    @property
    def people(self) -> int:
        return self.by_cohort.total.total


@dataclasses.dataclass(frozen=True)
class PhbReturn:
    quarter: Quarter
    measures: tuple[Measure, ...]


def _count(people: Iterable[tuple[Person, set[str]]], quarter: Quarter, key: str, title: str, description: str):
    by_cohort: dict[str, list[int]] = {value: [0, 0] for value, _ in Cohort.choices}
    by_type: dict[str, list[int]] = {value: [0, 0] for value, _ in TYPES}
    total = [0, 0]
    for person, held in people:
        group = 0 if person.age_on(quarter.end) >= ADULT_AGE else 1
        by_cohort.setdefault(person.cohort, [0, 0])[group] += 1
        for management_type in held:
            by_type.setdefault(management_type, [0, 0])[group] += 1
        total[group] += 1
    cohort_labels = dict(Cohort.choices)
    type_labels = dict(TYPES)
    total_row = CountRow("total", "All people (each counted once)", *total)
    return Measure(
        key=key,
        title=title,
        description=description,
        by_cohort=CountTable(
            caption=f"{title}, by cohort",
            heading="Cohort",
            rows=tuple(CountRow(k, cohort_labels.get(k, k), *v) for k, v in by_cohort.items()),
            total=total_row,
        ),
        by_type=CountTable(
            caption=f"{title}, by type of budget",
            heading="Type of budget",
            rows=tuple(CountRow(k, type_labels.get(k, k), *v) for k, v in by_type.items()),
            total=total_row,
        ),
    )


@reads_from_replica  # heavy reads, no writes: a read replica when there is one
def phb_return(
    quarter: Quarter | datetime.date | tuple[int, int] | str, *, people: QuerySet[Person] | None = None
) -> PhbReturn:
    """The quarter's counts: received in the year to date and active at quarter end, by age group, cohort and
    type. `people` limits it to those (the user's scope); by default everyone."""
    quarter = as_quarter(quarter)
    budgets = Budget.objects.filter(start_date__lte=quarter.end)
    if people is not None:
        budgets = budgets.filter(plan__person__in=people)
    spans = budget_spans(budgets)
    year_to_date: dict[int, set[str]] = defaultdict(set)
    at_end: dict[int, set[str]] = defaultdict(set)
    for span in spans:
        if span.in_force_between(quarter.year_start, quarter.end):
            year_to_date[span.person_id] |= span.types
        if span.in_force_on(quarter.end):
            at_end[span.person_id] |= span.types
    persons = Person.objects.in_bulk(set(year_to_date))
    return PhbReturn(
        quarter=quarter,
        measures=(
            _count(
                ((persons[pk], held) for pk, held in year_to_date.items()),
                quarter,
                "ytd",
                "Received a PHB in the year to date",
                f"People with a budget in force on at least one day from {quarter.year_start.day} "
                f"{quarter.year_start:%B %Y} to {quarter.end.day} {quarter.end:%B %Y}.",
            ),
            _count(
                ((persons[pk], held) for pk, held in at_end.items()),
                quarter,
                "active",
                "Active at quarter end",
                f"People with a budget in force on {quarter.end.day} {quarter.end:%B %Y}, suspended budgets included.",
            ),
        ),
    )


PHB_RETURN_CSV_HEADER = ["Quarter", "Measure", "Breakdown", "Category", "Adults", "Children and young people", "Total"]


def phb_return_csv_rows(report: PhbReturn) -> list[list]:
    rows = []
    for measure in report.measures:
        for table, breakdown in ((measure.by_cohort, "Cohort"), (measure.by_type, "Type")):
            for row in table.rows:
                rows.append([report.quarter.code, measure.title, breakdown, row.label, row.adults, row.cyp, row.total])
        total = measure.by_cohort.total
        rows.append([report.quarter.code, measure.title, "Total", total.label, total.adults, total.cyp, total.total])
    return rows


# --- Recharges between the funders of integrated budgets -----------------------------------------------------------

FUNDER_KINDS = (
    ("icb", "funding_icb", "ICB"),
    ("local_authority", "funding_local_authority", "Local authority"),
    ("contribution", "funding_contribution", "Person's assessed contribution"),
)
CONTRIBUTION_PURPOSES = ("card:contribution", "money-in:contribution")


def _pence(money) -> int:
    return int((money.amount * 100).to_integral_value())


def _is_spending(purpose: str) -> bool:
    return purpose.startswith("spend:") or purpose == "liabilities:paid"


def _signed_apportion(amount: int, weights: list[int]) -> list[int]:
    """`apportion` for a quarter whose reversals outweigh its spending, too."""
    parts = apportion(abs(amount), weights)
    return parts if amount >= 0 else [-part for part in parts]


def _movements(account_purposes: dict[int, tuple[int, str]], quarter: Quarter) -> dict[tuple[int, str], int]:
    """Net debits (debits less credits) posted to each (budget, purpose) account with effective dates in the
    quarter."""
    moved: dict[tuple[int, str], int] = defaultdict(int)
    in_quarter = Transfer.objects.filter(phase__in=POSTED_PHASES, effective_date__range=(quarter.start, quarter.end))
    ids = list(account_purposes)
    for side, sign in (("debit_account_id", 1), ("credit_account_id", -1)):
        totals = in_quarter.filter(**{f"{side}__in": ids}).values(side).annotate(total=Sum("amount"))
        for row in totals:
            moved[account_purposes[row[side]]] += sign * row["total"]
    return moved


@dataclasses.dataclass(frozen=True)
class FunderShare:
    kind: str  # "icb", "local_authority" or "contribution"
    funder_key: tuple[str, int | None]
    funder_name: str
    weight: int  # the plan's funding from this funder, in pence a year
    share: int
    paid: int

    @property
    def net(self) -> int:
        return self.share - self.paid


@dataclasses.dataclass(frozen=True)
class BudgetRecharge:
    budget_id: int
    person_name: str
    nhs_number: str
    icb_name: str
    spent: int
    parts: tuple[FunderShare, ...]

    @property
    def funding_total(self) -> int:
        return sum(part.weight for part in self.parts)

    def percent(self, part: FunderShare) -> str:
        value = part.weight * 100 / self.funding_total if self.funding_total else 0
        return f"{value:.0f}%" if float(value).is_integer() else f"{value:.1f}%"


@dataclasses.dataclass(frozen=True)
class StatementLine:
    budget: BudgetRecharge
    part: FunderShare

    @property
    def percent(self) -> str:
        return self.budget.percent(self.part)


@dataclasses.dataclass(frozen=True)
class FunderStatement:
    key: tuple[str, int | None]
    kind: str
    kind_label: str
    name: str
    lines: tuple[StatementLine, ...]

    @property
    def slug(self) -> str:
        return f"{self.key[0]}-{self.key[1] or 'unknown'}"

    @property
    def spent(self) -> int:
        return sum(line.budget.spent for line in self.lines)

    @property
    def share(self) -> int:
        return sum(line.part.share for line in self.lines)

    @property
    def paid(self) -> int:
        return sum(line.part.paid for line in self.lines)

    @property
    def net(self) -> int:
        return self.share - self.paid


@dataclasses.dataclass(frozen=True)
class UnallocatedPayment:
    """A local authority's payment for the quarter with none of its integrated budgets at that ICB in the report."""

    icb_name: str
    local_authority_name: str
    amount: int


@dataclasses.dataclass(frozen=True)
class Recharges:
    quarter: Quarter
    budgets: tuple[BudgetRecharge, ...]
    statements: tuple[FunderStatement, ...]
    unallocated: tuple[UnallocatedPayment, ...] = ()

    @property
    def spent(self) -> int:
        return sum(budget.spent for budget in self.budgets)


def _funder(kind: str, person: Person) -> tuple[tuple[str, int | None], str]:
    if kind == "icb":
        return ("icb", person.icb_id), person.icb.name
    if kind == "local_authority":
        if person.local_authority_id is None:
            return ("local_authority", None), "Local authority not recorded"
        return ("local_authority", person.local_authority_id), person.local_authority.name
    return ("contribution", person.pk), f"{person.full_name} (assessed contribution)"


@reads_from_replica  # heavy reads, no writes: a read replica when there is one
def recharges(year_or_quarter, quarter: int | None = None, *, people: QuerySet[Person] | None = None) -> Recharges:
    """Per funder, what it owes or is owed for the quarter's spending on the integrated budgets it co-funds.
    Call as `recharges(2026, 2)`, or with a Quarter, a quarter's last day or "2026-Q2"."""
    period = as_quarter((year_or_quarter, quarter) if quarter is not None else year_or_quarter)
    funders = sum(
        (Case(When(**{f"plan__{field}__gt": 0}, then=Value(1)), default=Value(0)) for _, field, _ in FUNDER_KINDS),
        start=Value(0),
    )
    budgets = (
        Budget.objects.filter(start_date__lte=period.end)
        .annotate(funders=funders)
        .filter(funders__gt=1)
        .select_related("plan__person__icb", "plan__person__local_authority")
    )
    if people is not None:
        budgets = budgets.filter(plan__person__in=people)
    co_funded = {budget.pk: budget for budget in budgets}
    accounts = {
        row.account_id: (row.budget_id, row.purpose)
        for row in BudgetAccount.objects.filter(budget_id__in=co_funded)
        if _is_spending(row.purpose) or row.purpose in CONTRIBUTION_PURPOSES
    }
    moved = _movements(accounts, period)
    spent: dict[int, int] = defaultdict(int)
    contributed: dict[int, int] = defaultdict(int)
    for (budget_id, purpose), amount in moved.items():
        if _is_spending(purpose):
            spent[budget_id] += amount  # an expense: debits are spending
        else:
            contributed[budget_id] -= amount  # equity: credits are money paid in
    in_force = {
        span.budget_id
        for span in budget_spans(Budget.objects.filter(pk__in=co_funded))
        if span.in_force_between(period.start, period.end)
    }

    counted = []  # (budget, its funders' weights, their shares of the spending)
    for pk, budget in sorted(co_funded.items(), key=lambda item: (item[1].plan.person.full_name, item[0])):
        if pk not in in_force and not spent[pk] and not contributed[pk]:
            continue
        weights = [_pence(getattr(budget.plan, field)) for _, field, _ in FUNDER_KINDS]
        counted.append((budget, weights, _signed_apportion(spent[pk], weights)))
    from_authorities, unallocated = _authority_payments(period, counted, people)

    lines: list[BudgetRecharge] = []
    for budget, weights, shares in counted:
        pk = budget.pk
        plan: CarePlan = budget.plan
        person = plan.person
        paid = {"local_authority": from_authorities.get(pk, 0), "contribution": contributed[pk]}
        paid["icb"] = spent[pk] - paid["local_authority"] - paid["contribution"]
        parts = []
        for (kind, _, _), weight, share in zip(FUNDER_KINDS, weights, shares, strict=True):
            if weight <= 0 and not paid[kind]:  # kept when it paid without a share, so the nets still add to zero
                continue
            key, name = _funder(kind, person)
            parts.append(FunderShare(kind, key, name, weight, share, paid[kind]))
        lines.append(
            BudgetRecharge(pk, person.full_name, person.nhs_number_display, person.icb.name, spent[pk], tuple(parts))
        )

    grouped: dict[tuple[str, int | None], list[StatementLine]] = defaultdict(list)
    names: dict[tuple[str, int | None], tuple[str, str]] = {}
    for line in lines:
        for part in line.parts:
            grouped[part.funder_key].append(StatementLine(line, part))
            names[part.funder_key] = (part.kind, part.funder_name)
    kind_order = {kind: index for index, (kind, _, _) in enumerate(FUNDER_KINDS)}
    kind_labels = {kind: label for kind, _, label in FUNDER_KINDS}
    statements = tuple(
        FunderStatement(key, names[key][0], kind_labels[names[key][0]], names[key][1], tuple(grouped[key]))
        for key in sorted(grouped, key=lambda k: (kind_order[k[0]], names[k][1], k[1] or 0))
    )
    return Recharges(quarter=period, budgets=tuple(lines), statements=statements, unallocated=unallocated)


LOCAL_AUTHORITY_INDEX = [kind for kind, _, _ in FUNDER_KINDS].index("local_authority")


def _authority_payments(
    period: Quarter, counted, people: QuerySet[Person] | None
) -> tuple[dict[int, int], tuple[UnallocatedPayment, ...]]:
    """What each local authority paid an ICB for the quarter, shared between that authority's budgets there in
    proportion to their shares of the spending (or, when nothing was spent, of the plans' funding), to the penny.
    A payment with no such budget in the report is returned apart, so it is shown rather than lost."""
    received: dict[tuple[int, int], int] = defaultdict(int)
    names: dict[tuple[int, int], tuple[str, str]] = {}
    payments = FunderPayment.objects.filter(quarter=period.code, reversal__isnull=True).select_related(
        "icb", "local_authority"
    )
    if people is not None:  # the ICBs of the people the report is for
        payments = payments.filter(icb_id__in=people.values("icb_id"))
    for payment in payments:
        received[(payment.icb_id, payment.local_authority_id)] += payment.amount_pence
        names[(payment.icb_id, payment.local_authority_id)] = (payment.icb.name, payment.local_authority.name)
    groups: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for budget, weights, shares in counted:
        person = budget.plan.person
        if weights[LOCAL_AUTHORITY_INDEX] > 0 and person.local_authority_id is not None:
            key = (person.icb_id, person.local_authority_id)
            groups[key].append((budget.pk, max(shares[LOCAL_AUTHORITY_INDEX], 0), weights[LOCAL_AUTHORITY_INDEX]))
    allocated: dict[int, int] = {}
    unallocated = []
    for key, amount in sorted(received.items()):
        members = groups.get(key)
        if not members:
            unallocated.append(UnallocatedPayment(*names[key], amount))
            continue
        by_share = [share for _, share, _ in members]
        parts = apportion(amount, by_share if any(by_share) else [weight for _, _, weight in members])
        for (budget_id, _, _), part in zip(members, parts, strict=True):
            allocated[budget_id] = part
    return allocated, tuple(unallocated)


RECHARGES_CSV_HEADER = [
    "Quarter",
    "Funder type",
    "Funder",
    "Budget",
    "Person",
    "NHS number",
    "Funder's part of the budget",
    "Spent in the quarter (pence)",
    "Share of the spending (pence)",
    "Paid (pence)",
    "Owes, or is owed if negative (pence)",
]


def recharges_csv_rows(report: Recharges, statements: Iterable[FunderStatement] | None = None) -> list[list]:
    rows = []
    for statement in report.statements if statements is None else statements:
        for line in statement.lines:
            rows.append(
                [
                    report.quarter.code,
                    statement.kind_label,
                    statement.name,
                    line.budget.budget_id,
                    line.budget.person_name,
                    line.budget.nhs_number,
                    line.percent,
                    line.budget.spent,
                    line.part.share,
                    line.part.paid,
                    line.part.net,
                ]
            )
        rows.append(
            [
                report.quarter.code,
                statement.kind_label,
                statement.name,
                "TOTAL",
                "",
                "",
                "",
                statement.spent,
                statement.share,
                statement.paid,
                statement.net,
            ]
        )
    return rows
