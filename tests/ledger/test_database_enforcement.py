"""PostgreSQL itself refuses every violation, even from raw SQL that bypasses our services."""

import pytest
from django.db import DatabaseError, connection, transaction

from ledger.models import Account, AccountKind
from tests.ledger.helpers import DAY, open_account, post, reserve

pytestmark = [pytest.mark.django_db, pytest.mark.dblevel]

INSERT = (
    "INSERT INTO ledger_transfer (idempotency_key, phase, debit_account_id, credit_account_id, amount, currency, "
    "code, reference, description, effective_date, recorded_at, pending_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, 'raw', '', '', %s, now(), %s)"
)


@pytest.fixture
def chart():
    funding = open_account("raw:funding", AccountKind.EQUITY)
    cash = open_account("raw:cash", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend = open_account("raw:spend", AccountKind.EXPENSE)
    post(cash, funding, 1_000, "allocation")
    return funding, cash, spend


def refused(sql: str, params=(), match: str = ""):
    with pytest.raises(DatabaseError, match=match), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred foreign keys are checked now too


def test_transfers_cannot_be_updated_or_deleted(chart):
    funding, cash, spend = chart
    refused("UPDATE ledger_transfer SET amount = 1", match="Cannot update or delete")
    refused("DELETE FROM ledger_transfer", match="Cannot update or delete")


def test_amount_must_be_positive(chart):
    funding, cash, spend = chart
    refused(INSERT, ["r1", "posted", spend.pk, cash.pk, 0, "GBP", DAY, None], match="transfer_amount_positive")
    refused(INSERT, ["r2", "posted", spend.pk, cash.pk, -10, "GBP", DAY, None], match="transfer_amount_positive")


def test_debit_and_credit_accounts_must_differ(chart):
    funding, cash, spend = chart
    refused(INSERT, ["r3", "posted", cash.pk, cash.pk, 10, "GBP", DAY, None], match="transfer_distinct_accounts")


def test_currency_must_match_both_accounts(chart):
    funding, cash, spend = chart
    refused(INSERT, ["r4", "posted", spend.pk, cash.pk, 10, "EUR", DAY, None], match="is in EUR")


def test_no_overdraft_flag_is_a_check_constraint_on_the_counters(chart):
    funding, cash, spend = chart
    refused(INSERT, ["r5", "posted", spend.pk, cash.pk, 1_001, "GBP", DAY, None], match="account_credits_within_debits")
    refused("UPDATE ledger_account SET credits_posted = 5000 WHERE code = 'raw:cash'", match="change only through")


def test_transfer_ids_are_unique(chart):
    funding, cash, spend = chart
    post(spend, cash, 10, key="dup-1")
    refused(INSERT, ["dup-1", "posted", spend.pk, cash.pk, 10, "GBP", DAY, None], match="idempotency_key")


def test_a_pending_transfer_resolves_only_once(chart):
    funding, cash, spend = chart
    pending = reserve(spend, cash, 100)
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["res-1", "void_pending", spend.pk, cash.pk, 100, "GBP", DAY, pending.pk])
    refused(
        INSERT,
        ["res-2", "post_pending", spend.pk, cash.pk, 100, "GBP", DAY, pending.pk],
        match="transfer_pending_resolved_once",
    )


def test_closed_periods_refuse_raw_inserts(chart, django_user_model):
    funding, cash, spend = chart
    user = django_user_model.objects.create_user("closer@example.org", "x", full_name="Closer")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_closedperiod (month, closed_at, closed_by_id) VALUES (%s, now(), %s)", [DAY, user.pk]
        )
    refused(INSERT, ["r6", "posted", spend.pk, cash.pk, 10, "GBP", DAY, None], match="closed period")
    refused("DELETE FROM ledger_closedperiod", match="Cannot update or delete")


def test_unknown_accounts_are_refused(chart):
    funding, cash, spend = chart
    refused(INSERT, ["r7", "posted", 987_654, cash.pk, 10, "GBP", DAY, None], match="does not exist")


def test_accounts_cannot_be_deleted_or_change_identity(chart):
    funding, cash, spend = chart
    refused("DELETE FROM ledger_account WHERE code = 'raw:spend'", match="Cannot delete")
    refused("UPDATE ledger_account SET currency = 'EUR' WHERE code = 'raw:spend'", match="Cannot update")
    refused(
        "INSERT INTO ledger_account (code, name, kind, currency, owner_ref, debits_must_not_exceed_credits, "
        "credits_must_not_exceed_debits, closed, debits_pending, debits_posted, credits_pending, credits_posted, "
        "created_at) VALUES ('raw:rich', 'x', 'asset', 'GBP', '', false, false, false, 0, 1000000, 0, 0, now())",
        match="starts with zero balances",
    )


def test_a_raw_insert_still_updates_the_counters(chart):
    funding, cash, spend = chart
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["raw-ok", "posted", spend.pk, cash.pk, 250, "GBP", DAY, None])
    assert Account.objects.get(pk=cash.pk).posted_balance == 750
    assert Account.objects.get(pk=spend.pk).posted_balance == 250
