"""Finance reports: the NHS England quarterly PHB return checked against a seeded population whose counts this
test works out for itself from its own list of people, and recharges between the funders of integrated budgets
worked out by hand to the penny. Who may see the reports, and what bad input gets."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.utils import timezone
from djmoney.money import Money

from accounts.roles import Role
from brokerage import services as plans
from brokerage.models import Cohort, ManagementType
from budgets import funder_payments, invoices, monitoring, reports, services, spending
from budgets.models import FunderPayment, ScheduledPayment, StopGround, SuspensionReason
from tests.brokerage.helpers import complete_plan, make_person, service, team
from tests.factories import OrganisationFactory, user_with_role

pytestmark = pytest.mark.django_db

N, TP, DP = ManagementType.NOTIONAL, ManagementType.THIRD_PARTY, ManagementType.DIRECT_PAYMENT
CHC, CCC, S117 = Cohort.CONTINUING_HEALTHCARE, Cohort.CHILDRENS_CONTINUING_CARE, Cohort.S117_AFTERCARE
WHEELCHAIR, OTHER = Cohort.WHEELCHAIR, Cohort.OTHER
D = datetime.date


# --- Building plans and budgets through the services -----------------------------------------------------------


def agreed_plan(crew, person, types, funding=(12000, 0, 0)):
    """Journey 1's plan cut down to the lines of `types`, with a funding split (ICB, LA, contribution) in pounds,
    submitted, approved and agreed."""
    plan = complete_plan(person=person, broker=crew["broker"], coordinator=crew["coordinator"])
    for line in plan.lines.all():
        if line.management_type not in types:
            plans.plan_item_remove(plan=plan, acting_user=crew["broker"], item=line)
    _fund_and_agree(crew, plan, funding)
    return plan


def _fund_and_agree(crew, plan, funding):
    icb, la, contribution = funding
    plans.plan_update(
        plan=plan,
        acting_user=crew["broker"],
        section="budget",
        indicative_budget=Money(icb + la + contribution, "GBP"),
        budget=Money(icb + la + contribution, "GBP"),
        funding_icb=Money(icb, "GBP"),
        funding_local_authority=Money(la, "GBP"),
        funding_contribution=Money(contribution, "GBP"),
    )
    plans.plan_submit(plan=plan, acting_user=crew["broker"])
    plans.plan_approve(plan=plan, acting_user=crew["approver"])
    plans.plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name=plan.person.full_name,
        agreed_on=timezone.localdate(),  # an agreement is dated from the approval (today) on
        icb_signatory=crew["approver"],
    )


def set_up(crew, plan, start, *, pay_first=False):
    budget = services.budget_set_up(plan=plan, acting_user=crew["finance"], start_date=start)
    if pay_first:  # the first payment makes the plan active
        for payment in ScheduledPayment.objects.filter(budget=budget, due_on=start):
            services.scheduled_payment_pay(payment=payment, acting_user=crew["finance"])
    return budget


def varied_to_notional(crew, person):
    """A new version of the person's plan: the direct payment replaced by district nursing (same budget)."""
    plan = plans.plan_create(person=person, acting_user=crew["broker"])
    for line in plan.lines.all():
        plans.plan_item_remove(plan=plan, acting_user=crew["broker"], item=line)
    nursing = service(
        "District nursing visit", "Nursing care", "Northumbria Nursing", cqc="1-1000001", rate="58.00", unit="visit"
    )
    plans.line_add(
        plan=plan,
        acting_user=crew["broker"],
        description="District nursing",
        category=nursing.category,
        outcome=plan.outcomes.first(),
        management_type=N,
        frequency="2 visits a week",
        quantity=Decimal("104"),
        unit_cost=nursing.unit_rate,
        service=nursing,
    )
    _fund_and_agree(crew, plan, (12000, 0, 0))
    return plan


# --- The seeded population: what happened to each person, and so when each budget is in force -------------------


@dataclasses.dataclass
class Seeded:
    """One budget as this test knows it: its types and the first and last days it is in force (None: open)."""

    types: set
    first: datetime.date
    last: datetime.date | None


@dataclasses.dataclass
class Someone:
    name: str
    born: datetime.date
    cohort: str
    budgets: list[Seeded]


# Notice periods are 28 days (the plan's), counted from the stop decision: a budget stopped on 1 July is in force
# until 28 July; after a death it is not in force from the day of the decision.
POPULATION = [
    Someone("Ada", D(2007, 12, 31), CHC, [Seeded({N}, D(2025, 5, 1), None)]),  # 18 on 31 December 2025
    Someone("Ben", D(2008, 1, 1), CCC, [Seeded({DP}, D(2025, 6, 1), None)]),  # 17 on 31 December 2025
    Someone("Cara", D(1950, 3, 3), S117, [Seeded({N, TP, DP}, D(2024, 1, 10), None)]),  # mixes all three
    Someone("Dev", D(1980, 8, 8), WHEELCHAIR, [Seeded({N}, D(2025, 2, 1), D(2025, 3, 28))]),  # consent withdrawn
    Someone("Eve", D(1970, 2, 2), OTHER, [Seeded({TP}, D(2025, 3, 1), D(2025, 7, 28))]),  # consent withdrawn
    Someone("Fay", D(1990, 9, 9), CHC, [Seeded({DP}, D(2025, 4, 1), None)]),  # suspended from 1 November 2025
    Someone("Gus", D(2015, 5, 5), CCC, [Seeded({N, DP}, D(2026, 1, 15), None)]),  # starts in 2026
    Someone("Hal", D(1960, 6, 6), CHC, [Seeded({DP}, D(2024, 6, 1), D(2025, 12, 30))]),  # died; decision 31 Dec
    Someone("Ivy", D(2012, 6, 30), OTHER, [Seeded({TP, DP}, D(2025, 9, 1), D(2026, 1, 6))]),  # stopped 10 Dec
    Someone("Jon", D(2010, 1, 1), OTHER, []),  # an agreed plan, never set up
    Someone(
        "Kim",
        D(1985, 4, 4),
        S117,
        [Seeded({DP}, D(2024, 9, 1), D(2025, 10, 31)), Seeded({N}, D(2025, 11, 1), None)],  # varied
    ),
    Someone("Lee", D(2000, 10, 10), WHEELCHAIR, [Seeded({DP}, D(2025, 12, 31), None)]),  # starts on a quarter end
    Someone("Mo", D(2009, 1, 1), S117, [Seeded({N, TP}, D(2024, 4, 1), D(2025, 4, 16))]),  # withdrew 20 March
]


def seed(crew) -> dict[str, object]:
    """Make POPULATION happen, through the same services the pages use."""
    people = {}
    for someone in POPULATION:
        people[someone.name] = make_person(
            icb_org=crew["icb"],
            staff=[crew["broker"], crew["coordinator"]],
            given_name=someone.name,
            family_name="Seeded",
            born=someone.born,
            cohort=someone.cohort,
        )

    def budget(name, *, pay_first=False):
        someone = next(s for s in POPULATION if s.name == name)
        first = someone.budgets[0]
        plan = agreed_plan(crew, people[name], first.types)
        return set_up(crew, plan, first.first, pay_first=pay_first)

    finance = crew["finance"]
    for name in ("Ada", "Ben", "Cara", "Gus", "Lee"):
        budget(name)
    monitoring.consent_withdraw(budget=budget("Dev"), acting_user=finance, today=D(2025, 3, 1))
    monitoring.consent_withdraw(budget=budget("Eve"), acting_user=finance, today=D(2025, 7, 1))
    monitoring.suspension_start(
        budget=budget("Fay", pay_first=True),
        reason=SuspensionReason.HOSPITAL,
        reasons="In hospital for ten weeks",
        acting_user=finance,
        today=D(2025, 11, 1),
    )
    monitoring.stop_decide(
        budget=budget("Hal", pay_first=True),
        ground=StopGround.DEATH,
        reasons="Hal died",
        acting_user=finance,
        today=D(2025, 12, 31),
    )
    monitoring.stop_decide(
        budget=budget("Ivy", pay_first=True),
        ground=StopGround.NEEDS_NOT_MET,
        reasons="Needs now met by the school",
        acting_user=finance,
        today=D(2025, 12, 10),
    )
    agreed_plan(crew, people["Jon"], {TP})
    budget("Kim", pay_first=True)
    set_up(crew, varied_to_notional(crew, people["Kim"]), D(2025, 11, 1))
    monitoring.consent_withdraw(budget=budget("Mo"), acting_user=finance, today=D(2025, 3, 20))
    return people


# --- The counts, worked out here from POPULATION alone ----------------------------------------------------------

COHORTS = [
    (CHC, "NHS continuing healthcare"),
    (CCC, "Children's continuing care"),
    (S117, "Section 117 aftercare"),
    (WHEELCHAIR, "Wheelchair"),
    (OTHER, "Other"),
]
TYPE_LABELS = [(N, "Notional budget"), (TP, "Third-party budget"), (DP, "Direct payment")]
ALL_PEOPLE = "All people (each counted once)"
YTD, ACTIVE = "Received a PHB in the year to date", "Active at quarter end"


def age(born, day):
    years = day.year - born.year
    return years - 1 if (day.month, day.day) < (born.month, born.day) else years


def in_force(seeded: Seeded, first_day, last_day) -> bool:
    return seeded.first <= last_day and (seeded.last is None or seeded.last >= first_day)


def expected(year_start, quarter_end) -> dict[str, dict[str, list[list]]]:
    """{measure: {"cohort": rows, "type": rows}}, each row [label, adults, children and young people, total]."""
    result = {}
    for measure, first_day in ((YTD, year_start), (ACTIVE, quarter_end)):
        cohort_counts = {key: [0, 0] for key, _ in COHORTS}
        type_counts = {key: [0, 0] for key, _ in TYPE_LABELS}
        total = [0, 0]
        for someone in POPULATION:
            held = [b for b in someone.budgets if in_force(b, first_day, quarter_end)]
            if not held:
                continue
            group = 0 if age(someone.born, quarter_end) >= 18 else 1
            cohort_counts[someone.cohort][group] += 1
            for management_type in set().union(*(b.types for b in held)):
                type_counts[management_type][group] += 1
            total[group] += 1
        total_row = [ALL_PEOPLE, total[0], total[1], sum(total)]
        result[measure] = {
            "cohort": [[label, *cohort_counts[k], sum(cohort_counts[k])] for k, label in COHORTS] + [total_row],
            "type": [[label, *type_counts[k], sum(type_counts[k])] for k, label in TYPE_LABELS] + [total_row],
        }
    return result


class Tables(HTMLParser):
    """The page's tables as rows of cell texts, with the table's attributes."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"attrs": dict(attrs), "rows": []})
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_tables(response) -> list[dict]:
    parser = Tables()
    parser.feed(response.content.decode())
    return parser.tables


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def as_numbers(rows):
    return [[label, *(int(cell) for cell in cells)] for label, *cells in rows]


@pytest.fixture
def crew():
    crew = team()
    crew["finance"] = user_with_role(Role.FINANCE_OFFICER, organisation=crew["icb"])
    return crew


QUARTERS = [
    ("2025-Q3", D(2025, 4, 1), D(2025, 12, 31)),
    ("2025-Q1", D(2025, 4, 1), D(2025, 6, 30)),
    ("2025-Q4", D(2025, 4, 1), D(2026, 3, 31)),
    ("2024-Q4", D(2024, 4, 1), D(2025, 3, 31)),
]


def test_the_return_on_screen_and_as_csv_matches_counts_worked_out_from_the_population(client, crew):
    seed(crew)
    client.force_login(crew["finance"])
    for code, year_start, quarter_end in QUARTERS:
        want = expected(year_start, quarter_end)
        page = client.get("/finance/reports/phb-return/", {"quarter": code})
        assert page.status_code == 200
        tables = page_tables(page)
        for measure_key, measure in (("ytd", YTD), ("active", ACTIVE)):
            for breakdown in ("cohort", "type"):
                [table] = [
                    t
                    for t in tables
                    if t["attrs"].get("data-measure") == measure_key and t["attrs"].get("data-breakdown") == breakdown
                ]
                assert as_numbers(table["rows"][1:]) == want[measure][breakdown], (code, measure, breakdown)

        download = client.get("/finance/reports/phb-return/phb-return.csv", {"quarter": code})
        rows = csv_rows(download)
        assert rows[0] == [
            "Quarter",
            "Measure",
            "Breakdown",
            "Category",
            "Adults",
            "Children and young people",
            "Total",
        ]
        for measure in (YTD, ACTIVE):
            cohort = [[r[3], *map(int, r[4:])] for r in rows[1:] if r[1] == measure and r[2] == "Cohort"]
            types = [[r[3], *map(int, r[4:])] for r in rows[1:] if r[1] == measure and r[2] == "Type"]
            [total] = [[r[3], *map(int, r[4:])] for r in rows[1:] if r[1] == measure and r[2] == "Total"]
            assert {r[0] for r in rows[1:]} == {code}
            assert [*cohort, total] == want[measure]["cohort"], (code, measure)
            assert [*types, total] == want[measure]["type"], (code, measure)


def test_the_seeded_quarter_exercises_every_rule_it_claims_to():
    """The expectations above are not trivially zero or all-equal: the boundaries really split people."""
    want = expected(D(2025, 4, 1), D(2025, 12, 31))
    ytd_total, active_total = want[YTD]["cohort"][-1], want[ACTIVE]["cohort"][-1]
    assert ytd_total[3] > active_total[3] > 0  # people ended during the year
    assert ytd_total[2] > 0 and active_total[2] > 0  # children and young people among them
    type_sum = sum(row[3] for row in want[ACTIVE]["type"][:-1])
    assert type_sum > active_total[3]  # mixed budgets count once in each type


def test_the_selector_takes_a_quarter_end_or_a_year_and_quarter(crew):
    seed(crew)
    by_pair = reports.phb_return((2025, 3))
    by_day = reports.phb_return(D(2025, 12, 31))
    assert by_pair == by_day
    active = by_day.measures[1]
    want = expected(D(2025, 4, 1), D(2025, 12, 31))[ACTIVE]
    assert [row.total for row in active.by_type.rows] == [row[3] for row in want["type"][:-1]]
    with pytest.raises(ValueError):
        reports.phb_return(D(2025, 12, 30))  # not a quarter's last day


def test_an_approver_sees_their_own_icbs_people_only(client, crew):
    seed(crew)
    want = expected(D(2025, 4, 1), D(2025, 12, 31))
    client.force_login(crew["approver"])
    page = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3"})
    [table] = [t for t in page_tables(page) if t["attrs"].get("data-measure") == "ytd" and "cohort" in str(t["attrs"])]
    assert as_numbers(table["rows"][1:]) == want[YTD]["cohort"]

    elsewhere = user_with_role(Role.ICB_APPROVER)  # another ICB
    client.force_login(elsewhere)
    page = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3"})
    [table] = [t for t in page_tables(page) if t["attrs"].get("data-measure") == "ytd" and "cohort" in str(t["attrs"])]
    assert as_numbers(table["rows"][-1:]) == [[ALL_PEOPLE, 0, 0, 0]]


def test_finance_chooses_one_icbs_return_or_all_of_them(client, crew):
    """Finance sees every ICB's people: the return is for one ICB (as NHS England collects it) or all together.
    An approver sees only their own ICB's, with nothing to choose."""
    seed(crew)
    other_icb = OrganisationFactory(name="Another ICB", ods_code="QZZ")
    other_crew = {**crew, "approver": user_with_role(Role.ICB_APPROVER, organisation=other_icb)}
    elsewhere = make_person(
        icb_org=other_icb, staff=[crew["broker"], crew["coordinator"]], given_name="Ann", family_name="Elsewhere"
    )
    set_up(other_crew, agreed_plan(other_crew, elsewhere, {N}), D(2025, 5, 1))
    want = expected(D(2025, 4, 1), D(2025, 12, 31))[YTD]["cohort"][-1]

    def ytd_total(response) -> list:
        [table] = [
            t
            for t in page_tables(response)
            if t["attrs"].get("data-measure") == "ytd" and t["attrs"].get("data-breakdown") == "cohort"
        ]
        return as_numbers(table["rows"][-1:])[0]

    client.force_login(crew["finance"])
    every = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3"})
    assert 'name="icb"' in every.content.decode() and "2025-Q3" in every.content.decode()
    assert ytd_total(every)[1:] == [want[1] + 1, want[2], want[3] + 1]  # Ann is an adult
    ours = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3", "icb": crew["icb"].pk})
    assert ytd_total(ours) == want
    theirs = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3", "icb": other_icb.pk})
    assert ytd_total(theirs)[1:] == [1, 0, 1] and "Another ICB" in theirs.content.decode()
    download = client.get("/finance/reports/phb-return/phb-return.csv", {"quarter": "2025-Q3", "icb": other_icb.pk})
    assert download["Content-Disposition"].endswith('phb-return-2025-Q3-qzz.csv"')
    [total] = [r for r in csv_rows(download)[1:] if r[1] == YTD and r[2] == "Total"]
    assert total[4:] == ["1", "0", "1"]
    assert f"icb={other_icb.pk}" in theirs.content.decode()  # its CSV link keeps the choice
    recharges = client.get("/finance/reports/recharges/", {"quarter": "2025-Q3", "icb": other_icb.pk})
    assert recharges.status_code == 200 and "No integrated budget" in recharges.content.decode()

    wrong = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3", "icb": "999999"})
    assert wrong.status_code == 200 and "Choose an ICB from the list" in wrong.content.decode()
    assert "nhsuk-error-summary" in wrong.content.decode() and not page_tables(wrong)

    client.force_login(crew["approver"])
    own = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3"})
    assert 'name="icb"' not in own.content.decode() and ytd_total(own) == want
    refused = client.get("/finance/reports/phb-return/", {"quarter": "2025-Q3", "icb": other_icb.pk})
    assert "Choose an ICB from the list" in refused.content.decode() and not page_tables(refused)


# --- Quarters ----------------------------------------------------------------------------------------------------


def test_quarters_run_april_to_march():
    q1, q4 = reports.Quarter.parse("2026-Q1"), reports.Quarter.parse(" 2026 q4 ")
    assert (q1.start, q1.end, q1.year_start) == (D(2026, 4, 1), D(2026, 6, 30), D(2026, 4, 1))
    assert (q4.start, q4.end, q4.year_start) == (D(2027, 1, 1), D(2027, 3, 31), D(2026, 4, 1))
    assert reports.Quarter.parse("2026-Q2").end == D(2026, 9, 30)
    assert reports.Quarter.ending(D(2027, 3, 31)) == q4
    assert reports.Quarter.containing(D(2027, 2, 14)) == q4
    assert reports.Quarter.last_completed(D(2026, 11, 24)) == reports.Quarter(2026, 2)
    assert reports.Quarter.last_completed(D(2026, 5, 1)) == reports.Quarter(2025, 4)
    for bad in ("2026-Q5", "2026", "Q2", "banana", "", "1999-Q1"):
        with pytest.raises(ValueError):
            reports.Quarter.parse(bad)


# --- Recharges ---------------------------------------------------------------------------------------------------


@pytest.fixture
def integrated(crew):
    """Two integrated budgets sharing a local authority, one ICB-only budget, and their money in 2025-Q3."""
    council = OrganisationFactory(name="Newcastle City Council", kind="local_authority")
    finance, checker = crew["finance"], user_with_role(Role.FINANCE_MANAGER, organisation=crew["icb"])
    una = make_person(
        icb_org=crew["icb"], staff=[crew["broker"]], given_name="Una", family_name="Pooled", local_authority=council
    )
    vic = make_person(
        icb_org=crew["icb"], staff=[crew["broker"]], given_name="Vic", family_name="Halves", local_authority=council
    )
    wyn = make_person(icb_org=crew["icb"], staff=[crew["broker"]], given_name="Wyn", family_name="Solo")
    # Una: £12,000 = £7,200 ICB (60%), £3,600 local authority (30%), £1,200 her contribution (10%).
    una_budget = set_up(crew, agreed_plan(crew, una, {N, TP, DP}, (7200, 3600, 1200)), D(2025, 9, 1), pay_first=True)
    vic_budget = set_up(crew, agreed_plan(crew, vic, {DP}, (6000, 6000, 0)), D(2025, 9, 1), pay_first=True)
    wyn_budget = set_up(crew, agreed_plan(crew, wyn, {DP}), D(2025, 9, 1), pay_first=True)

    def line(budget, kind):
        return budget.lines.get(management_type=kind)

    def dp_spend(budget, day, pence, key):
        spending.dp_spend_record(
            budget=budget,
            line=line(budget, DP),
            payee="Harmony Singers",
            spent_on=day,
            amount_pence=pence,
            key=key,
            acting_user=finance,
        )

    # In the quarter (October to December 2025): £20.01 + £300.00 + £116.00 = £436.01 on Una's budget.
    dp_spend(una_budget, D(2025, 10, 15), 20_01, "una-oct")
    holder = line(una_budget, TP).plan_line.third_party_holder
    spending.holder_spend_record(
        budget=una_budget,
        holder=holder,
        line=line(una_budget, TP),
        payee="Karen Dobson",
        spent_on=D(2025, 11, 20),
        amount_pence=300_00,
        key="una-pa",
        acting_user=finance,
    )
    nursing = line(una_budget, N)
    invoice = invoices.invoice_record(
        line=nursing,
        provider=nursing.plan_line.provider,
        invoice_number="NN-1",
        invoice_date=D(2025, 12, 5),
        amount_pence=116_00,
        acting_user=finance,
    )
    invoices.invoice_approve(invoice=invoice, acting_user=checker)
    invoices.invoice_pay(invoice=invoice, acting_user=finance)
    # Outside the quarter: not recharged for it.
    dp_spend(una_budget, D(2025, 9, 20), 1_00, "una-sep")
    dp_spend(una_budget, D(2026, 1, 2), 50, "una-jan")
    # Una's contribution: £50 paid in the quarter, £7 in September. Money from "one of the funders" says not whose.
    for day, pence, source, key in (
        (D(2025, 10, 3), 50_00, "contribution", "una-c1"),
        (D(2025, 9, 10), 7_00, "contribution", "una-c0"),
        (D(2025, 11, 1), 10_00, "funder", "una-f1"),
    ):
        spending.dp_money_in_record(
            budget=una_budget,
            received_on=day,
            amount_pence=pence,
            payer="Una",
            source=source,
            key=key,
            acting_user=finance,
        )
    dp_spend(vic_budget, D(2025, 11, 11), 3_34, "vic-nov")
    dp_spend(wyn_budget, D(2025, 11, 11), 9_99, "wyn-nov")  # ICB only: no recharge
    return {"council": council, "una": una_budget, "vic": vic_budget, "wyn": wyn_budget}


def test_recharges_share_the_quarters_spending_by_the_funding_split_to_the_penny(crew, integrated):
    report = reports.recharges(2025, 3)
    by_budget = {line.budget_id: line for line in report.budgets}
    assert set(by_budget) == {integrated["una"].pk, integrated["vic"].pk}  # Wyn's budget has one funder
    una = by_budget[integrated["una"].pk]
    assert una.spent == 436_01
    # 60% of £436.01 is £261.606, 30% £130.803, 10% £43.601: the odd penny goes to the largest remainder.
    assert [(p.kind, p.share, p.paid, p.net) for p in una.parts] == [
        ("icb", 261_61, 386_01, -124_40),  # the ICB paid it all less Una's £50: it is owed £124.40
        ("local_authority", 130_80, 0, 130_80),  # the council owes its whole share
        ("contribution", 43_60, 50_00, -6_40),  # Una paid £6.40 more than her share so far
    ]
    assert sum(p.share for p in una.parts) == una.spent
    assert sum(p.net for p in una.parts) == 0
    assert [una.percent(p) for p in una.parts] == ["60%", "30%", "10%"]
    vic = by_budget[integrated["vic"].pk]
    assert [(p.kind, p.share, p.paid, p.net) for p in vic.parts] == [
        ("icb", 1_67, 3_34, -1_67),
        ("local_authority", 1_67, 0, 1_67),
    ]

    statements = {s.kind: s for s in report.statements if s.kind != "contribution"}
    council = statements["local_authority"]
    assert council.name == "Newcastle City Council"
    assert (council.share, council.paid, council.net) == (130_80 + 1_67, 0, 132_47)
    icb = statements["icb"]
    assert (icb.share, icb.paid, icb.net) == (261_61 + 1_67, 386_01 + 3_34, -(124_40 + 1_67))
    [una_statement] = [s for s in report.statements if s.kind == "contribution"]
    assert una_statement.name == "Una Pooled (assessed contribution)" and una_statement.net == -6_40
    assert sum(s.net for s in report.statements) == 0


def test_the_recharge_statements_on_screen_and_as_csv(client, crew, integrated):
    client.force_login(crew["finance"])
    page = client.get("/finance/reports/recharges/", {"quarter": "2025-Q3"})
    assert page.status_code == 200
    text = page.content.decode()
    council_slug = f"local_authority-{integrated['council'].pk}"
    [table] = [t for t in page_tables(page) if t["attrs"].get("data-funder") == council_slug]
    assert table["rows"][1][1:] == ["30%", "£436.01", "£130.80", "£0.00", "Owes £130.80"]
    assert table["rows"][-1] == ["Total", "", "£439.35", "£132.47", "£0.00", "Owes £132.47"]
    assert "Is owed £126.07" in text  # the ICB's statement
    assert f'data-net="{-6_40}"' in text and "Is owed £6.40" in text  # Una's

    rows = csv_rows(client.get("/finance/reports/recharges/recharges.csv", {"quarter": "2025-Q3"}))
    assert rows[0][0] == "Quarter" and rows[0][-1] == "Owes, or is owed if negative (pence)"
    totals = {row[2]: [int(v) for v in row[7:]] for row in rows[1:] if row[3] == "TOTAL"}
    assert totals["Newcastle City Council"] == [439_35, 132_47, 0, 132_47]
    assert totals["Una Pooled (assessed contribution)"] == [436_01, 43_60, 50_00, -6_40]
    assert sum(total[3] for total in totals.values()) == 0

    one = csv_rows(
        client.get("/finance/reports/recharges/recharges.csv", {"quarter": "2025-Q3", "funder": council_slug})
    )
    assert {row[2] for row in one[1:]} == {"Newcastle City Council"} and len(one) == 4  # header, 2 budgets, total
    missing = client.get("/finance/reports/recharges/recharges.csv", {"quarter": "2025-Q3", "funder": "icb-0"})
    assert missing.status_code == 404


def test_a_quarter_with_no_integrated_spending_says_so(client, crew, integrated):
    client.force_login(crew["finance"])
    page = client.get("/finance/reports/recharges/", {"quarter": "2024-Q1"})
    assert page.status_code == 200
    assert "No integrated budget was in force or had spending in this quarter." in page.content.decode()


# --- Payments from local authorities ------------------------------------------------------------------------------


PAID_IN_JANUARY = D(2026, 1, 15)


def council_pays(crew, council, pence, *, quarter="2025-Q3", day=PAID_IN_JANUARY, key="ncc-q3"):
    return funder_payments.funder_payment_record(
        icb=crew["icb"],
        local_authority=council,
        quarter=reports.Quarter.parse(quarter),
        amount_pence=pence,
        received_on=day,
        reference="NCC RECHARGE Q3",
        key=key,
        acting_user=crew["finance"],
    )


def test_a_local_authoritys_payment_is_shared_between_its_budgets_and_posted_to_the_bank(crew, integrated):
    payment = council_pays(crew, integrated["council"], 100_00)
    assert council_pays(crew, integrated["council"], 100_00) == payment  # the same form twice: recorded once
    moved = payment.transfer
    assert (moved.debit_account.code, moved.credit_account.code, moved.amount) == (
        "icb:bank",
        "icb:recharges-received",
        100_00,
    )
    assert (moved.reference, moved.effective_date) == ("NCC RECHARGE Q3", D(2026, 1, 15))

    report = reports.recharges(2025, 3)
    by_budget = {line.budget_id: line for line in report.budgets}
    una, vic = by_budget[integrated["una"].pk], by_budget[integrated["vic"].pk]
    # £100 shared by the council's shares, £130.80 and £1.67: £98.739... and £1.260..., the odd penny to Una.
    assert [(p.kind, p.share, p.paid, p.net) for p in una.parts] == [
        ("icb", 261_61, 436_01 - 98_74 - 50_00, 261_61 - 287_27),
        ("local_authority", 130_80, 98_74, 32_06),
        ("contribution", 43_60, 50_00, -6_40),
    ]
    assert [(p.kind, p.paid, p.net) for p in vic.parts] == [("icb", 2_08, -41), ("local_authority", 1_26, 41)]
    assert all(sum(p.net for p in line.parts) == 0 for line in report.budgets)
    [council] = [s for s in report.statements if s.kind == "local_authority"]
    assert (council.share, council.paid, council.net) == (132_47, 100_00, 32_47)
    assert report.unallocated == ()


def test_a_payment_for_a_quarter_none_of_the_authoritys_budgets_counts_in_is_shown_apart(client, crew, integrated):
    council_pays(crew, integrated["council"], 5_00, quarter="2024-Q1", day=D(2025, 1, 2), key="early")
    report = reports.recharges(2024, 1)
    assert [(u.local_authority_name, u.amount) for u in report.unallocated] == [("Newcastle City Council", 5_00)]
    client.force_login(crew["finance"])
    text = client.get("/finance/reports/recharges/", {"quarter": "2024-Q1"}).content.decode()
    assert "Newcastle City Council paid" in text and "£5.00" in text and "in no statement below" in text


def test_a_payment_recorded_by_mistake_is_reversed_with_a_reason_and_then_counts_nowhere(client, crew, integrated):
    payment = council_pays(crew, integrated["council"], 100_00)
    with pytest.raises(services.BudgetError, match="Say why"):
        funder_payments.funder_payment_reverse(payment=payment, reason="  ", acting_user=crew["finance"])
    client.force_login(crew["finance"])
    url = "/finance/reports/recharges/local-authority-payments/?quarter=2025-Q3"
    page = client.get(url).content.decode()
    assert "Reverse a payment recorded by mistake" in page
    missing_reason = client.post(url, {"action": "reverse", "reverse-payment": payment.pk, "reverse-reason": ""})
    assert "There is a problem" in missing_reason.content.decode()
    done = client.post(url, {"action": "reverse", "reverse-payment": payment.pk, "reverse-reason": "Was Gateshead's"})
    assert done.status_code == 302

    payment.refresh_from_db()
    undone = payment.reversal
    assert (undone.reverses_id, undone.debit_account.code, undone.credit_account.code, undone.amount) == (
        payment.transfer_id,
        "icb:recharges-received",
        "icb:bank",
        100_00,
    )
    assert (payment.reversed_by, payment.reversal_reason) == (crew["finance"], "Was Gateshead's")
    [council] = [s for s in reports.recharges(2025, 3).statements if s.kind == "local_authority"]
    assert council.paid == 0 and council.net == 132_47
    listed = client.get(url).content.decode()
    assert "No: reversed on" in listed and "Was Gateshead&#39;s" in listed
    assert "Reverse a payment recorded by mistake" not in listed  # nothing left to reverse
    with pytest.raises(services.BudgetError, match="already been reversed"):
        funder_payments.funder_payment_reverse(payment=payment, reason="again", acting_user=crew["finance"])
    again = client.post(url, {"action": "reverse", "reverse-payment": payment.pk, "reverse-reason": "again"})
    assert again.status_code == 200 and "Choose a payment from the list" in again.content.decode()
    client.force_login(user_with_role(Role.AUDITOR, organisation=crew["icb"]))
    refused = client.post(url, {"action": "reverse", "reverse-payment": payment.pk, "reverse-reason": "x"})
    assert refused.status_code == 404


def test_the_service_refuses_what_is_not_a_payment_from_a_local_authority(crew, integrated):
    council = integrated["council"]
    wrong = [
        ({"local_authority": crew["icb"]}, "Choose the local authority that paid"),
        ({"amount_pence": 0}, "between 1p"),
        ({"day": datetime.date.today() + datetime.timedelta(days=1)}, "today or in the past"),
        ({"day": D(2025, 9, 30)}, "on or after the quarter's first day"),
    ]
    for changes, message in wrong:
        arguments = {"local_authority": council, "amount_pence": 1_00, "day": D(2026, 1, 15), **changes}
        with pytest.raises(services.BudgetError, match=message):
            funder_payments.funder_payment_record(
                icb=crew["icb"],
                local_authority=arguments["local_authority"],
                quarter=reports.Quarter.parse("2025-Q3"),
                amount_pence=arguments["amount_pence"],
                received_on=arguments["day"],
                reference="X",
                key=message,
                acting_user=crew["finance"],
            )
    assert not FunderPayment.objects.exists()


def test_finance_records_payments_on_the_page_others_with_the_reports_only_read_them(client, crew, integrated):
    url = "/finance/reports/recharges/local-authority-payments/"
    council = integrated["council"]
    client.force_login(crew["finance"])
    page = client.get(url, {"quarter": "2025-Q3"})
    assert page.status_code == 200 and "Record a payment" in page.content.decode()
    form = {
        "pay-local_authority": council.pk,
        "pay-icb": crew["icb"].pk,
        "pay-quarter": "2025-Q3",
        "pay-amount": "120.50",
        "pay-received_on": "2026-01-20",
        "pay-reference": "NCC 0042",
        "pay-key": "page-1",
    }
    bad = client.post(url, {**form, "pay-amount": "lots", "pay-received_on": "2026-02-30"})
    assert bad.status_code == 200 and "There is a problem" in bad.content.decode()
    assert "Enter an amount in pounds and pence" in bad.content.decode()
    assert "Enter a real date" in bad.content.decode()
    done = client.post(url, form)
    assert done.status_code == 302 and "quarter=2025-Q3" in done["Location"]
    client.post(url, form)  # posted twice
    [payment] = FunderPayment.objects.all()
    assert (payment.amount_pence, payment.reference, payment.recorded_by) == (120_50, "NCC 0042", crew["finance"])
    listed = client.get(url, {"quarter": "2025-Q3"}).content.decode()
    assert "NCC 0042" in listed and "£120.50" in listed
    recharges = client.get("/finance/reports/recharges/", {"quarter": "2025-Q3"}).content.decode()
    assert "/finance/reports/recharges/local-authority-payments/?quarter=2025-Q3" in recharges

    for role in (Role.AUDITOR, Role.ICB_APPROVER):
        client.force_login(user_with_role(role, organisation=crew["icb"]))
        read = client.get(url, {"quarter": "2025-Q3"})
        assert read.status_code == 200 and "NCC 0042" in read.content.decode()
        assert "Record a payment" not in read.content.decode()
        assert client.post(url, {**form, "pay-key": f"by-{role}"}).status_code == 404
    client.force_login(user_with_role(Role.ICB_APPROVER, organisation=OrganisationFactory(kind="icb")))
    elsewhere = client.get(url, {"quarter": "2025-Q3"})
    assert elsewhere.status_code == 200 and "NCC 0042" not in elsewhere.content.decode()  # another ICB's approver
    client.force_login(user_with_role(Role.CARE_BROKER, organisation=crew["icb"]))
    assert client.get(url).status_code == 404
    assert FunderPayment.objects.count() == 1


# --- Who may see them, and bad input -------------------------------------------------------------------------------

PAGES = [
    "/finance/reports/phb-return/",
    "/finance/reports/phb-return/phb-return.csv",
    "/finance/reports/recharges/",
    "/finance/reports/recharges/recharges.csv",
]


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.THIRD_PARTY_STAFF])
def test_people_without_the_reports_are_told_they_do_not_exist(client, role):
    client.force_login(user_with_role(role))
    for url in PAGES:
        assert client.get(url, {"quarter": "2025-Q3"}).status_code == 404, url


@pytest.mark.parametrize("role", [Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.AUDITOR, Role.ICB_APPROVER])
def test_finance_auditors_and_approvers_see_the_reports_and_their_dashboard_links(client, role):
    user = user_with_role(role)
    client.force_login(user)
    for url in PAGES:
        assert client.get(url, {"quarter": "2025-Q3"}).status_code == 200, url
    dashboard = client.get(f"/dashboard/{role.value}/").content.decode()
    assert "/finance/reports/phb-return/" in dashboard and "/finance/reports/recharges/" in dashboard


def test_signed_out_visitors_are_sent_to_sign_in(client):
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302 and "next=" in response["Location"], url


def test_with_no_quarter_the_last_one_to_end_is_shown(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    page = client.get("/finance/reports/phb-return/").content.decode()
    assert reports.Quarter.last_completed().label in page
    assert "There is a problem" not in page


@pytest.mark.parametrize(
    "bad", ["2026-Q5", "banana", "", "1999-Q1", "2026-Q2" * 10, "20\x0026-Q1", "\uff12\uff10\uff12\uff16-Q1"]
)
def test_a_bad_quarter_gets_an_error_summary_not_a_500(client, bad):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    for url in PAGES:
        response = client.get(url, {"quarter": bad})
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/html"), url  # no CSV for a quarter that is not one
        text = response.content.decode()
        assert "There is a problem" in text and "<title>Error: " in text, url


# --- In a real browser ---------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_reports_work_in_a_browser_with_no_accessibility_problems_even_at_320px(
    live_server, page, crew, integrated
):
    from playwright.sync_api import expect

    from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
    from tests.browser.test_sign_in_journeys import sign_in

    sign_in(page, live_server.url, crew["finance"].email)
    page.get_by_role("link", name="NHS England quarterly PHB return").click()
    page.get_by_role("textbox", name="Quarter").fill("2025-Q9")
    page.get_by_role("button", name="Show the return").click()
    expect(page.get_by_role("alert")).to_contain_text(reports.QUARTER_INVALID)
    assert_accessible(page)
    page.get_by_role("textbox", name="Quarter").fill("2025-Q3")
    page.get_by_role("button", name="Show the return").click()
    expect(page.get_by_role("heading", level=2, name="Active at quarter end: 3 people")).to_be_visible()
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("^Download CSV of the return")).click()
    assert download.value.suggested_filename == "phb-return-2025-Q3.csv"
    page.set_viewport_size({"width": 320, "height": 640})
    page.reload()
    assert_no_horizontal_scroll(page)

    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/finance/reports/recharges/?quarter=2025-Q3")
    expect(page.get_by_role("heading", level=2, name="Newcastle City Council")).to_be_visible()
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV of the statement for Newcastle City Council").click()
    assert download.value.suggested_filename == f"recharges-2025-Q3-local_authority-{integrated['council'].pk}.csv"
    page.set_viewport_size({"width": 320, "height": 640})
    page.reload()
    assert_no_horizontal_scroll(page)

    # Recording a local authority's payment: a mistake first, then the payment, which the recharges then show.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name=re.compile("^Payments from local authorities for Quarter 3")).click()
    page.get_by_role("combobox", name="Local authority that paid").select_option(label="Newcastle City Council")
    page.get_by_role("textbox", name="Amount in pounds").fill("100")
    page.get_by_role("textbox", name="Date received").fill("2026-01-15")
    page.get_by_role("button", name="Record the payment").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the reference the payment came with")
    assert_accessible(page)
    page.get_by_role("textbox", name="Reference").fill("NCC RECHARGE Q3")
    page.get_by_role("button", name="Record the payment").click()
    expect(page.get_by_role("cell", name="NCC RECHARGE Q3")).to_be_visible()
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 640})
    assert_no_horizontal_scroll(page)
    page.goto(f"{live_server.url}/finance/reports/recharges/?quarter=2025-Q3")
    council = page.locator(f'table[data-funder="local_authority-{integrated["council"].pk}"]')
    expect(council.get_by_role("row").last).to_contain_text("£100.00")
