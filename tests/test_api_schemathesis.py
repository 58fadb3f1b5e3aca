"""No 500s from the API (R6): schemathesis generates requests for every operation in the OpenAPI schema the app
serves at /api/schema/, valid and invalid, and sends them in-process through the WSGI application, signed in by
session as a finance officer and as the person whose budget it is. No response may be a server error, and every
documented response must match its schema. Path ids are mostly real ones from a seeded world, so the operations
do real work (and are refused for real reasons) instead of answering 404.

Each request runs in a savepoint that is rolled back, so every example starts from the same world (money moved by
one example does not change what the next one sees, and a failure replays exactly).

50 examples per operation and user, so 100 per operation (PHB_FUZZ_API_EXAMPLES changes it): about half a minute
on 2 cores."""

from __future__ import annotations

import os
import traceback

import pytest
import schemathesis
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from config.wsgi import application
from tests.fuzz_world import seeded_world
from tests.ledger.helpers import post, reserve
from tests.mfa import TwoFactorClient

pytestmark = pytest.mark.django_db

# Per operation and user: with two users, 100 cases per operation. PHB_FUZZ_API_EXAMPLES changes it.
EXAMPLES = int(os.environ.get("PHB_FUZZ_API_EXAMPLES", "50"))
# Loaded from the running app, as a client would; generating the schema touches no table.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
USERS = ["finance", "patient"]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with seeded_world(django_db_blocker) as world:
        # The world's own transfers are a budget's, which the API refuses to move by hand (422): these two, between
        # the ICB's bank and Stripe accounts, let posting, voiding and reversing do real work too.
        bank, stripe = world["cash"].account, world["stripe_cash"].account
        world["icb_transfer"] = post(bank, stripe, 5_000, "payout")
        world["icb_pending"] = reserve(stripe, bank, 2_000, "payout")
        yield world


@pytest.fixture(scope="module", autouse=True)
def _in_process_connections():
    """Requests go through the real WSGI handler, whose request signals would close the test's connection (and so
    its transaction); Django's own test client switches them off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(params=USERS)
def signed_in(request, world):
    """Session and CSRF cookies, and the CSRF header, for one of the world's users."""
    return session_for(world[request.param])


def session_for(user) -> dict:
    client = TwoFactorClient()  # staff who move money have passed their second factor too
    client.force_login(user)
    token = get_random_string(CSRF_SECRET_LENGTH, CSRF_ALLOWED_CHARS)
    return {
        "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": token},
        "headers": {"X-CSRFToken": token},
    }


@pytest.fixture
def server_errors():
    """Tracebacks of exceptions the app turned into 500s, to show with the failing request."""
    seen: list[str] = []

    def record(sender, request=None, **kwargs):
        seen.append(traceback.format_exc())

    got_request_exception.connect(record)
    yield seen
    got_request_exception.disconnect(record)


def real_ids(world) -> dict[str, list[int]]:
    """For each collection, the ids in the seeded world (and one that exists nowhere)."""
    budget = world["budget"]
    return {
        "/api/brokerage/people/": [world["person"].pk, world["draft"].person_id],
        "/api/brokerage/plans/": [world[name].pk for name in ("plan", "draft", "submitted", "approved", "to_set_up")],
        "/api/brokerage/plan-lines/": list(world["plan"].lines.values_list("pk", flat=True)),
        "/api/budgets/budgets/": [budget.pk],
        "/api/budgets/invoices/": [world["invoice"].pk],
        "/api/budgets/payment-runs/": [world["run"].pk],
        "/api/ledger/accounts/": [world["ledger_account"].pk, world["cash"].account_id],
        "/api/ledger/transfers/": [
            world["transfer"].pk,
            world["pending_transfer"].pk,
            world["icb_transfer"].pk,
            world["icb_pending"].pk,
        ],
    }


def use_real_ids(case, world, data) -> None:
    """Point most examples at objects that exist: path ids, and the ids a request body refers to."""
    if "id" in (case.path_parameters or {}) and data.draw(st.integers(0, 3), label="real id?") > 0:
        collection = case.path.split("{id}")[0]
        case.path_parameters["id"] = data.draw(st.sampled_from(real_ids(world)[collection]), label="id")
    if isinstance(case.body, dict):
        accounts = [
            world["ledger_account"].pk,
            world["cash"].account_id,
            world["stripe_cash"].account_id,
            world["transfer"].debit_account_id,
        ]
        lines = list(world["budget"].lines.values_list("pk", flat=True))
        for field, choices in (("debit_account", accounts), ("credit_account", accounts), ("budget_line", lines)):
            if field in case.body and data.draw(st.booleans(), label=f"real {field}?"):
                case.body[field] = data.draw(st.sampled_from(choices), label=field)


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The same examples on every run, so CI is repeatable; PHB_FUZZ_RANDOM=1 explores new ones.
    derandomize=not os.environ.get("PHB_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_answers_a_server_error(case, data, world, signed_in, server_errors):
    use_real_ids(case, world, data)
    with transaction.atomic():
        response = case.call(**signed_in)
        transaction.set_rollback(True)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}\n" + "\n".join(
        server_errors
    )
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize(
    ("user", "url"),
    [
        ("finance", "/api/ledger/accounts/"),
        ("finance", "/api/budgets/payment-runs/"),
        ("patient", "/api/budgets/budgets/"),
        ("patient", "/api/brokerage/plans/"),
    ],
)
def test_the_fuzzing_users_are_signed_in_and_allowed(world, user, url):
    """Otherwise every fuzzed request would stop at 403 and prove little."""
    signed_in = session_for(world[user])
    case = schema.find_operation_by_path("GET", url).Case()
    response = case.call(**signed_in)
    assert response.status_code == 200 and response.json()["count"] >= 1


def test_the_schema_covers_every_api_url():
    """Every API route is in the schema, so the test above reaches all of them."""
    from django.urls import get_resolver

    from config.urls import urlpatterns

    operations = {(op.method.upper(), op.path) for op in (result.ok() for result in schema.get_all_operations())}
    assert len(operations) >= 29
    api_prefixes = {str(p.pattern) for p in urlpatterns if str(p.pattern).startswith("api/") and "schema" not in str(p)}
    for prefix in api_prefixes - {"api/docs/"}:
        assert any(path.startswith("/" + prefix) for _method, path in operations), prefix
    assert get_resolver().resolve("/api/schema/").url_name == "api-schema"
