"""The ledger's REST API and finance pages: finance only, idempotent POSTs, clear 4xx errors."""

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from accounts.roles import Role
from ledger.models import Account, AccountKind, Transfer
from tests.factories import user_with_role
from tests.ledger.helpers import DAY, open_account, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def chart():
    funding = open_account("api:funding", AccountKind.EQUITY)
    cash = open_account("api:cash", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend = open_account("api:spend", AccountKind.EXPENSE)
    post(cash, funding, 10_000, "allocation")
    return funding, cash, spend


@pytest.fixture
def finance_client(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    return client


def create(client, body, key="api-key-1"):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/api/ledger/transfers/", body, content_type="application/json", headers=headers)


def test_post_a_transfer_then_replay_it(finance_client, chart):
    funding, cash, spend = chart
    body = {
        "debit_account": spend.pk,
        "credit_account": cash.pk,
        "amount": 2_500,
        "code": "dp_spend",
        "effective_date": "2026-10-02",
        "reference": "plan-line:4",
    }
    first = create(finance_client, body)
    assert first.status_code == 201 and first["Idempotent-Replayed"] == "false"
    again = create(finance_client, body)
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Account.objects.get(pk=cash.pk).posted_balance == 7_500

    conflict = create(finance_client, {**body, "amount": 2_501})
    assert conflict.status_code == 409
    assert "already used for a different transfer" in conflict.json()["detail"]


@pytest.mark.parametrize(
    ("body", "key", "status", "reason"),
    [
        ({"amount": 100, "code": "x"}, None, 400, "Idempotency-Key"),
        ({"amount": 0, "code": "x"}, "k0", 400, "amount"),
        ({"amount": "lots", "code": "x"}, "k1", 400, "amount"),
        ({"amount": 100, "code": "Not A Code"}, "k2", 400, "code"),
        ({"amount": 50_000, "code": "dp_spend"}, "k3", 422, "does not have enough money"),
        # Found by schemathesis: an account id beyond a bigint answered 500.
        ({"debit_account": 2**63, "amount": 100, "code": "x", "pending": True}, "k4", 400, "debit_account"),
    ],
)
def test_bad_requests_get_a_reason(finance_client, chart, body, key, status, reason):
    funding, cash, spend = chart
    response = create(finance_client, {"debit_account": spend.pk, "credit_account": cash.pk, **body}, key=key)
    assert response.status_code == status
    assert reason in response.content.decode()


def test_pending_post_void_and_reverse_through_the_api(finance_client, chart):
    funding, cash, spend = chart
    body = {
        "debit_account": spend.pk,
        "credit_account": cash.pk,
        "amount": 1_000,
        "code": "commitment",
        "pending": True,
        "timeout_seconds": 3600,
    }
    pending = create(finance_client, body, key="hold-1").json()
    assert pending["phase"] == "pending"
    posted = finance_client.post(
        f"/api/ledger/transfers/{pending['id']}/post/",
        {"amount": 600},
        content_type="application/json",
        headers={"Idempotency-Key": "hold-1-post"},
    )
    assert posted.status_code == 201 and posted.json()["amount"] == 600
    twice = finance_client.post(
        f"/api/ledger/transfers/{pending['id']}/void/",
        {},
        content_type="application/json",
        headers={"Idempotency-Key": "hold-1-void"},
    )
    assert twice.status_code == 409
    reversed_ = finance_client.post(
        f"/api/ledger/transfers/{posted.json()['id']}/reverse/",
        {},
        content_type="application/json",
        headers={"Idempotency-Key": "undo-1"},
    )
    assert reversed_.status_code == 201
    assert Account.objects.get(pk=cash.pk).posted_balance == 10_000


def test_statement_and_trial_balance_endpoints(finance_client, chart):
    funding, cash, spend = chart
    post(spend, cash, 300, effective_date=DAY + datetime.timedelta(days=1))
    statement = finance_client.get(f"/api/ledger/accounts/{cash.pk}/statement/?start=2026-10-01&end=2026-10-31")
    data = statement.json()
    assert (data["opening_balance"], data["closing_balance"], data["count"]) == (0, 9_700, 2)
    assert [line["balance"] for line in data["lines"]] == [10_000, 9_700]
    balance = finance_client.get("/api/ledger/trial-balance/").json()
    assert balance["total_debit"] == balance["total_credit"] == 10_000
    bad = finance_client.get(f"/api/ledger/accounts/{cash.pk}/statement/?start=2026-10-31&end=2026-10-01")
    assert bad.status_code == 400 and "end date" in bad.content.decode()


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_BROKER, Role.ICB_APPROVER, Role.THIRD_PARTY_STAFF])
def test_people_outside_finance_cannot_see_or_move_money(client, chart, role):
    funding, cash, spend = chart
    client.force_login(user_with_role(role))
    assert client.get("/api/ledger/accounts/").status_code == 403
    assert (
        create(client, {"debit_account": spend.pk, "credit_account": cash.pk, "amount": 1, "code": "x"}).status_code
        == 403
    )
    assert client.get(reverse("ledger:accounts")).status_code == 404
    assert client.get(reverse("ledger:account-statement", kwargs={"pk": cash.pk})).status_code == 404
    assert client.get(reverse("ledger:trial-balance-csv")).status_code == 404
    assert Transfer.objects.count() == 1


def test_auditors_read_but_cannot_post(client, chart):
    funding, cash, spend = chart
    client.force_login(user_with_role(Role.AUDITOR))
    assert client.get("/api/ledger/accounts/").status_code == 200
    assert (
        create(client, {"debit_account": spend.pk, "credit_account": cash.pk, "amount": 1, "code": "x"}).status_code
        == 403
    )


def test_finance_pages_show_balances_statement_and_a_csv_that_balances(finance_client, chart):
    funding, cash, spend = chart
    post(spend, cash, 1_234, "dp_spend", description="=cmd|' /C calc'!A0")
    page = finance_client.get(reverse("ledger:accounts")).content.decode()
    assert "api:cash" in page and "£87.66" in page
    statement = finance_client.get(
        reverse("ledger:account-statement", kwargs={"pk": cash.pk}), {"start": "2026-10-01", "end": "2026-10-31"}
    ).content.decode()
    assert "£100.00" in statement and "£87.66" in statement
    csv_response = finance_client.get(reverse("ledger:trial-balance-csv"))
    text = csv_response.content.decode("utf-8")
    assert text.startswith("\ufeff") and csv_response["Content-Type"].startswith("text/csv")
    assert text.strip().splitlines()[-1] == "TOTAL,,,100.00,100.00"  # pounds, as every export
    bad = finance_client.get(reverse("ledger:trial-balance"), {"as_at": "31/13/2026"}).content.decode()
    assert "Enter a real date" in bad and "nhsuk-error-summary" in bad


def test_ledger_verify_passes_then_finds_drift(chart, capsys):
    call_command("ledger_verify", "--no-progress")
    assert "no drift" in capsys.readouterr().out
    funding, cash, spend = chart
    with connection.cursor() as cursor:  # simulate corruption by bypassing the guard deliberately
        cursor.execute("SELECT set_config('ledger.applying', 'on', true)")
        cursor.execute("UPDATE ledger_account SET debits_posted = debits_posted + 1 WHERE id = %s", [cash.pk])
    # From a shell this is exit status 1: Django turns CommandError into it.
    with pytest.raises(CommandError, match="drift found on 1 counters"):
        call_command("ledger_verify", "--no-progress")
    assert "DRIFT api:cash debits_posted" in capsys.readouterr().out
