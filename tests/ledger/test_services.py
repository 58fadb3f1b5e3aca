"""Ledger services: idempotency, two-phase transfers, reversals, linked groups, periods, and reads."""

import datetime

import pytest
import time_machine
from django.db.models import Q

from ledger import exceptions as errors
from ledger import selectors, services
from ledger.models import Account, AccountKind, Phase, Transfer
from ledger.services import TransferRequest
from tests.factories import UserFactory
from tests.ledger.helpers import DAY, balances, open_account, post, reserve

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts():
    funding = open_account("x:funding", AccountKind.EQUITY)
    cash = open_account("x:cash", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend = open_account("x:spend", AccountKind.EXPENSE)
    post(cash, funding, 10_000, "allocation")
    return funding, cash, spend


def test_replaying_a_key_returns_the_original_and_moves_nothing(accounts):
    funding, cash, spend = accounts
    first = services.transfer_post(
        key="pay-1",
        debit_account_id=spend.pk,
        credit_account_id=cash.pk,
        amount=700,
        code="dp_spend",
        effective_date=DAY,
    )
    again = services.transfer_post(
        key="pay-1",
        debit_account_id=spend.pk,
        credit_account_id=cash.pk,
        amount=700,
        code="dp_spend",
        effective_date=DAY,
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.transfer.pk == first.transfer.pk
    assert balances(cash, spend) == [9_300, 700]
    assert Transfer.objects.filter(idempotency_key="pay-1").count() == 1


@pytest.mark.parametrize(
    "change", [{"amount": 701}, {"code": "other"}, {"effective_date": DAY.replace(day=2)}, {"reference": "plan-line:9"}]
)
def test_the_same_key_with_a_different_payload_is_refused(accounts, change):
    funding, cash, spend = accounts
    request = {
        "key": "pay-2",
        "debit_account_id": spend.pk,
        "credit_account_id": cash.pk,
        "amount": 700,
        "code": "dp_spend",
        "effective_date": DAY,
    }
    services.transfer_post(**request)
    with pytest.raises(errors.IdempotencyConflict, match="already used for a different transfer"):
        services.transfer_post(**{**request, **change})
    assert balances(cash) == [9_300]


@pytest.mark.parametrize(
    ("amount", "message"), [(0, "between 1p"), (-5, "between 1p"), (10**13, "between 1p"), (1.5, "whole number")]
)
def test_bad_amounts_are_refused_with_a_reason(accounts, amount, message):
    funding, cash, spend = accounts
    with pytest.raises(errors.InvalidTransfer, match=message):
        post(spend, cash, amount)


def test_same_account_on_both_sides_and_unknown_accounts_are_refused(accounts):
    funding, cash, spend = accounts
    with pytest.raises(errors.InvalidTransfer, match="two different accounts"):
        post(cash, cash, 100)
    with pytest.raises(errors.AccountNotFound):
        services.transfer_post(
            key="ghost", debit_account_id=999_999, credit_account_id=cash.pk, amount=1, code="x", effective_date=DAY
        )
    with pytest.raises(errors.InvalidTransfer, match="too large"):  # beyond a bigint: refused, not a crash
        services.transfer_post(
            key="huge", debit_account_id=2**63, credit_account_id=cash.pk, amount=1, code="x", effective_date=DAY
        )


def test_partial_post_releases_the_rest_and_void_releases_all(accounts):
    funding, cash, spend = accounts
    order = reserve(spend, cash, 4_000)
    assert Account.objects.get(pk=cash.pk).available_balance == 6_000
    services.pending_post(key="post-1", pending=order, amount=2_500)
    cash.refresh_from_db()
    assert (cash.posted_balance, cash.credits_pending, cash.available_balance) == (7_500, 0, 7_500)

    second = reserve(spend, cash, 1_000)
    services.pending_void(key="void-1", pending=second)
    cash.refresh_from_db()
    assert (cash.posted_balance, cash.credits_pending) == (7_500, 0)
    with pytest.raises(errors.PendingAlreadyResolved):
        services.pending_post(key="post-2", pending=second)


def test_posting_more_than_was_reserved_is_refused(accounts):
    funding, cash, spend = accounts
    order = reserve(spend, cash, 1_000)
    with pytest.raises(errors.PendingInvalid, match="exceeds the pending 1000"):
        services.pending_post(key="post-big", pending=order, amount=1_001)


def test_pending_transfers_expire_after_their_timeout_exactly_once(accounts):
    funding, cash, spend = accounts
    with time_machine.travel(datetime.datetime(2026, 10, 1, 9, 0, tzinfo=datetime.UTC), tick=False):
        order = services.transfer_reserve(
            key="hold-1",
            debit_account_id=spend.pk,
            credit_account_id=cash.pk,
            amount=3_000,
            code="commitment",
            effective_date=DAY,
            timeout=datetime.timedelta(hours=1),
        ).transfer
        assert services.pending_expire_due() == 0  # not yet
    with time_machine.travel(datetime.datetime(2026, 10, 1, 10, 1, tzinfo=datetime.UTC), tick=False):
        with pytest.raises(errors.PendingInvalid, match="expired"):
            services.pending_post(key="too-late", pending=order)
        assert services.pending_expire_due() == 1
        assert services.pending_expire_due() == 0  # running the job twice changes nothing
    cash.refresh_from_db()
    assert (cash.credits_pending, cash.available_balance) == (0, 10_000)
    assert Transfer.objects.get(pending=order).phase == Phase.EXPIRE_PENDING


def test_reversal_mirrors_the_original_once_and_never_edits_it(accounts):
    funding, cash, spend = accounts
    original = post(spend, cash, 1_234, "dp_spend")
    reversal = services.transfer_reverse(key="rev-1", transfer=original).transfer
    assert (reversal.debit_account_id, reversal.credit_account_id, reversal.amount) == (cash.pk, spend.pk, 1_234)
    assert balances(cash, spend) == [10_000, 0]
    assert Transfer.objects.get(pk=original.pk).amount == 1_234  # untouched
    with pytest.raises(errors.ReversalInvalid, match="already been reversed"):
        services.transfer_reverse(key="rev-2", transfer=original)
    assert services.transfer_reverse(key="rev-1", transfer=original).replayed


def test_linked_transfers_post_all_or_none(accounts):
    funding, cash, spend = accounts
    other = open_account("x:other", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    good = TransferRequest(
        key="grp-1",
        debit_account_id=other.pk,
        credit_account_id=cash.pk,
        amount=5_000,
        code="split",
        effective_date=DAY,
    )
    too_much = TransferRequest(
        key="grp-2",
        debit_account_id=spend.pk,
        credit_account_id=other.pk,
        amount=9_000,
        code="split",
        effective_date=DAY,
    )
    with pytest.raises(errors.InsufficientFunds, match="x:other"):
        services.transfers_record([good, too_much])
    assert not Transfer.objects.filter(idempotency_key__in=["grp-1", "grp-2"]).exists()
    assert balances(cash, other) == [10_000, 0]

    fine = TransferRequest(**{**too_much.__dict__, "amount": 4_000})
    results = services.transfers_record([good, fine])
    assert len({r.transfer.group_key for r in results}) == 1
    assert balances(cash, other, spend) == [5_000, 1_000, 4_000]


def test_closed_period_refuses_transfers_dated_inside_it(accounts):
    funding, cash, spend = accounts
    manager = UserFactory()
    services.period_close(month=datetime.date(2026, 9, 1), acting_user=manager)
    with pytest.raises(errors.PeriodClosed, match="2026-09-30"):
        post(spend, cash, 100, effective_date=datetime.date(2026, 9, 30))
    post(spend, cash, 100, effective_date=datetime.date(2026, 10, 1))  # the next month is open
    with pytest.raises(errors.PeriodAlreadyClosed):
        services.period_close(month=datetime.date(2026, 9, 15), acting_user=manager)


def test_a_month_can_be_closed_only_once_it_has_ended(accounts, time_machine):
    """Closing the running month would refuse everything dated today: purchases, instalments, card payments."""
    manager = UserFactory()
    time_machine.move_to(datetime.datetime(2026, 11, 30, 23, 0), tick=False)  # 11 pm on 30 November, London
    with pytest.raises(errors.PeriodNotEnded, match="November 2026 has not ended: it can be closed from 1 December"):
        services.period_close(month=datetime.date(2026, 11, 1), acting_user=manager)
    time_machine.move_to(datetime.datetime(2026, 12, 1, 0, 30), tick=False)
    assert services.period_close(month=datetime.date(2026, 11, 1), acting_user=manager).month.month == 11


def test_closed_accounts_and_other_currencies_are_refused(accounts):
    funding, cash, spend = accounts
    euros = open_account("x:eur", AccountKind.ASSET, currency="EUR")
    with pytest.raises(errors.CurrencyMismatch, match="EUR"):
        post(euros, funding, 100)
    services.account_close(account=spend)
    with pytest.raises(errors.AccountClosed, match="x:spend"):
        post(spend, cash, 100)


def test_statement_running_balance_pages_and_date_ranges(accounts):
    funding, cash, spend = accounts
    for day in range(1, 11):
        post(spend, cash, 100 * day, "dp_spend", effective_date=datetime.date(2026, 11, day))
    statement = selectors.account_statement(
        account=cash, start=datetime.date(2026, 11, 3), end=datetime.date(2026, 11, 8), page=2, page_size=4
    )
    spent_before = 100 + 200
    assert statement.opening_balance == 10_000 - spent_before
    assert statement.line_count == 6 and statement.page_count == 2
    assert [line.credit for line in statement.lines] == [700, 800]
    assert statement.lines[-1].balance == statement.closing_balance == 10_000 - sum(100 * d for d in range(1, 9))


def test_trial_balance_as_at_a_date_matches_history_and_balances(accounts):
    funding, cash, spend = accounts
    post(spend, cash, 2_500, effective_date=datetime.date(2026, 12, 5))
    before = selectors.trial_balance(as_at=datetime.date(2026, 11, 30))
    now = selectors.trial_balance()
    assert before.balances and now.balances
    spend_rows = {row.account.code: row.debit for row in now.rows}
    assert spend_rows["x:spend"] == 2_500
    assert "x:spend" not in {row.account.code for row in before.rows}


def test_balances_by_owner_come_from_the_counters(django_assert_num_queries):
    a = services.account_open(code="budget:9:cash", name="Cash", kind=AccountKind.ASSET, owner_ref="budget:9")
    services.account_open(code="budget:9:spend", name="Spend", kind=AccountKind.EXPENSE, owner_ref="budget:9")
    services.account_open(code="budget:10:cash", name="Cash", kind=AccountKind.ASSET, owner_ref="budget:10")
    with django_assert_num_queries(1):
        owned = selectors.balances_by_owner(owner_ref="budget:9")
    assert set(owned) == {"budget:9:cash", "budget:9:spend"} and owned["budget:9:cash"].pk == a.pk


def test_transfers_record_the_acting_user(accounts):
    funding, cash, spend = accounts
    officer = UserFactory()
    transfer = post(spend, cash, 10, acting_user=officer)
    assert Transfer.objects.get(pk=transfer.pk).acting_user_id == officer.pk
    assert Transfer.objects.filter(Q(acting_user=officer)).count() == 1


class _FakeDatabaseError(Exception):
    def __init__(self, sqlstate):
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("sqlstate", "calls"), [("40P01", 3), ("40001", 3)])
def test_deadlocks_and_serialization_failures_are_retried_a_bounded_number_of_times(sqlstate, calls, monkeypatch):
    monkeypatch.setattr(services, "_owns_transaction", lambda: True)
    monkeypatch.setattr(services.time, "sleep", lambda seconds: None)
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < calls:
            raise errors.LedgerError("busy") from _FakeDatabaseError(sqlstate)
        return "done"

    assert services._with_retries(flaky) == "done"
    assert len(attempts) == calls

    attempts.clear()

    def always_busy():
        attempts.append(1)
        raise errors.LedgerError("busy") from _FakeDatabaseError(sqlstate)

    with pytest.raises(errors.LedgerError):
        services._with_retries(always_busy)
    assert len(attempts) == services.MAX_RETRIES


def test_other_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(services, "_owns_transaction", lambda: True)
    attempts = []

    def refused():
        attempts.append(1)
        raise errors.InsufficientFunds("no") from _FakeDatabaseError("23514")

    with pytest.raises(errors.InsufficientFunds):
        services._with_retries(refused)
    assert attempts == [1]
