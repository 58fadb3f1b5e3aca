"""R11, the N+1 guard: the number of queries a list page makes does not grow with what it lists.

One world (an ICB team whose people each have a live budget with purchases, invoices, card payments, a review and
a recovery notice; a representative acting for all of them; payment runs; bank statement lines) is measured page by
page, then grown (more people, and more of everything under the first person's budget) and measured again. Each
page must make the same number of queries both times, give or take its entry in SLACK (a documented constant).

Every URL without an object id comes from the URL configuration and must be in LIST_PAGES (measured) or NOT_LISTS
(with the reason it lists nothing): a new page fails test_every_list_url_is_measured_or_explained until it is
placed. Object pages that list children (a budget, a person, a payment run, an account statement...) are in
CHILD_PAGES.
"""

from __future__ import annotations

import collections
import datetime
import itertools
import re

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone

from accounts.roles import Role
from brokerage.models import Representative
from budgets import invoices, monitoring, payment_runs, spending
from budgets.models import Budget
from ledger.models import Account, StatementImport, StatementLine, StatementSource
from tests.brokerage.helpers import complete_plan, make_person, team
from tests.budgets.test_person_access import person_with_money
from tests.factories import user_with_role
from tests.ledger.recon_helpers import bank, mapping_for
from tests.mfa import TwoFactorClient
from tests.test_access_matrix import walk

pytestmark = pytest.mark.django_db

SMALL, GROWN = 2, 5  # people in the world when first measured, and after growing it

# --- Pages without an object id: (role, URL name, query string). Every such URL must be here or in NOT_LISTS. ------
LIST_PAGES: dict[str, list[tuple[Role, str]]] = {
    "providers:directory": [(Role.CARE_BROKER, ""), (Role.FINANCE_OFFICER, "")],
    "budgets:holders": [(Role.FINANCE_OFFICER, "")],
    "budgets:my-budgets": [(Role.REPRESENTATIVE, "")],
    "budgets:held": [(Role.THIRD_PARTY_STAFF, "")],
    "budgets:invoices": [(Role.FINANCE_OFFICER, "")],
    "budgets:budget-list": [(Role.FINANCE_OFFICER, ""), (Role.AUDITOR, "?q=Robson")],
    "budgets:payment-runs": [(Role.FINANCE_OFFICER, "")],
    "budgets:card-payments": [(Role.FINANCE_OFFICER, "")],
    "budgets:phb-return": [(Role.FINANCE_OFFICER, "")],
    "budgets:recharges": [(Role.FINANCE_OFFICER, "")],
    "budgets:funder-payments": [(Role.FINANCE_OFFICER, "")],
    "brokerage:people": [(Role.CARE_BROKER, ""), (Role.CARE_COORDINATOR, ""), (Role.AUDITOR, "")],
    "brokerage:approvals": [(Role.ICB_APPROVER, "")],
    "ledger:accounts": [(Role.FINANCE_OFFICER, ""), (Role.AUDITOR, "")],
    "ledger:trial-balance": [(Role.FINANCE_OFFICER, "")],
    "ledger:exports": [(Role.FINANCE_OFFICER, "")],
    "ledger:reconcile": [(Role.FINANCE_OFFICER, "")],
    "ledger:period-close": [(Role.FINANCE_MANAGER, "")],
    "ledger:reconcile-layouts": [(Role.FINANCE_OFFICER, "")],
    "ledger-api:api-trial-balance": [(Role.FINANCE_OFFICER, "")],
    "ledger-api:account-list": [(Role.FINANCE_OFFICER, "")],
    "ledger-api:transfer-list": [(Role.FINANCE_OFFICER, "")],
    "brokerage-api:person-list": [(Role.CARE_BROKER, "")],
    "brokerage-api:plan-list": [(Role.CARE_BROKER, "")],
    "brokerage-api:plan-line-list": [(Role.CARE_BROKER, "")],
    "budgets-api:budget-list": [(Role.FINANCE_OFFICER, "")],
    "budgets-api:invoice-list": [(Role.FINANCE_OFFICER, "")],
    "budgets-api:payment-run-list": [(Role.FINANCE_OFFICER, "")],
}
# URLs without an object id that list nothing that grows with the data.
NOT_LISTS = {
    "home": "a redirect",
    "accessibility": "a static page",
    "privacy": "a static page",
    "accounts:sign-in": "a form",
    "accounts:sign-in-code": "a form",
    "accounts:two-factor": "the user's own authenticator set-up",
    "accounts:sign-out": "a form",
    "accounts:password-reset": "a form",
    "accounts:password-reset-done": "a static page",
    "accounts:password-reset-confirm": "a form behind a signed token",
    "accounts:invitation": "a form behind a signed token",
    "accounts:password-reset-complete": "a static page",
    "accounts:session-extend": "a POST that extends the session",
    "accounts:dashboard": "a redirect to the role's dashboard",
    "accounts:role-dashboard": "a role in its path; measured below for every role (_pages)",
    "budgets:stripe-webhook": "a POST endpoint for Stripe",
    "brokerage:person-add": "a form",
    "ledger:reconcile-account-add": "a form",
    "ledger:reconcile-layout-add": "a form",
    "budgets:spend-export": "a file download streamed row by row (an export, not a page)",
    "budgets:phb-return-csv": "a file download of the report measured as budgets:phb-return",
    "budgets:recharges-csv": "a file download of the report measured as budgets:recharges",
    "ledger:trial-balance-csv": "a file download of the page measured as ledger:trial-balance",
    "ledger:trial-balance-xlsx": "a file download of the page measured as ledger:trial-balance",
    "ledger:transfers-export": "a file download streamed row by row (an export, not a page)",
    "api-schema": "the OpenAPI document",
    "api-docs": "the API documentation page",
}
# Object pages that list the object's children: (role, URL name, which object of the world, query string).
CHILD_PAGES = [
    (Role.FINANCE_OFFICER, "budgets:budget", "budget", ""),
    (Role.FINANCE_OFFICER, "budgets:monitoring", "budget", ""),
    (Role.FINANCE_OFFICER, "budgets:statements", "budget", ""),
    (Role.PATIENT, "budgets:my-budget", "budget", ""),
    (Role.PATIENT, "budgets:my-transactions", "budget", ""),
    (Role.PATIENT, "budgets:my-returns", "budget", ""),
    (Role.PATIENT, "budgets:my-statements", "budget", ""),
    (Role.THIRD_PARTY_STAFF, "budgets:held-budget", "budget", ""),
    (Role.CARE_BROKER, "brokerage:person", "person", ""),
    (Role.CARE_BROKER, "brokerage:plan", "plan", ""),
    (Role.CARE_BROKER, "brokerage:plan-history", "plan", ""),
    (Role.FINANCE_OFFICER, "budgets:payment-run", "payment_run", ""),
    (Role.FINANCE_OFFICER, "ledger:account-statement", "ledger_account", ""),
    (Role.FINANCE_OFFICER, "ledger:reconcile-account", "cash_account", ""),
    (Role.FINANCE_OFFICER, "ledger-api:account-statement", "ledger_account", ""),
]
# Pages allowed a fixed number of extra queries once grown, and why. Empty: every page makes exactly as many.
SLACK: dict[str, int] = {}
# Known N+1s not fixed yet, with the reason. The test asserts they still grow, so fixing one fails it until its
# entry is removed. Both are API lists paginated at 50 (REST_FRAMEWORK PAGE_SIZE), so a response is bounded.
KNOWN_N_PLUS_ONE: dict[str, str] = {}

_serial = itertools.count(1)


# --- The world ---------------------------------------------------------------------------------------------------


def _agreed_plan(crew):
    from brokerage.services import plan_approve, plan_record_agreement, plan_submit

    person = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]])
    plan = complete_plan(person=person, broker=crew["broker"], coordinator=crew["coordinator"], contribution_pounds=600)
    plan_submit(plan=plan, acting_user=crew["broker"])
    plan_approve(plan=plan, acting_user=crew["approver"])
    plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    return plan


def _add_person(world):
    """One more person with a live budget, money spent three ways, a review and a plan waiting for approval."""
    crew = world["crew"]
    plan = _agreed_plan(crew)
    side = person_with_money({**crew, "plan": plan}, user_with_role(Role.PATIENT), None)
    budget = side["budget"]
    Representative.objects.create(
        person=plan.person,
        kind="representative",
        name="Rep",
        relationship="child",
        user=world["representative"],
        basis="adult_lacking_capacity",
    )
    monitoring.review_trigger(budget=budget, reason="concern", note="A fall at home", acting_user=crew["finance"])
    _add_children(world, budget)
    # Another person whose plan waits for an approver.
    from brokerage.services import plan_submit

    waiting = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]])
    plan_submit(
        plan=complete_plan(person=waiting, broker=crew["broker"], coordinator=crew["coordinator"]),
        acting_user=crew["broker"],
    )
    return side


def _add_children(world, budget):
    """More of what a budget's pages list: a purchase, one flagged for checking, and a provider invoice."""
    n = next(_serial)
    finance = world["crew"]["finance"]
    spending.dp_spend_record(
        budget=budget,
        line=budget.lines.get(management_type="direct_payment"),
        payee=f"Payee {n}",
        spent_on=datetime.date(2026, 11, 3),
        amount_pence=150,
        key=f"counts-spend-{n}",
        acting_user=finance,
    )
    spending.dp_spend_record(  # flagged for checking: the dashboards count it, the person's pages say so
        budget=budget,
        line=None,
        payee=f"Uncoded {n}",
        spent_on=datetime.date(2026, 11, 3),
        amount_pence=120,
        key=f"counts-uncoded-{n}",
        acting_user=finance,
    )
    notional = budget.lines.get(management_type="notional")
    invoices.invoice_record(
        line=notional,
        provider=notional.plan_line.provider,
        invoice_number=f"N-{n}",
        invoice_date=datetime.date.today(),
        amount_pence=300,
        acting_user=finance,
    )


def _add_finance_rows(world, count: int):
    """A payment run over what is due, and bank statement lines."""
    run, _ = payment_runs.payment_run_create(
        run_date=datetime.date.today() + datetime.timedelta(days=60 + next(_serial)),
        acting_user=world["crew"]["finance"],
    )
    world["payment_run"] = run.pk
    cash = world["cash"]
    imported = StatementImport.objects.create(
        cash_account=cash,
        source=StatementSource.CSV,
        filename=f"s{next(_serial)}.csv",
        sha256=f"{next(_serial):064d}",
        imported_by=world["crew"]["finance"],
    )
    for _ in range(count):
        n = next(_serial)
        StatementLine.objects.create(
            cash_account=cash,
            statement_import=imported,
            date=datetime.date(2026, 11, 2),
            amount=-100 - n,
            description=f"Line {n}",
            dedupe_key=f"counts-{n}",
            line_number=n,
        )


def _grow(world, people: int):
    while len(world["sides"]) < people:
        world["sides"].append(_add_person(world))
    first = world["sides"][0]["budget"]
    while world["children"] < people:  # the first budget gets as many more purchases and invoices
        _add_children(world, first)
        world["children"] += 1
    _add_finance_rows(world, people)
    first_budget = Budget.objects.get(pk=first.pk)
    world["ids"] = {
        "budget": first_budget.pk,
        "person": first_budget.plan.person_id,
        "plan": first_budget.plan_id,
        "payment_run": world["payment_run"],
        "ledger_account": Account.objects.get(code=f"{first_budget.owner_ref}:held:direct-payment").pk,
        "cash_account": world["cash"].pk,
    }


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for the module in a transaction rolled back at its end; the tests only read."""
    from budgets import payments
    from providers.reference import ensure_service_categories

    media = tmp_path_factory.mktemp("counts-media")
    with override_settings(MEDIA_ROOT=media, PAYMENTS_GATEWAY="fake"), django_db_blocker.unblock():
        payments.fake_gateway().reset()
        with transaction.atomic():
            ensure_service_categories()
            crew = team()
            crew["finance"] = user_with_role(Role.FINANCE_OFFICER, organisation=crew["icb"])
            world = {
                "crew": crew,
                "representative": user_with_role(Role.REPRESENTATIVE),
                "sides": [],
                "children": 0,
                "cash": bank("counts:bank", csv_mapping=mapping_for("lloyds.csv")),
            }
            _grow(world, SMALL)
            first = world["sides"][0]
            holder = first["budget"].lines.get(management_type="third_party").plan_line.third_party_holder
            users = {
                Role.PATIENT: first["budget"].plan.person.user,
                Role.REPRESENTATIVE: world["representative"],
                Role.NOMINEE: user_with_role(Role.NOMINEE),
                Role.CARE_BROKER: crew["broker"],
                Role.CARE_COORDINATOR: crew["coordinator"],
                Role.ICB_APPROVER: crew["approver"],
                Role.THIRD_PARTY_STAFF: user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder),
                Role.FINANCE_OFFICER: crew["finance"],
                Role.FINANCE_MANAGER: user_with_role(Role.FINANCE_MANAGER, organisation=crew["icb"]),
                Role.AUDITOR: user_with_role(Role.AUDITOR),
                Role.ADMINISTRATOR: user_with_role(Role.ADMINISTRATOR),
            }
            for user in users.values():
                user.save()
            world["clients"] = {}
            for role, user in users.items():
                world["clients"][role] = client = TwoFactorClient()
                client.force_login(user)
            world["small"] = _measure_all(world)
            _grow(world, GROWN)
            world["grown"] = _measure_all(world)
            yield world
            transaction.set_rollback(True)
        payments.fake_gateway().reset()


# --- Measuring -------------------------------------------------------------------------------------------------------


def _pages(world) -> dict[str, tuple[Role, str]]:
    pages = {}
    for name, entries in LIST_PAGES.items():
        for role, query in entries:
            pages[f"{name} as {role.value}"] = (role, reverse(name) + query)
    for role in Role:
        pages[f"accounts:role-dashboard as {role.value}"] = (
            role,
            reverse("accounts:role-dashboard", args=[role.value]),
        )
    for role, name, kind, query in CHILD_PAGES:
        pages[f"{name} as {role.value}"] = (role, reverse(name, args=[world["ids"][kind]]) + query)
    return pages


def _measure_all(world) -> dict[str, tuple[int, int, list[str]]]:
    """Per page: (status, number of queries, the queries)."""
    found = {}
    for key, (role, url) in _pages(world).items():
        client = world["clients"][role]
        client.get(url)  # once first: a session touched after a while saves itself once, which is not the page
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
            if getattr(response, "streaming", False):
                b"".join(response.streaming_content)
        found[key] = (response.status_code, len(queries), [q["sql"] for q in queries.captured_queries])
    return found


# --- Tests -----------------------------------------------------------------------------------------------------------


def test_every_list_url_is_measured_or_explained():
    names = []
    for name, kwargs, entry, _route in walk(get_resolver()):
        assert isinstance(entry, URLPattern)
        if any(kwargs.values()):
            continue  # names an object: pages listing its children are in CHILD_PAGES
        names.append(name)
    unknown = [n for n in names if n not in LIST_PAGES and n not in NOT_LISTS]
    assert not unknown, (
        f"new URLs without an object id: {unknown}. If the page lists things, add it to LIST_PAGES in "
        "tests/test_query_counts.py with a role that sees a list; else add it to NOT_LISTS with the reason"
    )
    assert not (set(LIST_PAGES) | set(NOT_LISTS)) - set(names), "stale entries name URLs that no longer exist"
    assert not set(LIST_PAGES) & set(NOT_LISTS)


def test_the_world_grew_and_every_page_answered(world):
    assert len(world["sides"]) == GROWN
    problems = [
        f"{key}: {status}"
        for phase in ("small", "grown")
        for key, (status, _count, _sql) in world[phase].items()
        if status != 200
    ]
    assert not problems, problems
    # Growing shows up on the pages: the broker's people list has more rows, the representative more budgets.
    broker = world["clients"][Role.CARE_BROKER].get(reverse("brokerage:people")).content.decode()
    assert broker.count("Joan Robson") >= GROWN


def _page_keys():
    keys = []
    for name, entries in LIST_PAGES.items():
        keys += [f"{name} as {role.value}" for role, _query in entries]
    keys += [f"accounts:role-dashboard as {role.value}" for role in Role]
    keys += [f"{name} as {role.value}" for role, name, _kind, _query in CHILD_PAGES]
    return keys


@pytest.mark.parametrize("key", _page_keys())
def test_queries_do_not_grow_with_the_data(world, key):
    _status, small, small_sql = world["small"][key]
    _status, grown, grown_sql = world["grown"][key]
    name = key.split(" as ")[0]
    if name in KNOWN_N_PLUS_ONE:
        assert grown > small, f"{name} no longer grows: remove it from KNOWN_N_PLUS_ONE"
        return
    allowed = SLACK.get(name, 0)
    assert small <= grown <= small + allowed, (
        f"{key}: {small} queries with {SMALL} people, {grown} with {GROWN}. Repeated more often:\n"
        + _grew(small_sql, grown_sql)
    )


def _grew(before: list[str], after: list[str]) -> str:
    """The queries (with their literals blanked) that ran more times after growing, and how many times."""

    def shapes(sqls):
        return collections.Counter(re.sub(r"'[^']*'|\b\d+\b", "?", sql)[:400] for sql in sqls)

    small, grown = shapes(before), shapes(after)
    return "\n".join(f"{small[s]} -> {n}: {s}" for s, n in grown.items() if n > small[s])[:4000]
