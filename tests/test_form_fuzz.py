"""No 500s from the forms (R6): random data posted to every page that takes a POST, found from the URL configuration.

Every URL pattern outside the API and the admin is opened, with ids from a seeded world (tests/fuzz_world.py), as
a user who may use it (the patient for /my/ pages, the broker for plan pages, finance for finance pages...). Every
<form method="post"> on those pages is catalogued with its field names (<input>, <select>, <textarea>, named
buttons). Then hypothesis posts random data to each form: for each field, one of the page's own values (the
options, the hidden key, the button's action) or junk: random text and unicode, numbers, dates, NUL characters,
huge strings, random files for uploads; fields are also left out. A URL pattern with no form on any page is still
posted to unless it answers 405. The properties:

- never a server error (5xx);
- a 200 page that shows a field error also shows the NHS error summary, and a summary always holds a message;
- a 200 page without an error summary is a rejection with no reason, allowed only where the page is a check step
  or a success page (SUCCESS_PAGES, each with why);
- a redirect means it worked.
A body no browser sends (a page's hidden field or button value changed or left out, e.g. an unknown `action`) and
a page with no form need only not fail: such pages show themselves again as they were.

Each POST runs in a savepoint that is rolled back, so every example starts from the same world and a failure
replays exactly. About 5,000 POSTs in all (FORM_EXAMPLES per form); set PHB_FUZZ_FORM_EXAMPLES to change it.
"""

from __future__ import annotations

import copy
import datetime
import os
import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.invitations import invitation_token_generator
from accounts.roles import Role
from brokerage.models import ConnectedPerson, Representative
from providers.models import Provider
from tests.factories import user_with_role
from tests.fuzz_world import PDF, seeded_world
from tests.mfa import TwoFactorClient, authenticator_for

pytestmark = pytest.mark.django_db

FORM_EXAMPLES = int(os.environ.get("PHB_FUZZ_FORM_EXAMPLES", "100"))
OTHER_EXAMPLES = max(FORM_EXAMPLES // 10, 5)  # pages with no form that still take a POST (they ignore the method)

# Not posted to, and why. Everything else in the URL configuration is.
SKIPPED = {
    "accounts:sign-out": "signing out takes no input; random POSTs there only sign the fuzzing user out",
    "budgets:stripe-webhook": "takes only payloads signed with the webhook secret (test_card_payments.py has its own)",
}
NOT_HERE = ("admin/", "api/")  # the admin is Django's own; the API is fuzzed from its schema (test_api_schemathesis)

# A 200 with no error summary is a rejection without a reason, except on these pages.
SUCCESS_PAGES = {
    "brokerage:plan-check": "submitting a complete plan answers with the 'plan submitted' page",
    "budgets:set-up": "a valid start date shows the payment schedule to confirm",
    "budgets:my-pay-invoice": "valid details show the 'check before you pay' step",
    "budgets:recovery-new": "valid details show the notice to confirm",
    "ledger:reconcile-layout-add": "'try' shows how a sample file reads with the layout",
    "ledger:reconcile-layout-change": "'try' shows how a sample file reads with the layout",
}

# Who opens each page and posts its forms: the first pattern that matches the URL name; None is signed out.
USER_FOR = [
    (r"accounts:(sign-in|password-reset.*|invitation)|accessibility|privacy", None),
    (r"accounts:sign-in-code", "code_pending"),  # signed in with a password, the code still to enter
    (r"accounts:two-factor", "app_pending"),  # signed in with a password, the authenticator app still to set up
    (r"accounts:.*|home", "patient"),
    (r"providers:.*", "broker"),
    (r"brokerage:(plan-decide|approvals|connected-person-necessity|connected-person-withdraw)", "approver"),
    (r"brokerage:.*", "broker"),
    (r"budgets:(my-.*|card-pay|card-payment|receipt)", "patient"),
    (r"budgets:(monitoring|review|purchase-check|holder-spend-check)", "coordinator"),
    (r"budgets:held.*", "holder_staff"),
    # Approving needs someone other than the finance officer who recorded the invoice, made the run or the notice.
    (r"budgets:(invoices|payment-run|recovery)", "manager"),
    (r"budgets:.*", "finance"),
    (r"ledger:.*", "manager"),  # closing a month needs a finance manager
]


def user_for(name: str) -> str | None:
    return next(user for pattern, user in USER_FOR if re.fullmatch(pattern, name))


def _walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _walk(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern) and pattern.name and not route.startswith(NOT_HERE):
            yield namespace + pattern.name, route


# Every named URL pattern outside the API and the admin, from the URL configuration: name -> route.
ROUTES = dict(sorted(_walk(get_resolver().url_patterns)))


# Pages that show their POST form only for a query (the month to close is chosen first).
QUERY = {"ledger:period-close": "?month=2026-10"}


def urls_for(name: str, world: dict) -> list[str]:
    """The URLs of a pattern in the seeded world (the plan's section pattern gets one per section)."""
    by_param = {
        "plan_pk": world["to_set_up"].pk,
        "invoice_pk": world["dp_invoice"].pk,
        "spend_pk": world["spend"].pk,
        "recovery_pk": world["recovery"].pk,
        "payment_pk": world["card_payment"].pk,
        "letter_pk": world["letter"].pk,
        "fmt": "csv",
        "purchase_pk": world["spend"].pk,
        "holder_spend_pk": world["spend"].pk,
        "role": "patient",
        "uidb64": urlsafe_base64_encode(force_bytes(world["patient"].pk)),
        "token": default_token_generator.make_token(world["patient"]),
    }
    pk_by_prefix = {  # what `pk` is, by the first prefix of the URL name that matches
        "providers:provider": world["plan"].lines.first().provider_id,
        "brokerage:person": world["draft"].person_id,
        "brokerage:plan-start": world["draft"].person_id,
        "brokerage:representative-end": world["nominee"].pk,
        "brokerage:representative-invite": world["nominee"].pk,
        "brokerage:connected-person-necessity": world["spouse"].pk,
        "brokerage:connected-person-withdraw": world["approved_partner"].pk,
        "brokerage:plan-decide": world["submitted"].pk,
        "brokerage:plan-agreement": world["approved"].pk,
        "brokerage:plan-reopen": world["approved"].pk,
        "brokerage:plan-line-change": world["draft"].lines.first().pk,
        "brokerage:plan": world["draft"].pk,
        "budgets:holder-bank": world["holder"].pk,
        "budgets:review": world["review"].pk,
        "budgets:payment-run": world["run"].pk,
        "budgets:invoice-reject": world["invoice"].pk,
        "budgets:stripe-import": world["stripe_cash"].pk,
        "budgets:": world["budget"].pk,
        "ledger:account-statement": world["ledger_account"].pk,
        "ledger:statement-export": world["ledger_account"].pk,
        "ledger:reconcile-line": world["statement_line"].pk,
        "ledger:reconcile-layout": world["layout"].pk,
        "ledger:reconcile": world["cash"].pk,
    }
    params = set(re.findall(r"<(?:\w+:)?(\w+)>", ROUTES[name]))
    kwargs = {param: by_param[param] for param in params - {"pk", "section"}}
    if "pk" in params:
        kwargs["pk"] = next(pk for prefix, pk in pk_by_prefix.items() if name.startswith(prefix))
    if name == "accounts:invitation":  # an invitation's own token (a reset token does not open it)
        kwargs["token"] = invitation_token_generator.make_token(world["patient"])
    if name in QUERY:
        return [reverse(name, kwargs=kwargs) + QUERY[name]]
    if "section" in params:
        return [reverse(name, kwargs={**kwargs, "section": s}) for s in ("about", "budget", "payments", "coordination")]
    return [reverse(name, kwargs=kwargs)]


# --- Reading forms out of a page ---------------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    kind: str  # text (and textarea), hidden, button (named submit buttons), file, choice (select, radio, checkbox)
    values: list[str] = field(default_factory=list)


@dataclass
class Form:
    action: str
    fields: dict[str, Field] = field(default_factory=dict)

    def add(self, name: str, kind: str, value: str | None) -> None:
        known = self.fields.setdefault(name, Field(name, kind))
        if kind != "text" and known.kind == "text":
            known.kind = kind
        if value is not None and value not in known.values:
            known.values.append(value)


class Forms(HTMLParser):
    """The POST forms of a page: action and fields, with the values the page offers."""

    def __init__(self, page_url: str):
        super().__init__()
        self.page_url, self.forms, self.current, self.select = page_url, [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            method = (attrs.get("method") or "get").lower()
            action = urljoin(self.page_url, attrs.get("action") or self.page_url)
            self.current = Form(urlsplit(action).path) if method == "post" else None
            if self.current is not None:
                self.forms.append(self.current)
        if self.current is None:
            return
        if tag == "option" and self.select:
            self.current.add(self.select, "choice", attrs.get("value", ""))
        name = attrs.get("name")
        if not name:
            return
        if tag == "input":
            kind = (attrs.get("type") or "text").lower()
            if kind in ("submit", "button"):
                self.current.add(name, "button", attrs.get("value", ""))
            elif kind in ("radio", "checkbox"):
                self.current.add(name, "choice", attrs.get("value", "on"))
            elif kind == "file":
                self.current.add(name, "file", None)
            else:
                self.current.add(name, "hidden" if kind == "hidden" else "text", attrs.get("value") or None)
        elif tag == "button":
            self.current.add(name, "button", attrs.get("value", ""))
        elif tag == "textarea":
            self.current.add(name, "text", None)
        elif tag == "select":
            self.select = name
            self.current.add(name, "choice", None)

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None
        elif tag == "select":
            self.select = None


def page_forms(html: str, page_url: str) -> list[Form]:
    parser = Forms(page_url)
    parser.feed(html)
    return parser.forms


# --- The catalogue: every page opened as its user, every POST form found --------------------------------------


@dataclass
class Target:
    """What to post to for one URL name: its forms (with the user who saw them), or just its URL."""

    name: str
    user: str | None
    forms: list[Form]
    get_only: bool = False
    opened: dict[str, int] = field(default_factory=dict)  # url -> status of the GET


def clients(world) -> dict[str | None, Client]:
    signed_in = {None: Client()}
    for key in {user for _pattern, user in USER_FOR if user}:
        client = Client() if key in ("code_pending", "app_pending") else TwoFactorClient()
        client.force_login(world[key])  # the pending ones have not passed their second factor yet
        signed_in[key] = client
    return signed_in


def catalogue(world) -> dict[str, Target]:
    users = world["clients"]
    targets = {name: Target(name, user_for(name), []) for name in ROUTES if name not in SKIPPED}
    for target in targets.values():
        client = users[target.user]
        for url in urls_for(target.name, world):
            response = client.get(url, follow=True)
            target.opened[url] = response.status_code
            if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
                continue
            page = response.redirect_chain[-1][0] if response.redirect_chain else url
            for form in page_forms(response.content.decode(), urljoin("http://testserver", page)):
                try:
                    name = resolve(form.action).view_name
                except Exception:
                    raise AssertionError(f"{url} has a form posting to {form.action}, which is no page here") from None
                # Forms are posted as the user who was shown them (the sign-out button is on every page).
                if name in targets and targets[name].user == target.user:
                    known = {(f.action, tuple(sorted(f.fields))) for f in targets[name].forms}
                    if (form.action, tuple(sorted(form.fields))) not in known:
                        targets[name].forms.append(form)
    for target in targets.values():
        if not target.forms:
            url = urls_for(target.name, world)[0]
            target.get_only = users[target.user].post(url, {}).status_code == 405
    return targets


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with seeded_world(django_db_blocker) as world, django_db_blocker.unblock():
        # Someone acting for the draft plan's person, and a spouse they pay, blocked until an approver says why.
        person = world["draft"].person
        world["nominee"] = Representative.objects.create(
            person=person,
            kind="nominee",
            name="Aisha Robson",
            relationship="daughter",
            nominated_on=datetime.date(2026, 1, 5),
            consent_recorded_on=datetime.date(2026, 1, 6),
        )
        world["spouse"] = ConnectedPerson.objects.create(
            person=person,
            provider=Provider.objects.create(name="Sam Robson", kind="personal_assistant"),
            relationship="spouse",
            recorded_by=world["broker"],
        )
        # A partner whose payment is approved, so the page withdrawing that approval shows its form.
        world["approved_partner"] = ConnectedPerson.objects.create(
            person=person,
            provider=Provider.objects.create(name="Jo Partner", kind="personal_assistant"),
            relationship="partner",
            recorded_by=world["broker"],
            necessity_approved_on=datetime.date(2026, 1, 7),
            necessity_approved_by=world["approver"],
            necessity_reasons="No agency covers the village before 7am",
        )
        world["code_pending"] = user_with_role(Role.FINANCE_OFFICER, organisation=world["icb"])
        authenticator_for(world["code_pending"])
        world["app_pending"] = user_with_role(Role.FINANCE_OFFICER, organisation=world["icb"])
        world["clients"] = clients(world)
        world["catalogue"] = catalogue(world)
        yield world


# --- Random input ---------------------------------------------------------------------------------------------

TRICKY = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "1e9",
    "12.345",
    "0.001",
    "£100",
    "100.00",
    "-0",
    "NaN",
    "Infinity",
    "9" * 30,
    "2026-02-30",
    "2026-12-01",
    "01/12/2026",
    "31",
    "13",
    "0000",
    "99999",
    "\x00",
    "a\x00b",
    "\u202e\u200b",
    "💷🏥",
    "Zoë Ångström",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%s%n",
    "x" * 5000,
]
junk = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=60),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.decimals(allow_nan=True, allow_infinity=True, places=3).map(str),
    st.dates().map(lambda d: d.isoformat()),
    st.integers(0, 40).map(lambda n: "é" * (n * 1000)),
)


def value_for(spec: Field, data) -> str | SimpleUploadedFile | None:
    """One field's value: one the page offers, or junk; sometimes left out (None). The CSRF token is always sent
    as the page gave it, as a browser does (so a POST is never empty)."""
    if spec.name == "csrfmiddlewaretoken":
        return spec.values[0]
    if data.draw(st.integers(0, 9), label=f"{spec.name}: leave out?") == 0:
        return None
    if spec.kind == "file":
        content = data.draw(st.sampled_from([PDF, b"\x89PNG\r\n\x1a\n" + b"\x00" * 20]) | st.binary(max_size=300))
        filename = data.draw(st.sampled_from(["receipt.pdf", "photo.png", "statement.csv", "x.exe", ""]) | st.text())
        return SimpleUploadedFile(filename or "upload", content)
    # Hidden fields and buttons mostly keep the page's values (they say which of a page's forms this is).
    offered = 8 if spec.kind in ("hidden", "button") else 6
    if spec.values and data.draw(st.integers(0, 9), label=f"{spec.name}: offered value?") < offered:
        return data.draw(st.sampled_from(spec.values), label=spec.name)
    return data.draw(junk, label=spec.name)


def body_for(form: Form, data) -> tuple[dict, bool]:
    """The POST body, and whether it is one no browser sends: a hidden field or a button changed or left out."""
    body, tampered = {}, False
    for spec in form.fields.values():
        value = value_for(spec, data)
        if value is not None:
            body[spec.name] = value
        if spec.kind in ("hidden", "button") and spec.values:
            tampered |= value not in spec.values
    return body, tampered


# --- The properties -------------------------------------------------------------------------------------------

SUMMARY_BODY = re.compile(r'class="nhsuk-error-summary__body"[^>]*>(.*?)</div>', re.S)


def summary_text(html: str) -> str | None:
    """The error summary's messages as text (without its heading), or None when the page has no summary."""
    if 'class="nhsuk-error-summary"' not in html:
        return None
    body = SUMMARY_BODY.search(html)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body.group(1))).split()) if body else ""


def check(name: str, response, body: dict, *, strict: bool = True) -> None:
    """Not `strict`: a page with no form (it answers a POST as a GET), or a body no browser sends (a page's hidden
    action changed or left out: the page is shown again as it was). Those need only not fail."""
    status = response.status_code
    where = f"{name} {response.request['PATH_INFO']} answered {status} to {body!r:.600}"
    assert status < 500, where
    assert status in (200, 302, 303, 400, 404, 429), where
    if status != 200 or "html" not in response.get("Content-Type", "") or not strict:
        return
    html = response.content.decode()
    messages = summary_text(html)
    if "nhsuk-error-message" in html:
        assert messages is not None, f"{where}: a field error with no error summary"
    if messages is not None:
        assert messages, f"{where}: an error summary with no message"
    else:
        assert name in SUCCESS_PAGES, f"{where}: neither a redirect nor an error summary"


FUZZ = settings(
    max_examples=FORM_EXAMPLES,
    deadline=None,
    # The same examples on every run, so CI is repeatable; PHB_FUZZ_RANDOM=1 explores new ones.
    derandomize=not os.environ.get("PHB_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", [name for name in ROUTES if name not in SKIPPED])
def test_random_posts_never_answer_a_server_error(world, name):
    target = world["catalogue"][name]
    if target.get_only:
        return  # answers 405 to a POST (checked in test_every_page_was_reached_and_every_form_found)
    client = world["clients"][target.user]
    forms = target.forms or [Form(urls_for(name, world)[0], {n: Field(n, "text") for n in ("action", "confirm")})]

    @settings(FUZZ, max_examples=FORM_EXAMPLES if target.forms else OTHER_EXAMPLES)
    @given(data=st.data())
    def post_random_data(data):
        form = data.draw(st.sampled_from(forms), label="form")
        body, tampered = body_for(form, data)
        cookies = copy.deepcopy(client.cookies)  # the session as it was: its row is rolled back below
        with transaction.atomic():
            response = client.post(form.action, body)
            transaction.set_rollback(True)
        client.cookies = cookies
        check(name, response, body, strict=bool(target.forms) and not tampered)

    post_random_data()


# Pages the seeded world must show with a POST form; if one drops out (the world no longer reaches its state), its
# form would quietly stop being fuzzed.
FORM_PAGES = {
    "accounts:invitation",
    "accounts:password-reset",
    "accounts:password-reset-confirm",
    "accounts:session-extend",
    "accounts:sign-in",
    "accounts:sign-in-code",
    "accounts:two-factor",
    "brokerage:connected-person-necessity",
    "brokerage:connected-person-withdraw",
    "brokerage:person-add",
    "brokerage:person-change",
    "brokerage:person-connected-add",
    "brokerage:person-invite",
    "brokerage:person-representative-add",
    "brokerage:plan-agreement",
    "brokerage:plan-check",
    "brokerage:plan-decide",
    "brokerage:plan-line-change",
    "brokerage:plan-needs",
    "brokerage:plan-reconsideration",
    "brokerage:plan-risks",
    "brokerage:plan-section",
    "brokerage:plan-support",
    "brokerage:representative-end",
    "brokerage:representative-invite",
    "budgets:card-pay",
    "budgets:card-payment",
    "budgets:dedicated-account",
    "budgets:held-budget",
    "budgets:holder-bank",
    "budgets:invoice-record",
    "budgets:invoice-reject",
    "budgets:invoices",
    "budgets:monitoring",
    "budgets:my-consent",
    "budgets:my-pay-invoice",
    "budgets:my-purchase",
    "budgets:my-reconsider",
    "budgets:my-returns",
    "budgets:payment-run",
    "budgets:payment-runs",
    "budgets:recovery",
    "budgets:recovery-new",
    "budgets:review",
    "budgets:set-up",
    "budgets:stripe-import",
    "ledger:period-close",
    "ledger:reconcile-account-add",
    "ledger:reconcile-account-change",
    "ledger:reconcile-auto-match",
    "ledger:reconcile-import",
    "ledger:reconcile-layout-add",
    "ledger:reconcile-layout-change",
    "ledger:reconcile-line",
}
# Pages whose GET is not a 200 in the seeded world, and why.
NOT_SHOWN = {
    "accounts:session-extend": "POST only (the form is on every page)",
    "brokerage:plan-start": "POST only (the button is on the person's page once their plan is agreed)",
    "brokerage:plan-reopen": "POST only (the button is on a plan that was returned)",
    "budgets:my-statement-request": "POST only (the button is on the statements page for long periods)",
    "budgets:statement-request": "POST only (the button is on the statements page for long periods)",
    "budgets:my-statement-pdf": "needs the period asked for",
    "budgets:statement-pdf": "needs the period asked for",
    "budgets:payment-run-bacs": "only for an approved run",
    "budgets:payment-run-csv": "only for an approved run",
    "budgets:purchase-check": "only for flagged spending; the world's is coded (test_spending_checks fuzzes it)",
    "budgets:holder-spend-check": "only for flagged spending; the world has no holder spending (test_spending_checks)",
}


def test_every_page_was_opened_and_every_form_found(world):
    catalogue = world["catalogue"]
    not_shown = {name for name, target in catalogue.items() if set(target.opened.values()) != {200}}
    assert not_shown == set(NOT_SHOWN), {name: catalogue[name].opened for name in not_shown ^ set(NOT_SHOWN)}
    with_forms = {name for name, target in catalogue.items() if target.forms}
    assert with_forms >= FORM_PAGES, FORM_PAGES - with_forms
    # Everything else either refuses a POST with 405 or is posted to all the same.
    get_only = {name for name, target in catalogue.items() if target.get_only}
    assert "accounts:password-reset-done" in get_only and not get_only & with_forms
    posts = sum(len(urls_for(name, world)) * (FORM_EXAMPLES if name in with_forms else OTHER_EXAMPLES)
                for name in catalogue if name not in get_only)  # fmt: skip
    assert posts >= 5000 or FORM_EXAMPLES < 100, posts


# --- Regressions found by the fuzzing -------------------------------------------------------------------------


def test_a_next_address_that_is_a_bare_word_is_not_followed(client):
    """`next=0` passed the same-site check and redirect() took "0" for a view name: a 500 (session-extend and the
    two-factor code page)."""
    patient = user_with_role(Role.PATIENT)
    client.force_login(patient)
    response = client.post(reverse("accounts:session-extend"), {"next": "0"})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:dashboard")
    assert client.post(reverse("accounts:session-extend"), {"next": "/my/"})["Location"] == "/my/"
    finance = user_with_role(Role.FINANCE_OFFICER)
    client.force_login(finance)  # has passed the second factor: the code page sends them on
    response = client.get(reverse("accounts:sign-in-code"), {"next": "0"})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:dashboard")
