"""Matching statement lines to ledger transfers on the same cash account.

Signs: a transfer debiting the cash account is money in (+), one crediting it is money out (-), as on the
statement. Only posted movements count (posted, and pending transfers once posted).

Auto-match runs three rules in order, each taking only what is still unmatched, and never guesses:
1. reference — the line's reference equals the transfer's, same amount, dates within the account's window;
2. group — one line pays many transfers (a BACS run): transfers sharing a reference or a group key whose total
   equals the line, within the window (with the line's reference equal where it has one);
3. amount and date — exactly one unmatched transfer of that amount within the window.
Anything ambiguous is left for a person on the matching page, who sees ranked suggestions.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from ledger import services
from ledger.exceptions import LedgerError
from ledger.models import CashAccount, Match, MatchedTransfer, StatementLine, Transfer


class MatchError(LedgerError):
    pass


@dataclasses.dataclass(frozen=True)
class Candidate:
    id: int
    date: datetime.date
    amount: int  # signed, as on the statement
    reference: str
    group: str


def unmatched_lines(cash_account: CashAccount) -> QuerySet[StatementLine]:
    active = Match.objects.filter(line=OuterRef("pk"), active=True)
    return StatementLine.objects.filter(cash_account=cash_account).exclude(Exists(active))


_UNMATCHED_SQL = """
SELECT t.id, t.effective_date, {sign} t.amount, t.reference, coalesce(t.group_key::text, '')
  FROM ledger_transfer t
 WHERE t.{side}_account_id = %(account)s AND t.phase IN ('posted', 'post_pending')
   AND t.effective_date BETWEEN %(start)s AND %(end)s
   AND NOT EXISTS (SELECT 1 FROM ledger_matchedtransfer m
                    WHERE m.transfer_id = t.id AND m.cash_account_id = %(cash)s AND m.active)
"""


def unmatched_transfers(
    cash_account: CashAccount, *, start: datetime.date | None = None, end: datetime.date | None = None
) -> list[Candidate]:
    params = {
        "account": cash_account.account_id,
        "cash": cash_account.pk,
        "start": max(start or cash_account.reconcile_from, cash_account.reconcile_from),
        "end": end or datetime.date.max,
    }
    sql = _UNMATCHED_SQL.format(sign="", side="debit") + " UNION ALL " + _UNMATCHED_SQL.format(sign="-", side="credit")
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY 2, 1", params)
        return [Candidate(*row) for row in cursor.fetchall()]


def transfer_signed_amount(cash_account: CashAccount, transfer: Transfer) -> int:
    return transfer.amount if transfer.debit_account_id == cash_account.account_id else -transfer.amount


# --- Auto-match ---------------------------------------------------------------------------------------------------


def auto_match(cash_account: CashAccount) -> dict[str, int]:
    """Match what can be matched without doubt; returns how many lines each rule matched."""
    window = datetime.timedelta(days=cash_account.date_window_days)
    with transaction.atomic():
        CashAccount.objects.select_for_update().filter(pk=cash_account.pk).first()
        lines = list(
            unmatched_lines(cash_account).values_list("id", "date", "amount", "reference").order_by("date", "id")
        )
        if not lines:
            return {"reference": 0, "group": 0, "amount_date": 0}
        candidates = unmatched_transfers(
            cash_account, start=lines[0][1] - window, end=max(line[1] for line in lines) + window
        )
        taken: set[int] = set()
        found: list[tuple[int, str, list[int]]] = []
        remaining = _by_reference(lines, candidates, window, taken, found)
        index = _amount_index(candidates)
        remaining = _by_group(remaining, candidates, window, taken, found, index)
        _by_amount(remaining, index, window, taken, found)
        _record(found, cash_account_id=cash_account.pk, automatic=True, user=None)
    counts = {"reference": 0, "group": 0, "amount_date": 0}
    for _line, rule, _ids in found:
        counts[rule] += 1
    return counts


def _closest(options: list[Candidate], date: datetime.date, window, taken: set[int]) -> Candidate | None:
    best = None
    for option in options:
        distance = abs(option.date - date)
        if option.id in taken or distance > window:
            continue
        if best is None or distance < abs(best.date - date):
            best = option
    return best


def _by_reference(lines, candidates, window, taken, found):
    index: dict[tuple[str, int], list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if candidate.reference:
            index[(candidate.reference.lower(), candidate.amount)].append(candidate)
    remaining = []
    for line_id, date, amount, reference in lines:
        hit = _closest(index.get((reference.lower(), amount), []), date, window, taken) if reference else None
        if hit:
            taken.add(hit.id)
            found.append((line_id, "reference", [hit.id]))
        else:
            remaining.append((line_id, date, amount, reference))
    return remaining


def _amount_index(candidates) -> dict[int, tuple[list[datetime.date], list[Candidate]]]:
    index: dict[int, tuple[list[datetime.date], list[Candidate]]] = {}
    for candidate in candidates:  # already in date order
        dates, items = index.setdefault(candidate.amount, ([], []))
        dates.append(candidate.date)
        items.append(candidate)
    return index


def _free_in_window(index, amount: int, date: datetime.date, window, taken: set[int]) -> list[Candidate]:
    if amount not in index:
        return []
    dates, items = index[amount]
    low, high = bisect.bisect_left(dates, date - window), bisect.bisect_right(dates, date + window)
    return [c for c in items[low:high] if c.id not in taken]


def _by_group(lines, candidates, window, taken, found, index):
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if candidate.id in taken:
            continue
        if candidate.group:
            groups["g:" + candidate.group].append(candidate)
        if candidate.reference:
            groups["r:" + candidate.reference.lower()].append(candidate)
    by_total: dict[int, list[tuple[str, list[Candidate]]]] = defaultdict(list)
    for key, members in groups.items():
        if len(members) > 1 and len({m.amount > 0 for m in members}) == 1:
            by_total[sum(m.amount for m in members)].append((key, members))
    remaining = []
    for line in lines:
        line_id, date, amount, reference = line
        fits = [
            members
            for key, members in by_total.get(amount, [])
            if all(m.id not in taken and abs(m.date - date) <= window for m in members)
            and (not reference or key == "r:" + reference.lower() or not key.startswith("r:"))
        ]
        # A single transfer of the same amount makes it doubtful: leave it for a person.
        if len(fits) == 1 and not _free_in_window(index, amount, date, window, taken):
            taken.update(m.id for m in fits[0])
            found.append((line_id, "group", [m.id for m in fits[0]]))
        else:
            remaining.append(line)
    return remaining


def _by_amount(lines, index, window, taken, found):
    for line_id, date, amount, _reference in lines:
        free = _free_in_window(index, amount, date, window, taken)
        if len(free) == 1:
            taken.add(free[0].id)
            found.append((line_id, "amount_date", [free[0].id]))


def _record(found: list[tuple[int, str, list[int]]], *, cash_account_id: int, automatic: bool, user) -> list[Match]:
    now = timezone.now()
    matches = Match.objects.bulk_create(
        [
            Match(line_id=line_id, automatic=automatic, rule=rule, matched_by=user, matched_at=now)
            for line_id, rule, _ids in found
        ],
        batch_size=5_000,
    )
    MatchedTransfer.objects.bulk_create(
        [
            MatchedTransfer(match_id=match.pk, transfer_id=transfer_id, cash_account_id=cash_account_id)
            for match, (_line, _rule, ids) in zip(matches, found, strict=True)
            for transfer_id in ids
        ],
        batch_size=5_000,
    )
    return matches


# --- By hand ------------------------------------------------------------------------------------------------------


def suggestions(line: StatementLine, *, limit: int = 10) -> list[tuple[Candidate, int]]:
    """Unmatched transfers ranked for a line: (candidate, score), best first."""
    cash_account = line.cash_account
    span = datetime.timedelta(days=max(cash_account.date_window_days * 5, 14))
    scored = []
    for candidate in unmatched_transfers(cash_account, start=line.date - span, end=line.date + span):
        score = 0
        if candidate.amount == line.amount:
            score += 60
        elif (candidate.amount > 0) == (line.amount > 0):
            score += 10
        if line.reference and candidate.reference.lower() == line.reference.lower():
            score += 30
        score += max(0, 10 - abs((candidate.date - line.date).days))
        scored.append((candidate, score))
    scored.sort(key=lambda pair: (-pair[1], abs((pair[0].date - line.date).days), pair[0].id))
    return scored[:limit]


def match_by_hand(*, line: StatementLine, transfer_ids: list[int], acting_user) -> Match:
    """Match a line to transfers a person chose; their total must equal the line."""
    if not transfer_ids:
        raise MatchError("Choose at least one ledger transfer")
    with transaction.atomic():
        cash_account = CashAccount.objects.select_for_update().get(pk=line.cash_account_id)
        if Match.objects.filter(line=line, active=True).exists():
            raise MatchError("This statement line is already matched")
        free = {c.id: c for c in unmatched_transfers(cash_account) if c.id in set(transfer_ids)}
        if len(free) != len(set(transfer_ids)):
            raise MatchError("One of those transfers is already matched, or is not on this account")
        total = sum(c.amount for c in free.values())
        if total != line.amount:
            raise MatchError(f"The transfers add up to {total / 100:,.2f}, not the line's {line.amount / 100:,.2f}")
        return _record(
            [(line.pk, "", sorted(free))], cash_account_id=cash_account.pk, automatic=False, user=acting_user
        )[0]


def unmatch(*, match: Match, acting_user) -> Match:
    with transaction.atomic():
        match = Match.objects.select_for_update().get(pk=match.pk)
        if not match.active:
            raise MatchError("This match has already been undone")
        now = timezone.now()
        Match.objects.filter(pk=match.pk).update(active=False, unmatched_by=acting_user, unmatched_at=now)
        MatchedTransfer.objects.filter(match=match).update(active=False)
        match.refresh_from_db()
    return match


def transfer_from_line(*, line: StatementLine, other_account_id: int, code: str, reason: str, acting_user) -> Match:
    """Post the transfer the ledger is missing (bank charges, interest) and match the line to it. A person chose the
    other account, so it is posted by hand: a budget's accounts are refused (AccountMovedByOwner)."""
    reason = reason.strip()
    if not reason:
        raise MatchError("Enter why this transfer is being created")
    cash_id = line.cash_account.account_id
    debit, credit = (cash_id, other_account_id) if line.amount > 0 else (other_account_id, cash_id)
    with transaction.atomic():
        result = services.transfer_post(
            key=f"statement-line:{line.pk}",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=abs(line.amount),
            code=code,
            effective_date=line.date,
            reference=line.reference or f"statement-line:{line.pk}",
            description=reason[:300],
            acting_user=acting_user,
            by_hand=True,
        )
        return match_by_hand(line=line, transfer_ids=[result.transfer.pk], acting_user=acting_user)
