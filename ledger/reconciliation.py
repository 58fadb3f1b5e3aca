"""The reconciliation report per cash account and date, and closing a month once every cash account reconciles.

At a date D, matched pairs dated on or before D cancel out, so

    statement balance - ledger balance = opening difference + Σ statement-only items - Σ ledger-only items

where a statement-only item is a line dated ≤ D not matched to transfers dated ≤ D, and a ledger-only item is a
transfer on the account dated ≤ D (from `reconcile_from`) not matched to a line dated ≤ D. The report lists both
with their age, so every penny of any difference is explained line by line.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime

from django.db import connection, transaction
from django.db.models import Sum

from ledger import services
from ledger.exceptions import LedgerError
from ledger.models import CashAccount, ClosedPeriod, StatementLine


class NotReconciled(LedgerError):
    pass


@dataclasses.dataclass(frozen=True)
class Item:
    kind: str  # "line" or "transfer"
    id: int
    date: datetime.date
    amount: int  # signed, as on the statement
    description: str
    age_days: int


@dataclasses.dataclass
class Report:
    cash_account: CashAccount
    as_at: datetime.date
    statement_balance: int
    ledger_balance: int
    opening_difference: int
    statement_only: list[Item]
    ledger_only: list[Item]
    bank_stated_balance: int | None = None

    @property
    def difference(self) -> int:
        return self.statement_balance - self.ledger_balance

    @property
    def explained(self) -> int:
        return (
            self.opening_difference
            + sum(item.amount for item in self.statement_only)
            - sum(item.amount for item in self.ledger_only)
        )

    @property
    def reconciled(self) -> bool:
        return not self.statement_only and not self.ledger_only and self.difference == 0


_LEDGER_BALANCE_SQL = """
SELECT coalesce(sum(CASE WHEN debit_account_id = %(account)s THEN amount ELSE -amount END), 0)
  FROM ledger_transfer
 WHERE (debit_account_id = %(account)s OR credit_account_id = %(account)s)
   AND phase IN ('posted', 'post_pending') AND effective_date <= %(end)s
"""

# A transfer and its reversal that the statement never showed (a Stripe payout that failed before reaching the
# bank, say) cancel out: both dated in the window and neither matched, neither is listed.
_LEDGER_ONLY_SQL = """
SELECT t.id, t.effective_date, CASE WHEN t.debit_account_id = %(account)s THEN t.amount ELSE -t.amount END,
       coalesce(nullif(t.description, ''), t.reference, t.code)
  FROM ledger_transfer t
 WHERE (t.debit_account_id = %(account)s OR t.credit_account_id = %(account)s)
   AND t.phase IN ('posted', 'post_pending') AND t.effective_date BETWEEN %(start)s AND %(end)s
   AND NOT EXISTS (
       SELECT 1 FROM ledger_matchedtransfer mt
         JOIN ledger_match m ON m.id = mt.match_id
         JOIN ledger_statementline l ON l.id = m.line_id
        WHERE mt.transfer_id = t.id AND mt.cash_account_id = %(cash)s AND mt.active AND l.date <= %(end)s)
   AND NOT EXISTS (
       SELECT 1 FROM ledger_transfer r
        WHERE (r.reverses_id = t.id OR r.id = t.reverses_id)
          AND r.phase IN ('posted', 'post_pending') AND r.effective_date BETWEEN %(start)s AND %(end)s
          AND NOT EXISTS (
              SELECT 1 FROM ledger_matchedtransfer rmt
                JOIN ledger_match rm ON rm.id = rmt.match_id
                JOIN ledger_statementline rl ON rl.id = rm.line_id
               WHERE rmt.transfer_id = r.id AND rmt.cash_account_id = %(cash)s AND rmt.active
                 AND rl.date <= %(end)s))
 ORDER BY t.effective_date, t.id
"""

_STATEMENT_ONLY_SQL = """
SELECT l.id, l.date, l.amount, l.description
  FROM ledger_statementline l
 WHERE l.cash_account_id = %(cash)s AND l.date BETWEEN %(start)s AND %(end)s
   AND NOT EXISTS (
       SELECT 1 FROM ledger_match m
         JOIN ledger_matchedtransfer mt ON mt.match_id = m.id AND mt.active
         JOIN ledger_transfer t ON t.id = mt.transfer_id
        WHERE m.line_id = l.id AND m.active
       HAVING max(t.effective_date) <= %(end)s)
 ORDER BY l.date, l.id
"""


def _ledger_balance(cash_account: CashAccount, end: datetime.date) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_LEDGER_BALANCE_SQL, {"account": cash_account.account_id, "end": end})
        return int(cursor.fetchone()[0])


def report(cash_account: CashAccount, as_at: datetime.date) -> Report:
    start = cash_account.reconcile_from
    lines = StatementLine.objects.filter(cash_account=cash_account, date__gte=start, date__lte=as_at)
    statement_balance = cash_account.opening_balance + (lines.aggregate(total=Sum("amount"))["total"] or 0)
    last_stated = lines.exclude(running_balance=None).order_by("-date", "-id").values_list("running_balance").first()
    opening_ledger = _ledger_balance(cash_account, start - datetime.timedelta(days=1))
    params = {"account": cash_account.account_id, "cash": cash_account.pk, "start": start, "end": as_at}
    with connection.cursor() as cursor:
        cursor.execute(_STATEMENT_ONLY_SQL, params)
        statement_only = [Item("line", i, d, a, text, (as_at - d).days) for i, d, a, text in cursor.fetchall()]
        cursor.execute(_LEDGER_ONLY_SQL, params)
        ledger_only = [Item("transfer", i, d, a, text, (as_at - d).days) for i, d, a, text in cursor.fetchall()]
    return Report(
        cash_account=cash_account,
        as_at=as_at,
        statement_balance=statement_balance,
        ledger_balance=_ledger_balance(cash_account, as_at),
        opening_difference=cash_account.opening_balance - opening_ledger,
        statement_only=statement_only,
        ledger_only=ledger_only,
        bank_stated_balance=last_stated[0] if last_stated else None,
    )


def month_end(month: datetime.date) -> datetime.date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def close_checklist(month: datetime.date) -> list[Report]:
    """One report per cash account at the month's end; the month may close when all reconcile."""
    end = month_end(month)
    return [report(cash, end) for cash in CashAccount.objects.select_related("account").filter(reconcile_from__lte=end)]


def period_close_reconciled(*, month: datetime.date, acting_user) -> ClosedPeriod:
    month = month.replace(day=1)
    with transaction.atomic():
        missing = [r.cash_account.name for r in close_checklist(month) if not r.reconciled]
        if missing:
            raise NotReconciled(f"{month:%B %Y} cannot close: {', '.join(missing)} not reconciled")
        return services.period_close(month=month, acting_user=acting_user)
