"""Reads from the ledger. Current balances come from the account counters (O(1)); statements and balances
as at a past date re-sum history with the (account, effective_date) indexes."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator

from django.db import connection
from django.db.models import QuerySet

from ledger.models import DEBIT_NORMAL_KINDS, MOVED_BY_OWNER_PREFIX, Account, ClosedPeriod, Transfer

POSTED_PHASES = ("posted", "post_pending")


def first_open_day(day: datetime.date) -> datetime.date:
    """`day` itself when its month is open, else the first day of the next month not closed: where money that
    moved in a month finance has since closed is posted (the record keeps the day it really moved)."""
    closed = set(ClosedPeriod.objects.filter(month__gte=day.replace(day=1)).values_list("month", flat=True))
    month = day.replace(day=1)
    if month not in closed:
        return day
    while month in closed:
        month = (month + datetime.timedelta(days=32)).replace(day=1)
    return month


def accounts_list(*, owner_ref: str | None = None, search: str | None = None) -> QuerySet[Account]:
    accounts = Account.objects.all()
    if owner_ref:
        accounts = accounts.filter(owner_ref=owner_ref)
    if search:
        accounts = accounts.filter(code__icontains=search) | accounts.filter(name__icontains=search)
    return accounts.order_by("code")


def accounts_postable_by_hand() -> QuerySet[Account]:
    """Open accounts a person may name in a transfer posted by hand: not those only their owner's app moves."""
    return Account.objects.filter(closed=False).exclude(owner_ref__startswith=MOVED_BY_OWNER_PREFIX)


def balances_by_owner(*, owner_ref: str) -> dict[str, Account]:
    """Every account an owner (for example `budget:42`) has, keyed by code, with its counters."""
    return {account.code: account for account in Account.objects.filter(owner_ref=owner_ref)}


def transfer_get(*, pk: int) -> Transfer:
    return Transfer.objects.select_related("debit_account", "credit_account").get(pk=pk)


@dataclasses.dataclass(frozen=True)
class StatementLine:
    transfer_id: int
    effective_date: datetime.date
    key: str
    code: str
    reference: str
    description: str
    debit: int
    credit: int
    balance: int


@dataclasses.dataclass(frozen=True)
class Statement:
    account: Account
    start: datetime.date
    end: datetime.date
    opening_balance: int
    closing_balance: int
    lines: list[StatementLine]
    line_count: int
    page: int
    page_size: int

    @property
    def page_count(self) -> int:
        return max(1, -(-self.line_count // self.page_size))


def _signed(account: Account) -> str:
    """SQL for a movement's effect on the account's balance, its normal side positive."""
    return "(debit - credit)" if account.kind in DEBIT_NORMAL_KINDS else "(credit - debit)"


_MOVES_SQL = """
    SELECT id, effective_date, idempotency_key, code, reference, description, amount AS debit, 0::bigint AS credit
      FROM ledger_transfer WHERE debit_account_id = %(account)s AND phase IN ('posted', 'post_pending')
    UNION ALL
    SELECT id, effective_date, idempotency_key, code, reference, description, 0::bigint, amount
      FROM ledger_transfer WHERE credit_account_id = %(account)s AND phase IN ('posted', 'post_pending')
"""


def account_statement(
    *, account: Account, start: datetime.date, end: datetime.date, page: int = 1, page_size: int = 50
) -> Statement:
    """Posted movements between two dates, oldest first, each with the running balance after it."""
    signed = _signed(account)
    params = {"account": account.pk, "start": start, "end": end, "limit": page_size, "offset": (page - 1) * page_size}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(sum({signed}) FILTER (WHERE effective_date < %(start)s), 0), "
            f"COALESCE(sum({signed}) FILTER (WHERE effective_date >= %(start)s), 0), "
            "count(*) FILTER (WHERE effective_date >= %(start)s) "
            f"FROM ({_MOVES_SQL}) moves WHERE effective_date <= %(end)s",
            params,
        )
        opening, movement, line_count = cursor.fetchone()
        cursor.execute(
            "SELECT id, effective_date, idempotency_key, code, reference, description, debit, credit, "
            f"%(opening)s + sum({signed}) OVER (ORDER BY effective_date, id) AS balance "
            f"FROM ({_MOVES_SQL}) moves WHERE effective_date BETWEEN %(start)s AND %(end)s "
            "ORDER BY effective_date, id LIMIT %(limit)s OFFSET %(offset)s",
            {**params, "opening": opening},
        )
        lines = [StatementLine(*row) for row in cursor.fetchall()]
    return Statement(
        account=account,
        start=start,
        end=end,
        opening_balance=int(opening),
        closing_balance=int(opening + movement),
        lines=lines,
        line_count=line_count,
        page=page,
        page_size=page_size,
    )


@dataclasses.dataclass(frozen=True)
class TrialBalanceRow:
    account: Account
    debit: int  # net debit balance, or 0
    credit: int  # net credit balance, or 0


@dataclasses.dataclass(frozen=True)
class TrialBalance:
    as_at: datetime.date | None
    rows: list[TrialBalanceRow]

    @property
    def total_debit(self) -> int:
        return sum(row.debit for row in self.rows)

    @property
    def total_credit(self) -> int:
        return sum(row.credit for row in self.rows)

    @property
    def balances(self) -> bool:
        return self.total_debit == self.total_credit


def trial_balance(*, as_at: datetime.date | None = None) -> TrialBalance:
    """Net posted balance of every account with activity. Without a date: now, from the counters."""
    accounts = {account.pk: account for account in Account.objects.order_by("code")}
    if as_at is None:
        sums = {pk: (a.debits_posted, a.credits_posted) for pk, a in accounts.items()}
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT account_id, sum(debit)::bigint, sum(credit)::bigint FROM (
                  SELECT debit_account_id AS account_id, amount AS debit, 0 AS credit FROM ledger_transfer
                   WHERE phase IN ('posted', 'post_pending') AND effective_date <= %(as_at)s
                  UNION ALL
                  SELECT credit_account_id, 0, amount FROM ledger_transfer
                   WHERE phase IN ('posted', 'post_pending') AND effective_date <= %(as_at)s
                ) moves GROUP BY account_id
                """,
                {"as_at": as_at},
            )
            sums = {pk: (debit, credit) for pk, debit, credit in cursor.fetchall()}
    rows = []
    for pk, account in accounts.items():
        debit, credit = sums.get(pk, (0, 0))
        if debit == 0 and credit == 0:
            continue
        net = debit - credit
        rows.append(TrialBalanceRow(account=account, debit=max(net, 0), credit=max(-net, 0)))
    return TrialBalance(as_at=as_at, rows=rows)


# --- exports (issue 8) ---------------------------------------------------------------------------------------------


def account_statement_lines(
    *, account: Account, start: datetime.date, end: datetime.date
) -> tuple[int, Iterator[StatementLine]]:
    """The opening balance and every line of a statement (not one page), with the same running balance as
    `account_statement`. The lines come through a server-side cursor, so a long export never holds them all."""
    signed = _signed(account)
    params = {"account": account.pk, "start": start, "end": end}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(sum({signed}), 0) FROM ({_MOVES_SQL}) moves WHERE effective_date < %(start)s", params
        )
        opening = int(cursor.fetchone()[0])

    def lines() -> Iterator[StatementLine]:
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                "SELECT id, effective_date, idempotency_key, code, reference, description, debit, credit, "
                f"%(opening)s + sum({signed}) OVER (ORDER BY effective_date, id) AS balance "
                f"FROM ({_MOVES_SQL}) moves WHERE effective_date BETWEEN %(start)s AND %(end)s "
                "ORDER BY effective_date, id",
                {**params, "opening": opening},
            )
            while rows := cursor.fetchmany(2_000):
                yield from (StatementLine(*row) for row in rows)

    return opening, lines()


def transfers_between(*, start: datetime.date, end: datetime.date) -> QuerySet:
    """Every transfer dated between two dates, in any phase, oldest first, as flat rows for an export."""
    return (
        Transfer.objects.filter(effective_date__range=(start, end))
        .order_by("effective_date", "id")
        .values_list(
            "id",
            "effective_date",
            "code",
            "debit_account__code",
            "credit_account__code",
            "amount",
            "reference",
            "description",
            "phase",
        )
    )
