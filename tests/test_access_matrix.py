"""R7, access control everywhere: generated from the URL configuration.

Every URL pattern that names an object (an integer path converter, or a DRF router's `(?P<pk>...)`) is filled with
ids of objects that exist but belong to someone else, and tried by a user of every role (and by nobody signed in),
with a GET and an empty POST. Each user works with, or acts for, person A only; every id is person B's (or a
system-wide finance object that touches B). The answer must be a 404 (a redirect to sign-in when signed out; the
API may refuse a whole role with a 403, but only if it answers the same for an id that does not exist), never a
200 and never a 500, and every refusal is logged on `phb.access` once. A parent-and-child URL is also tried with
A's parent and B's child: 404 for everyone who reaches A's own child there. The API schema is checked against the
same walk, so an API route with an id cannot escape it.

What some staff legitimately see of B (finance every budget, auditors the ledger...) is the explicit ALLOWED table
below, one reason each; everything else must be refused. A new URL the matrix cannot fill fails
test_every_object_url_is_known_to_the_matrix: add its ids to PK_KINDS (or KWARG_KINDS) and decide who may see it.

One world is seeded per module (in a transaction rolled back at the end); each URL's test rolls back its own POSTs.
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, include, path, resolve, reverse
from django.urls.converters import IntConverter
from django.urls.resolvers import RegexPattern, RoutePattern

from accounts.roles import Role
from brokerage.models import ConnectedPerson, Representative
from budgets import invoices, letters, monitoring, payment_runs, spending, statements
from budgets.models import Addressee, Letter
from ledger.models import Account, AccountKind, CashAccount, StatementImport, StatementLine, StatementSource, Transfer
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_access import person_with_money
from tests.factories import issued_recovery, user_with_role
from tests.ledger.helpers import open_account
from tests.ledger.recon_helpers import bank, mapping_for
from tests.mfa import TwoFactorClient

pytestmark = pytest.mark.django_db

ANONYMOUS = "anonymous"
ROLES = [*Role, ANONYMOUS]
FINANCE = {Role.FINANCE_OFFICER, Role.FINANCE_MANAGER}
READERS = {*FINANCE, Role.AUDITOR}  # brokerage.selectors.READER_ROLES: every person and plan
DIRECTORY = {Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.ICB_APPROVER, *FINANCE, Role.AUDITOR, Role.ADMINISTRATOR}
LEDGER_READERS = {*FINANCE, Role.AUDITOR}
PERIOD = {"start": "2026-11-01", "end": "2026-11-20"}
MISSING_ID = 2_000_000_000

# --- Which object the first id of each URL names. A new object URL must be added here (the test says so) --------
PK_KINDS = {
    "budgets:set-up": "agreed_plan",
    "providers:provider": "provider",
    "brokerage:person": "person",
    "brokerage:plan-start": "person",
    "brokerage:person-acting": "person",
    "brokerage:person-representative-add": "person",
    "brokerage:person-connected-add": "person",
    "brokerage:representative-end": "representative",
    "brokerage:person-invite": "person",
    "brokerage:representative-invite": "representative",
    "brokerage:connected-person-necessity": "connected_person",
    "brokerage:person-change": "person",
    "brokerage:connected-person-withdraw": "connected_person",
    "brokerage:plan-line-change": "plan_line",
    **{
        f"brokerage:{name}": "plan"
        for name in (
            "plan",
            "plan-needs",
            "plan-support",
            "plan-risks",
            "plan-check",
            "plan-decide",
            "plan-reopen",
            "plan-agreement",
            "plan-history",
            "plan-reconsideration",
            "plan-section",
        )
    },
    **{
        f"budgets:{name}": "budget"
        for name in (
            "budget",
            "dedicated-account",
            "my-budget",
            "my-transactions",
            "my-purchase",
            "my-pay-invoice",
            "my-invoice",
            "receipt",
            "monitoring",
            "my-returns",
            "my-consent",
            "my-reconsider",
            "held-budget",
            "invoice-record",
            "card-pay",
            "card-payment",
            "my-statements",
            "my-statement",
            "my-statement-pdf",
            "my-statement-request",
            "statements",
            "statement",
            "statement-pdf",
            "statement-request",
            "reduction-notice",
            "recovery-new",
            "recovery",
            "final-audit",
            "letter",
            "letter-pdf",
            "budget-spend-export",
            "purchase-check",
            "holder-spend-check",
        )
    },
    "budgets:review": "review",
    "budgets:holder-bank": "holder",
    "budgets:payment-run": "payment_run",
    "budgets:invoice-reject": "invoice",
    "budgets:payment-run-bacs": "payment_run",
    "budgets:payment-run-csv": "payment_run",
    "budgets:stripe-import": "stripe_cash_account",
    "ledger:account-statement": "ledger_account",
    "ledger:statement-export": "ledger_account",
    "ledger:reconcile-account": "cash_account",
    "ledger:reconcile-import": "cash_account",
    "ledger:reconcile-auto-match": "cash_account",
    "ledger:reconcile-account-change": "cash_account",
    "ledger:reconcile-line": "statement_line",
    "ledger:reconcile-layout-change": "csv_layout",
    "ledger-api:account-detail": "ledger_account",
    "ledger-api:account-statement": "ledger_account",
    "ledger-api:transfer-detail": "transfer",
    "ledger-api:transfer-post-pending": "transfer",
    "ledger-api:transfer-reverse": "transfer",
    "ledger-api:transfer-void": "transfer",
    "brokerage-api:person-detail": "person",
    "brokerage-api:plan-detail": "plan",
    "brokerage-api:plan-fhir": "plan",
    "brokerage-api:plan-transition": "plan",
    "brokerage-api:plan-line-detail": "plan_line",
    "budgets-api:budget-detail": "budget",
    "budgets-api:invoice-detail": "invoice",
    "budgets-api:invoice-approve": "invoice",
    "budgets-api:payment-run-detail": "payment_run",
    "budgets-api:payment-run-approve": "payment_run",
    "budgets-api:payment-run-pay": "payment_run",
    "budgets-api:payment-run-take-out": "payment_run",
}
# The second id, by its name: a child of the budget in the first.
KWARG_KINDS = {
    "invoice_pk": "dp_invoice",
    "spend_pk": "spend",
    "recovery_pk": "recovery",
    "letter_pk": "letter",
    "payment_pk": "card_payment",
    "purchase_pk": "flagged_purchase",
    "holder_spend_pk": "flagged_holder_spend",
}
# Kwargs that name no object, and the values tried.
FILLERS = {"fmt": ("csv", "xlsx"), "section": ("about",), "format": ("json",)}
# Patterns with kwargs that are not objects of anyone's: reasons.
NOT_OBJECTS = {
    "accounts:password-reset-confirm": "a signed token, not an id",
    "accounts:invitation": "a signed token, not an id",
    "accounts:role-dashboard": "a role name; each dashboard checks its own permission",
}
# Query strings that get a page past its form to the object (a statement needs its period).
QUERIES = {
    "budgets:my-statement": PERIOD,
    "budgets:my-statement-pdf": PERIOD,
    "budgets:statement": PERIOD,
    "budgets:statement-pdf": PERIOD,
}

# --- Who legitimately sees person B's objects. Everything not here must be refused. -------------------------------
ALLOWED: dict[str, tuple[set, str]] = {
    # Reference data, not anyone's: the directory is shared by everyone who plans or pays for support.
    "providers:provider": (DIRECTORY, "the provider directory is shared reference data"),
    # Readers (finance and auditors) see every person and plan (brokerage.selectors.READER_ROLES).
    "brokerage:person": (READERS, "readers see every person's record"),
    "brokerage:person-acting": (READERS, "readers see who acts for and is paid by every person"),
    **{name: (READERS, "readers see every plan") for name in ("brokerage:plan", "brokerage:plan-history")},
    "brokerage-api:person-detail": (READERS, "readers see every person's record"),
    "brokerage-api:plan-detail": (READERS, "readers see every plan"),
    "brokerage-api:plan-fhir": (READERS, "readers may export any plan they can read"),
    "brokerage-api:plan-line-detail": (READERS, "readers see every plan's lines"),
    "brokerage-api:plan-transition": (READERS, "readers see the plan; the service refuses steps not theirs (409)"),
    "budgets:budget": (READERS, "readers see every budget's figures"),
    "budgets-api:budget-detail": (READERS, "readers see every budget's figures"),
    "budgets:receipt": (READERS, "receipts are evidence: finance checks them, auditors audit them"),
    # Finance runs every budget: setting up, monitoring, invoices, statements, recoveries and closing.
    "budgets:set-up": (FINANCE, "finance sets up any agreed plan's budget (brokerage.run_budget)"),
    "budgets:dedicated-account": (FINANCE, "finance records where direct payments go"),
    "budgets:monitoring": (FINANCE, "finance monitors every budget (surplus, suspensions)"),
    "budgets:review": (FINANCE, "finance may act on any budget's review (brokerage.run_budget)"),
    "budgets:invoice-record": (FINANCE, "finance records provider invoices"),
    "budgets:invoice-reject": (FINANCE, "finance rejects invoices recorded by mistake"),
    "budgets:statements": (FINANCE, "finance reads every statement (budgets.view_statements)"),
    "budgets:statement": (FINANCE, "finance reads every statement"),
    "budgets:statement-pdf": (FINANCE, "finance reads every statement"),
    "budgets:statement-request": (FINANCE, "finance may ask for any statement's PDF"),
    "budgets:reduction-notice": (FINANCE, "finance issues reduction notices"),
    "budgets:recovery-new": (FINANCE, "finance issues recovery notices"),
    "budgets:recovery": (READERS, "finance acts on notices; other readers see what its letter (also theirs) says"),
    "budgets:final-audit": (LEDGER_READERS, "finance closes budgets; auditors read the final audit"),
    "budgets:letter": (READERS, "letters are part of the record readers see"),
    "budgets:letter-pdf": (READERS, "letters are part of the record readers see"),
    "budgets:budget-spend-export": (LEDGER_READERS, "finance and auditors export any budget's spend"),
    # Finance-wide objects: payment runs, holders' bank details, the ledger and its reconciliation.
    "budgets:holder-bank": (FINANCE, "finance keeps holders' bank details"),
    "budgets:payment-run": (LEDGER_READERS, "finance prepares and approves payment runs; auditors read them"),
    "budgets:payment-run-bacs": (LEDGER_READERS, "finance sends the run's BACS file; auditors read it"),
    "budgets:payment-run-csv": (LEDGER_READERS, "finance checks the run's payments; auditors read them"),
    "budgets:stripe-import": (FINANCE, "finance imports Stripe payouts"),
    "budgets-api:invoice-detail": (LEDGER_READERS, "finance acts on invoices; auditors read them"),
    "budgets-api:invoice-approve": (FINANCE, "finance approves invoices"),
    "budgets-api:payment-run-detail": (LEDGER_READERS, "finance runs payments; auditors read them"),
    "budgets-api:payment-run-approve": (FINANCE, "finance approves payment runs"),
    "budgets-api:payment-run-pay": (FINANCE, "finance pays payment runs"),
    "budgets-api:payment-run-take-out": (FINANCE, "finance takes payments a run could not pay out of it"),
    "ledger:account-statement": (LEDGER_READERS, "finance and auditors read the ledger (ledger.view_account)"),
    "ledger:statement-export": (LEDGER_READERS, "finance and auditors export ledger statements"),
    "ledger:reconcile-account": (LEDGER_READERS, "finance reconciles; auditors read the reconciliation"),
    "ledger:reconcile-import": (FINANCE, "finance imports bank statements"),
    "ledger:reconcile-auto-match": (FINANCE, "finance matches statement lines"),
    "ledger:reconcile-account-change": (FINANCE, "finance sets cash accounts up"),
    "ledger:reconcile-line": (LEDGER_READERS, "finance resolves lines; auditors read them"),
    "ledger:reconcile-layout-change": (FINANCE, "finance keeps the banks' CSV layouts"),
    "ledger-api:account-detail": (LEDGER_READERS, "finance and auditors read the ledger"),
    "ledger-api:account-statement": (LEDGER_READERS, "finance and auditors read the ledger"),
    "ledger-api:transfer-detail": (LEDGER_READERS, "finance and auditors read the ledger"),
    "ledger-api:transfer-post-pending": (FINANCE, "finance moves money (ledger.add_transfer)"),
    "ledger-api:transfer-reverse": (FINANCE, "finance moves money"),
    "ledger-api:transfer-void": (FINANCE, "finance moves money"),
}


# --- Walking the URL configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UrlCase:
    name: str
    kwargs: tuple[tuple[str, str], ...]  # (kwarg, kind) for ids, in the pattern's order; (kwarg, "=value") otherwise
    route: str
    methods: tuple[str, ...]  # GET and POST, or what a DRF route accepts of them

    @property
    def objects(self) -> list[tuple[str, str]]:
        return [(k, kind) for k, kind in self.kwargs if not kind.startswith("=")]

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/")

    def id(self) -> str:
        fillers = [kind[1:] for _, kind in self.kwargs if kind.startswith("=")]
        return self.name + ("." + ".".join(fillers) if fillers else "")


def walk(resolver: URLResolver, namespace: str = "", inherited: dict | None = None, prefix: str = ""):
    """(qualified name, {kwarg: is-an-id}, pattern, route) for every pattern, included URL configurations too."""
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern).lstrip("^")
        kwargs = dict(inherited or {})
        kwargs.update(_kwargs_of(entry.pattern))
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # the admin site lets in only is_staff users: test_the_admin_site_is_closed_to_every_role
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry, inner, kwargs, route)
        elif isinstance(entry, URLPattern):
            yield (f"{namespace}{entry.name}" if entry.name else None), kwargs, entry, route


def _kwargs_of(pattern) -> dict[str, bool]:
    if isinstance(pattern, RoutePattern):
        return {name: isinstance(conv, IntConverter) for name, conv in pattern.converters.items()}
    if isinstance(pattern, RegexPattern):
        # DRF routers' lookups, e.g. (?P<pk>[^/.]+): ids, whatever the regex.
        return {name: name.endswith("pk") for name in pattern.regex.groupindex}
    return {}


def url_cases(resolver: URLResolver | None = None) -> tuple[list[UrlCase], list[str]]:
    """The object-bearing URLs the matrix tries, and a message for each it cannot fill."""
    cases, unknown = [], []
    for name, kwargs, entry, route in walk(resolver or get_resolver()):
        if not kwargs:
            continue
        if name in NOT_OBJECTS or set(kwargs) <= set(FILLERS):
            continue  # no object's id in it (exports of everything are role checks, tried elsewhere)
        if name is None:
            unknown.append(f"{entry.pattern} has kwargs {sorted(kwargs)} but no name: name it so the matrix can try it")
            continue
        variants: list[list[tuple[str, str]]] = [[]]
        ids_seen = 0
        for kwarg, is_id in kwargs.items():
            if kwarg in FILLERS:
                kinds = ["=" + value for value in FILLERS[kwarg]]
            elif is_id and ids_seen == 0 and name in PK_KINDS:
                kinds = [PK_KINDS[name]]
            elif is_id and ids_seen > 0 and kwarg in KWARG_KINDS:
                kinds = [KWARG_KINDS[kwarg]]
            else:
                unknown.append(
                    f"{name} ({entry.pattern}): the access matrix does not know what `{kwarg}` names. Add the URL to "
                    "PK_KINDS (or the kwarg to KWARG_KINDS) in tests/test_access_matrix.py, and to ALLOWED if some "
                    "role may see another person's object through it"
                )
                break
            ids_seen += is_id
            variants = [[*variant, (kwarg, kind)] for variant in variants for kind in kinds]
        else:
            # A DRF route names its methods; a POST to a route without one is refused before any lookup.
            actions = getattr(entry.callback, "actions", None) or {"get": "", "post": ""}
            methods = tuple(method.upper() for method in ("get", "post") if method in actions)
            cases += [UrlCase(name, tuple(variant), route, methods) for variant in variants]
    return cases, unknown


CASES, UNKNOWN = url_cases()


def test_every_object_url_is_known_to_the_matrix():
    assert not UNKNOWN, "\n".join(UNKNOWN)
    # The allow-table names only real URLs, and only roles that exist.
    names = {case.name for case in CASES}
    assert set(ALLOWED) <= names, set(ALLOWED) - names
    assert all(roles <= set(Role) and reason for roles, reason in ALLOWED.values())
    assert len(CASES) > 70  # the walk found the app's URLs (pages, downloads and API routes)
    assert {"budgets-api:budget-detail", "budgets:letter-pdf", "ledger:statement-export"} <= names


def test_a_new_object_url_fails_the_matrix_until_it_is_known():
    def view(request, **kwargs):
        raise AssertionError("never called")

    urls = [
        path("budgets/<int:pk>/", view, name="budget"),  # known
        path("things/<int:pk>/", view, name="thing"),  # a new object
        path("budgets/<int:pk>/gadgets/<int:gadget_pk>/", view, name="receipt"),  # a known URL, a new child
        path("files/<uuid:ref>/", view, name="file"),  # an id that is not an integer
    ]
    cases, unknown = url_cases(URLResolver(RegexPattern(r"^/"), [path("", include((urls, "budgets")))]))
    assert [case.id() for case in cases] == ["budgets:budget"]
    assert [message.split(" ")[0] for message in unknown] == ["budgets:thing", "budgets:receipt", "budgets:file"]
    assert "`gadget_pk`" in unknown[1] and "`ref`" in unknown[2]
    assert all("Add the URL to PK_KINDS" in message for message in unknown)


# --- The world: person A (whom every user works with) and person B (whose ids are tried) ------------------------


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Seeded once for the module inside a transaction rolled back when the module ends; each test's own transaction
    (a savepoint inside it) undoes what that test's POSTs changed. Each role's client signs in once."""
    from budgets import payments
    from providers.reference import ensure_service_categories

    media = tmp_path_factory.mktemp("matrix-media")
    with override_settings(MEDIA_ROOT=media, PAYMENTS_GATEWAY="fake"), django_db_blocker.unblock():
        payments.fake_gateway().reset()
        with transaction.atomic():
            ensure_service_categories()
            seeded = _seed()
            seeded["clients"] = {role: _client_for(user) for role, user in seeded["users"].items()}
            seeded["clients"][ANONYMOUS] = Client()
            yield seeded
            transaction.set_rollback(True)
        payments.fake_gateway().reset()


def _client_for(user) -> Client:
    client = TwoFactorClient()  # passes the second factor of staff who need one (tests/mfa.py)
    client.force_login(user)
    return client


def _seed() -> dict:
    a_patient, b_patient = user_with_role(Role.PATIENT), user_with_role(Role.PATIENT)
    mine = person_with_money(agreed_crew(contribution_pounds=600), a_patient, None)
    theirs = person_with_money(agreed_crew(contribution_pounds=600), b_patient, None)
    person_b = theirs["crew"]["plan"].person
    person_b.given_name, person_b.family_name = "Beatrix", "Quillfeather"
    person_b.save(update_fields=["given_name", "family_name"])
    crew, finance = mine["crew"], mine["crew"]["finance"]
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=crew["icb"])
    objects = {"a": _objects(mine, finance, "Ownbury"), "b": _objects(theirs, finance, "Quillfeather")}
    objects["b"]["agreed_plan"] = agreed_crew()["plan"].pk  # a third person's plan, agreed and waiting for its budget
    objects["b"]["user"] = b_patient.pk

    # Finance objects that are nobody's but touch B: a payment run paying B, a bank line, layouts, cash accounts.
    today = datetime.date.today()
    run, _ = payment_runs.payment_run_create(run_date=today + datetime.timedelta(days=60), acting_user=finance)
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    cash = bank("matrix:bank", csv_mapping=mapping_for("lloyds.csv"))
    stripe = CashAccount.objects.create(
        account=open_account("matrix:stripe", AccountKind.ASSET),
        name="Stripe",
        source=StatementSource.STRIPE,
        reconcile_from=datetime.date(2026, 10, 1),
    )
    imported = StatementImport.objects.create(
        cash_account=cash, source=StatementSource.CSV, filename="nov.csv", sha256="0" * 64, imported_by=finance
    )
    line = StatementLine.objects.create(
        cash_account=cash,
        statement_import=imported,
        date=datetime.date(2026, 11, 2),
        amount=-200,
        description="Payment run",
        dedupe_key="matrix-1",
        line_number=1,
    )
    for side in objects.values():
        side.update(
            payment_run=run.pk,
            cash_account=cash.pk,
            stripe_cash_account=stripe.pk,
            statement_line=line.pk,
            csv_layout=cash.csv_mapping_id,
        )

    person_a = crew["plan"].person
    representative, nominee = user_with_role(Role.REPRESENTATIVE), user_with_role(Role.NOMINEE)
    for user, kind, extra in (
        (representative, "representative", {"basis": "adult_lacking_capacity"}),
        (nominee, "nominee", {"nominated_on": today, "consent_recorded_on": today}),
    ):
        Representative.objects.create(person=person_a, kind=kind, name=kind, relationship="child", user=user, **extra)
    holder_a = mine["budget"].lines.get(management_type="third_party").plan_line.third_party_holder
    users = {
        Role.PATIENT: a_patient,
        Role.REPRESENTATIVE: representative,
        Role.NOMINEE: nominee,
        Role.CARE_BROKER: crew["broker"],
        Role.CARE_COORDINATOR: crew["coordinator"],
        Role.ICB_APPROVER: crew["approver"],  # A's ICB; B is in another
        Role.THIRD_PARTY_STAFF: user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder_a),  # A's holder, not B's
        Role.FINANCE_OFFICER: finance,
        Role.FINANCE_MANAGER: manager,
        Role.AUDITOR: user_with_role(Role.AUDITOR),
        Role.ADMINISTRATOR: user_with_role(Role.ADMINISTRATOR),
    }
    assert set(users) == set(Role)
    # Text only B's records hold: their NHS number, their name, a payee only B paid.
    return {"users": users, "ids": objects, "b_markers": [person_b.nhs_number, "Quillfeather"], "a_marker": "Ownbury"}


def _objects(side: dict, finance, payee: str) -> dict[str, int]:
    """Ids of every kind of object in one person's world, which is made busy enough for each page to show some."""
    budget, crew = side["budget"], side["crew"]
    plan = crew["plan"]
    today = datetime.date.today()
    spending.dp_spend_record(
        budget=budget,
        line=budget.lines.get(management_type="direct_payment"),
        payee=f"{payee} Catering",
        spent_on=datetime.date(2026, 11, 3),
        amount_pence=150,
        key=f"matrix-{budget.pk}",
        acting_user=finance,
    )
    # Spending flagged for the coordinator to check (rules 9 and 10): a purchase and a holder's, neither coded.
    flagged_purchase = spending.dp_spend_record(
        budget=budget,
        line=None,
        payee=f"{payee} Corner Shop",
        spent_on=datetime.date(2026, 11, 3),
        amount_pence=50,
        key=f"matrix-flagged-{budget.pk}",
        acting_user=finance,
    )
    holder = budget.lines.get(management_type="third_party").plan_line.third_party_holder
    flagged_holder_spend = spending.holder_spend_record(
        budget=budget,
        holder=holder,
        line=None,
        payee=f"{payee} Agency",
        spent_on=datetime.date(2026, 11, 3),
        amount_pence=50,
        key=f"matrix-flagged-holder-{budget.pk}",
        acting_user=finance,
    )
    notional = budget.lines.get(management_type="notional")
    invoice = invoices.invoice_record(
        line=notional,
        provider=notional.plan_line.provider,
        invoice_number=f"N-{budget.pk}",
        invoice_date=today,
        amount_pence=300,
        acting_user=finance,
    )
    review = monitoring.review_trigger(budget=budget, reason="concern", note="A fall at home", acting_user=finance)
    recovery = issued_recovery(
        budget=budget,
        reasons="Money has built up in the account beyond what the plan needs.",
        amount_pence=100,
        deadline=today + datetime.timedelta(days=60),
        addressee=Addressee.PERSON,
        addressee_name="The person",
        acting_user=finance,
        from_balance=True,
    )
    statements.statement_generate(
        budget=budget,
        period_start=datetime.date.fromisoformat(PERIOD["start"]),
        period_end=datetime.date.fromisoformat(PERIOD["end"]),
    )
    letter = Letter.objects.get(budget=budget, subject_ref=f"recovery:{recovery.pk}")
    letters.letter_pdf(letter)  # made once and kept, as on its first download
    account = Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment")
    representative = Representative.objects.create(
        person=plan.person, kind="representative", name=f"{payee} Parent", relationship="mother", basis="child_under_16"
    )
    connected = ConnectedPerson.objects.create(
        person=plan.person,
        provider=budget.lines.get(management_type="direct_payment").plan_line.provider,
        relationship="friend",  # not blocked: nothing the matrix pays is held up
        recorded_by=crew["broker"],
    )
    return {
        "person": plan.person_id,
        "representative": representative.pk,
        "connected_person": connected.pk,
        "plan": plan.pk,
        "plan_line": plan.lines.order_by("id").first().pk,
        "budget": budget.pk,
        "dp_invoice": side["invoice"].pk,
        "invoice": invoice.pk,
        "spend": side["spend"].pk,
        "flagged_purchase": flagged_purchase.pk,
        "flagged_holder_spend": flagged_holder_spend.pk,
        "card_payment": side["card"].pk,
        "review": review.pk,
        "recovery": recovery.pk,
        "letter": letter.pk,
        "ledger_account": account.pk,
        "transfer": Transfer.objects.filter(debit_account=account).order_by("id").first().pk,
        "holder": budget.lines.get(management_type="third_party").plan_line.third_party_holder_id,
        "provider": budget.lines.get(management_type="direct_payment").plan_line.provider_id,
    }


# --- Asking -----------------------------------------------------------------------------------------------------


def build(case: UrlCase, ids: list) -> str:
    """The URL with its first id from the first world, its second from the second (or the only one) and so on."""
    kwargs, position = {}, 0
    for kwarg, kind in case.kwargs:
        if kind.startswith("="):
            kwargs[kwarg] = kind[1:]
            continue
        source = ids[min(position, len(ids) - 1)]
        kwargs[kwarg] = source[kind] if isinstance(source, dict) else source
        position += 1
    query = QUERIES.get(case.name)
    return reverse(case.name, kwargs=kwargs) + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def ask(client, method: str, url: str, api: bool):
    if method == "GET":
        return client.get(url)
    return client.post(url, {}, content_type="application/json") if api else client.post(url, {})


def access_records(caplog, since: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records[since:] if r.name == "phb.access"]


def text_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def refusal_problem(case: UrlCase, role, method: str, response, client, world) -> str | None:
    """Why this answer is not a proper refusal, or None."""
    status = response.status_code
    if any(marker in text_of(response) for marker in world["b_markers"]):
        return f"{status} shows person B's details"
    if status == 404:
        return None
    signing_in = status == 302 and response["Location"].startswith(reverse("accounts:sign-in"))
    if role == ANONYMOUS and not case.is_api and signing_in:
        return None
    if status in (401, 403, 405):
        # Refused before any lookup (the wrong role, signed out, a POST-only view): fine if an id that does not exist
        # gets the same answer, so the answer tells nothing about B's object.
        if ask(client, method, build(case, [MISSING_ID]), case.is_api).status_code == status:
            return None
        return f"{status} for B's id but not for a missing one: the answer tells that the object exists"
    return f"{status}, not 404" + (" or a redirect to sign in" if role == ANONYMOUS else "")


def log_problem(records, response, method: str, url: str, user, api: bool) -> str | None:
    status = response.status_code
    # Refusals are logged for those signed in, and for everyone on the API (config/access_log.py).
    expected = int(status in (401, 403, 404) and (api or (user is not None and status != 401)))
    if len(records) != expected:
        return f"{status} logged {len(records)} times on phb.access, not {expected}"
    if records:
        record = records[0]
        got = (record.access_status, record.access_method, record.access_path, record.access_user)
        if got != (status, method, url.split("?")[0], str(user.pk) if user else "-"):
            return f"logged as {record.getMessage()}"
        if user is not None and record.access_roles != ",".join(sorted(user.roles)):
            return f"logged roles {record.access_roles!r}"
    return None


def reached(response) -> bool:
    """An answer that is neither a refusal nor a trip back to signing in (or to the two-factor step)."""
    if response.status_code in (401, 403, 404, 405):
        return False
    return response.status_code != 302 or not response["Location"].startswith(("/sign-in/", "/account/two-factor/"))


@pytest.mark.parametrize("case", CASES, ids=UrlCase.id)
def test_no_role_reaches_another_persons_objects(case, world, caplog):
    caplog.set_level(logging.INFO, logger="phb.access")
    a, b = world["ids"]["a"], world["ids"]["b"]
    problems, own_reached = [], []
    for role in ROLES:
        client, user = world["clients"][role], world["users"].get(role)
        variants = [("B's ids", [b])]
        # A parent-and-child URL: whoever reaches A's own child must still not reach B's under A's parent.
        if len(case.objects) > 1 and role != ANONYMOUS and reached(client.get(build(case, [a]))):
            own_reached.append(role)
            variants.append(("A's parent, B's child", [a, b]))
        for label, ids in variants:
            url = build(case, ids)
            allowed = label == "B's ids" and role in ALLOWED.get(case.name, (set(), ""))[0]
            allowed_reached = False
            for method in case.methods:
                if allowed and method == "POST" and allowed_reached:
                    break  # legitimate: its forms are R6's business; a GET shows the access is real
                since = len(caplog.records)
                response = ask(client, method, url, case.is_api)
                status, records = response.status_code, access_records(caplog, since)
                where = f"{role} {method} {url} ({label})"
                if status >= 500:
                    problems.append(f"{where}: {status}")
                elif allowed:
                    allowed_reached = allowed_reached or reached(response)
                else:
                    problem = refusal_problem(case, role, method, response, client, world) or log_problem(
                        records, response, method, url, user, case.is_api
                    )
                    if problem:
                        problems.append(f"{where}: {problem}")
            if allowed and not allowed_reached:
                problems.append(f"{role} {url}: refused, but ALLOWED says this role may see it: update ALLOWED")
    if len(case.objects) > 1 and not own_reached:
        problems.append(f"no role reaches {build(case, [a])}: A's own objects are missing, so B's child is not tried")
    assert not problems, "\n".join(problems)


# --- Role-wide refusals, lists and exports ----------------------------------------------------------------------

# Nobody outside finance (and auditors) reaches a finance page or export; ICB approvers only their ICB's reports.
OUTSIDE_FINANCE = {
    Role.PATIENT,
    Role.REPRESENTATIVE,
    Role.NOMINEE,
    Role.CARE_BROKER,
    Role.CARE_COORDINATOR,
    Role.THIRD_PARTY_STAFF,
    Role.ADMINISTRATOR,
}
REPORTS = {
    "budgets:phb-return",
    "budgets:phb-return-csv",
    "budgets:recharges",
    "budgets:recharges-csv",
    "budgets:funder-payments",  # what local authorities paid their ICB: an approver reads their own ICB's
}


def finance_urls() -> list[tuple[str, str]]:
    """(name, URL) of every finance page and export that names no object: lists, reports, whole-ledger exports."""
    found = []
    for name, kwargs, _entry, route in walk(get_resolver()):
        if route.startswith("finance/") and set(kwargs) <= set(FILLERS):
            found += [(name, reverse(name, kwargs={k: FILLERS[k][0] for k in kwargs}))]
    return found


def test_finance_pages_and_exports_are_not_found_by_anyone_outside_finance(world, caplog):
    caplog.set_level(logging.INFO, logger="phb.access")
    urls = finance_urls()
    assert {"budgets:spend-export", "ledger:transfers-export", "ledger:trial-balance-csv"} <= {n for n, _ in urls}
    problems = []
    for role in [*OUTSIDE_FINANCE, Role.ICB_APPROVER]:
        client, user = world["clients"][role], world["users"][role]
        for name, url in urls:
            if role == Role.ICB_APPROVER and name in REPORTS:
                continue  # their own ICB's figures: test_reports_count_only_the_approvers_icb
            since = len(caplog.records)
            response = client.get(url)
            problem = (f"{response.status_code}, not 404" if response.status_code != 404 else None) or log_problem(
                access_records(caplog, since), response, "GET", url, user, False
            )
            if problem:
                problems.append(f"{role} GET {url}: {problem}")
    finance = world["clients"][Role.FINANCE_OFFICER]
    problems += [f"finance officer GET {url}: 404" for _, url in urls if finance.get(url).status_code == 404]
    assert not problems, "\n".join(problems)


def test_reports_count_only_the_approvers_icb(world):
    def total(role) -> str:
        response = world["clients"][role].get(reverse("budgets:phb-return-csv"), {"quarter": "2026-Q3"})
        assert response.status_code == 200, role
        rows = [line.split(",") for line in text_of(response).splitlines()]
        return next(row[-1] for row in rows if row[2] == "Total" and row[1].startswith("Received"))

    assert total(Role.FINANCE_OFFICER) == "2"  # A's budget and B's
    assert total(Role.ICB_APPROVER) == "1"  # A's ICB only


def api_ids(client, url: str) -> set[int]:
    response = client.get(url)
    assert response.status_code == 200, url
    return {row["id"] for row in response.json()["results"]}


def test_lists_and_exports_hold_only_the_users_own_people(world):
    a, b = world["ids"]["a"], world["ids"]["b"]
    clients = world["clients"]

    def page(role, url: str) -> str:
        response = clients[role].get(url, follow=True)
        assert response.status_code == 200, (role, url)
        body = text_of(response)
        assert not [m for m in world["b_markers"] if m in body], f"{role} {url} shows person B's details"
        return body

    for role in (Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE):
        assert clients[role].get("/my/")["Location"] == f"/my/budgets/{a['budget']}/"
        page(role, "/dashboard/")
        page(role, f"/my/budgets/{a['budget']}/")
        assert world["a_marker"] in page(role, f"/my/budgets/{a['budget']}/transactions/")  # A's own purchase
        page(role, f"/my/budgets/{a['budget']}/statements/")
    for role in (Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.ICB_APPROVER):
        people = page(role, "/people/")
        assert f"/people/{a['person']}/" in people and f"/people/{b['person']}/" not in people
        page(role, "/dashboard/")
    page(Role.ICB_APPROVER, "/approvals/")
    held = page(Role.THIRD_PARTY_STAFF, "/held/")
    assert f"/held/{a['budget']}/" in held and f"/held/{b['budget']}/" not in held
    page(Role.THIRD_PARTY_STAFF, "/dashboard/")

    # The API's lists: only the user's own people, plans, lines and budgets.
    scoped = {
        "/api/brokerage/people/": "person",
        "/api/brokerage/plans/": "plan",
        "/api/brokerage/plan-lines/": "plan_line",
        "/api/budgets/budgets/": "budget",
    }
    for role in (Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE, Role.CARE_BROKER, Role.CARE_COORDINATOR):
        for url, kind in scoped.items():
            found = api_ids(clients[role], url)
            assert a[kind] in found and b[kind] not in found, (role, url, found)
    for url, kind in scoped.items():
        assert b[kind] not in api_ids(clients[Role.ICB_APPROVER], url), url
        assert not api_ids(clients[Role.THIRD_PARTY_STAFF], url), url  # holders use /held/, not the API
    # Readers see everyone: the lists above are scoped, not empty by accident.
    assert {a["budget"], b["budget"]} <= api_ids(clients[Role.FINANCE_OFFICER], "/api/budgets/budgets/")


def test_the_admin_site_is_closed_to_every_role(world):
    """The admin lets in only is_staff users (none of these): every role is sent to its sign-in page."""
    b = world["ids"]["b"]
    urls = ["/admin/", f"/admin/brokerage/person/{b['person']}/change/", f"/admin/accounts/user/{b['user']}/change/"]
    for role in ROLES:
        for url in urls:
            response = world["clients"][role].get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (role, url)


def test_a_refusal_is_logged_as_one_line_of_ids(world, caplog):
    """No query string (it may hold a searched name), and a crafted path cannot forge a second line."""
    caplog.set_level(logging.INFO, logger="phb.access")
    broker = world["users"][Role.CARE_BROKER]
    response = world["clients"][Role.CARE_BROKER].get("/people/2000000000/%0A%20status=200 user=1?q=Quillfeather")
    assert response.status_code == 404
    (record,) = access_records(caplog, 0)
    line = record.getMessage()
    assert "\n" not in line and " status=200" not in line and "Quillfeather" not in line
    assert line == (
        "access refused status=404 method=GET path=/people/2000000000/%0A%20status%3D200%20user%3D1 "
        f"user={broker.pk} roles=care_broker"
    )
    world["clients"][ANONYMOUS].get("/people/2000000000/")  # signed out: sent to sign in, nothing to log
    world["clients"][Role.CARE_BROKER].get(f"/people/{world['ids']['a']['person']}/")  # allowed: nothing to log
    assert len(access_records(caplog, 0)) == 1


def test_every_api_path_with_an_id_in_the_schema_is_in_the_matrix(world):
    """The OpenAPI schema (/api/schema/) and the URL walk agree: no API route with an id escapes the matrix."""
    response = world["clients"][Role.FINANCE_OFFICER].get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    with_ids = [p for p in response.json()["paths"] if "{" in p]
    tried = {case.name for case in CASES}
    missing = [p for p in with_ids if resolve(re.sub(r"\{[^}]+\}", "1", p)).view_name not in tried]
    assert len(with_ids) >= 15 and not missing, missing


def test_a_superuser_holds_the_services_permissions_only_through_their_roles(world):
    """Superuser opens the admin site (users, organisations, reference data), not finance pages or anyone's care
    record: the service's rules are about roles, and the first account made by createsuperuser is an administrator."""
    b = world["ids"]["b"]
    superuser = user_with_role(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    assert superuser.has_perm("accounts.change_user") and superuser.has_perm("providers.change_servicecategory")
    assert not superuser.has_perm("ledger.view_account") and not superuser.has_perm("budgets.run_payments")
    assert not superuser.has_perm("brokerage.view_person") and superuser.has_perm("providers.view_directory")
    client = TwoFactorClient()
    client.force_login(superuser)
    for url in ("/finance/ledger/accounts/", f"/people/{b['person']}/", f"/budgets/{b['budget']}/", "/my/"):
        assert client.get(url).status_code == 404, url
    assert client.get(f"/admin/brokerage/person/{b['person']}/change/").status_code == 403  # no care records
    assert client.get(f"/admin/accounts/user/{b['user']}/change/").status_code == 200
    navigation = client.get("/dashboard/administrator/").content.decode()
    assert 'href="/people/"' not in navigation and 'href="/my/"' not in navigation
