"""Random input to every budget form and API endpoint never answers 500 (the money pages included)."""

import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.roles import Role
from budgets import payment_runs, services
from tests.budgets.test_payment_runs import add_bank_details
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
FUZZ = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
junk = st.text(max_size=40) | st.sampled_from(
    ["", "-1", "0", "1e9", "12.345", "£100", "2026-02-30", "NaN", "9" * 20, "acct_", "0.001", "2026-12-01"]
)
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30), st.lists(st.integers())
)


@pytest.fixture
def money(agreed):
    budget = services.budget_set_up(
        plan=agreed["plan"], acting_user=agreed["finance"], start_date=datetime.date(2026, 12, 1)
    )
    add_bank_details(budget)
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    run, _ = payment_runs.payment_run_create(run_date=datetime.date(2026, 12, 1), acting_user=agreed["finance"])
    agreed.update(budget=budget, manager=manager, run=run)
    return agreed


def form_urls(crew) -> dict[str, list[str]]:
    budget, holder = crew["budget"], crew["budget"].lines.get(management_type="third_party").plan_line
    return {
        f"/budgets/{budget.pk}/invoices/new/": ["line", "invoice_number", "invoice_date", "amount"],
        "/finance/invoices/": ["invoice", "action"],
        "/finance/payment-runs/": ["run_date"],
        f"/finance/payment-runs/{crew['run'].pk}/": ["action"],
        f"/budgets/{budget.pk}/dedicated-account/": [
            "recipient",
            "kind",
            "account_name",
            "sort_code",
            "account_number",
            "signatories",
        ],
        f"/finance/holders/{holder.third_party_holder_id}/bank/": [
            "account_name",
            "sort_code",
            "account_number",
            "stripe_account_id",
        ],
        f"/plans/{crew['plan'].pk}/budget/set-up/": ["start_date", "confirm"],
    }


@FUZZ
@given(data=st.data())
def test_budget_forms_never_fail_with_random_input(client, money, data):
    client.force_login(data.draw(st.sampled_from([money["finance"], money["manager"]])))
    for url, names in form_urls(money).items():
        body = {name: data.draw(junk) for name in names if data.draw(st.booleans())}
        response = client.post(url, body)
        assert response.status_code in (200, 302, 404), (url, body, response.status_code)


API = [
    ("/api/budgets/invoices/", ["budget_line", "invoice_number", "invoice_date", "amount_pence"]),
    ("/api/budgets/payment-runs/", ["run_date"]),
    ("/api/budgets/invoices/{invoice}/approve/", []),
    ("/api/budgets/payment-runs/{run}/approve/", []),
    ("/api/budgets/payment-runs/{run}/pay/", []),
]


@FUZZ
@given(data=st.data())
def test_budget_api_never_fails_with_random_json(client, money, data):
    client.force_login(data.draw(st.sampled_from([money["finance"], money["manager"]])))
    ids = {"invoice": data.draw(st.integers(min_value=0, max_value=10**6)), "run": money["run"].pk}
    for template, names in API:
        body = {name: data.draw(JSON_VALUES) for name in names}
        extra = data.draw(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3))
        key = data.draw(st.none() | st.text(alphabet="abcdef0123456789-", min_size=1, max_size=40))
        response = client.post(
            template.format(**ids),
            {**extra, **body},
            content_type="application/json",
            headers={"Idempotency-Key": key} if key else {},
        )
        assert response.status_code < 500, (template, body, response.content[:300])
    raw = client.post("/api/budgets/invoices/", data.draw(st.binary(max_size=50)), content_type="application/json")
    assert raw.status_code == 400
