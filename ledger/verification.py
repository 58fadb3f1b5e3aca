"""Re-sum the whole ledger history and compare it with the balance counters (drift detection)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable

from django.db import connection, transaction

CHUNK = 1_000_000  # transfer ids per query: keeps memory flat and lets a progress bar move


@dataclasses.dataclass
class VerificationReport:
    transfers: int = 0
    accounts: int = 0
    drifted: list[tuple[str, str, int, int]] = dataclasses.field(default_factory=list)  # code, counter, counted, stored
    total_debits: int = 0
    total_credits: int = 0

    @property
    def ok(self) -> bool:
        return not self.drifted and self.total_debits == self.total_credits


# Per account, what history says each counter should be.
_CHUNK_SQL = """
SELECT account_id, sum(dpost)::bigint, sum(cpost)::bigint, sum(dpend)::bigint, sum(cpend)::bigint, count(*) FROM (
  SELECT t.debit_account_id AS account_id,
         CASE WHEN t.phase IN ('posted', 'post_pending') THEN t.amount ELSE 0 END AS dpost, 0::bigint AS cpost,
         CASE WHEN t.phase = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.pending_id = t.id)
              THEN t.amount ELSE 0 END AS dpend, 0::bigint AS cpend
    FROM ledger_transfer t WHERE t.id > %(low)s AND t.id <= %(high)s
  UNION ALL
  SELECT t.credit_account_id, 0, CASE WHEN t.phase IN ('posted', 'post_pending') THEN t.amount ELSE 0 END,
         0, CASE WHEN t.phase = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.pending_id = t.id)
              THEN t.amount ELSE 0 END
    FROM ledger_transfer t WHERE t.id > %(low)s AND t.id <= %(high)s
) moves GROUP BY account_id
"""


def ledger_verify(*, on_progress: Callable[[int, int], None] | None = None) -> VerificationReport:
    """Runs in one REPEATABLE READ snapshot so postings made meanwhile cannot look like drift."""
    report = VerificationReport()
    counted: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if own_transaction:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT COALESCE(max(id), 0) FROM ledger_transfer")
        max_id = cursor.fetchone()[0]
        for low in range(0, max_id, CHUNK):
            cursor.execute(_CHUNK_SQL, {"low": low, "high": low + CHUNK})
            for account_id, dpost, cpost, dpend, cpend, rows in cursor.fetchall():
                sums = counted[account_id]
                sums[0] += dpost
                sums[1] += cpost
                sums[2] += dpend
                sums[3] += cpend
                report.transfers += rows
            if on_progress:
                on_progress(min(low + CHUNK, max_id), max_id)
        cursor.execute(
            "SELECT id, code, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_account"
        )
        for account_id, code, *stored in cursor.fetchall():
            report.accounts += 1
            expected = counted.get(account_id, [0, 0, 0, 0])
            for name, want, have in zip(
                ("debits_posted", "credits_posted", "debits_pending", "credits_pending"),
                expected,
                stored,
                strict=True,
            ):
                if want != have:
                    report.drifted.append((code, name, want, have))
            report.total_debits += stored[0]
            report.total_credits += stored[1]
    report.transfers //= 2  # each transfer was counted once per side
    return report
