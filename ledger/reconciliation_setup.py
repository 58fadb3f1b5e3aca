"""Setting up reconciliation: the CSV layouts banks export statements in, and which ledger accounts are cash accounts.

Finance staff do this on the pages in ledger/setup_views.py. The checks live here, not only in the forms, so a
layout or cash account saved any other way obeys the same rules; the forms call the same checks to put each message
by its field. pghistory records every save; `_history` names who made it even outside a web request.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping

import pghistory
from django.db import IntegrityError, transaction
from django.utils import timezone

from ledger.exceptions import LedgerError
from ledger.models import MOVED_BY_OWNER_PREFIX, Account, AccountKind, CashAccount, CsvMapping, StatementSource
from ledger.statements_import import MAX_AMOUNT, ImportRefused, ParsedLine, parse_csv

MAPPING_FIELDS = (
    "name",
    "date_column",
    "date_format",
    "description_column",
    "amount_column",
    "debit_column",
    "credit_column",
    "reference_column",
    "balance_column",
    "id_column",
)
MAX_DATE_WINDOW = 31
EARLIEST_RECONCILE_FROM = datetime.date(2000, 1, 1)
# Two dates whose day, month and year all differ, and whose day cannot be read as a month (31) or can (5).
FORMAT_CHECK_DAYS = (datetime.date(2026, 10, 31), datetime.date(2027, 1, 5))
PREVIEW_LINES = 5
PREVIEW_PROBLEMS = 20

AMOUNTS_MISSING = "Enter the signed amount column, or both the money out and money in columns"
AMOUNTS_BOTH = "Enter either a signed amount column or money out and money in columns, not both"
CREDIT_MISSING = "Enter the money in column as well as money out, or use a signed amount column instead"
DEBIT_MISSING = "Enter the money out column as well as money in, or use a signed amount column instead"
DATE_FORMAT_INVALID = (
    "Enter a date format with codes for the day, month and year, like %d/%m/%Y for 31/10/2026 or %Y-%m-%d"
)
NAME_TAKEN = "There is already a CSV layout called {name}"
ACCOUNT_NOT_SUITABLE = "Choose an open asset account that is not already a cash account"
ACCOUNT_TAKEN = "That ledger account is already a cash account"
ACCOUNT_FIXED = "The ledger account of a cash account cannot be changed"
LAYOUT_NEEDED = "Choose the bank's CSV layout: statements that come as CSV files need one"
WINDOW_RANGE = f"Enter a whole number of days from 0 to {MAX_DATE_WINDOW}"
BALANCE_TOO_LARGE = "The opening balance is too large"


class SetupRefused(LedgerError):
    """A CSV layout or cash account was not saved as asked; nothing changed."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


# --- Checks (pure; the forms use them too) ---------------------------------------------------------------------------


def date_format_problem(date_format: str) -> str | None:
    """None if the strftime pattern writes and reads back the day, month and year; else the message."""
    for day in FORMAT_CHECK_DAYS:
        try:
            read = datetime.datetime.strptime(day.strftime(date_format), date_format).date()
        except (ValueError, re.error):  # re.error: a code used twice, e.g. %d/%d/%Y
            return DATE_FORMAT_INVALID
        if read != day:
            return DATE_FORMAT_INVALID
    return None


def csv_mapping_problems(fields: Mapping[str, str]) -> dict[str, str]:
    """Field → message, mirroring the database's csv_mapping_has_amounts check, plus a readable date format."""
    amount, debit, credit = (fields.get(f"{role}_column", "").strip() for role in ("amount", "debit", "credit"))
    problems = {}
    if amount and (debit or credit):
        problems["amount_column"] = AMOUNTS_BOTH
    elif not amount and not debit and not credit:
        problems["amount_column"] = AMOUNTS_MISSING
    elif not amount and not credit:
        problems["credit_column"] = CREDIT_MISSING
    elif not amount and not debit:
        problems["debit_column"] = DEBIT_MISSING
    if fields.get("date_format") and (problem := date_format_problem(fields["date_format"])):
        problems["date_format"] = problem
    for field in ("name", "date_column", "date_format", "description_column"):
        if not fields.get(field, "").strip():
            problems.setdefault(field, "Enter the " + field.replace("_", " ").replace("description", "details"))
    return problems


def eligible_accounts():
    """Ledger accounts that may become cash accounts: open asset accounts not already reconciled."""
    return Account.objects.filter(kind=AccountKind.ASSET, closed=False, cash__isnull=True)


def offered_accounts():
    """The accounts the set-up page offers: the eligible ones an organisation owns (the ICB's bank account, its
    Stripe balance, a clearing account...), each mirroring a real account whose statements finance receives. A
    budget's own accounts (`budget:<id>:...`, a few each, so hundreds in all) are left out: their money is moved
    only by the budget's own pages. `cash_account_save` still takes any eligible account, for a script that
    reconciles a budget's account on purpose (ledger/matching.py then never creates transfers on it)."""
    return eligible_accounts().exclude(owner_ref__startswith=MOVED_BY_OWNER_PREFIX).order_by("name", "code")


def offered_label(account: Account) -> str:
    """How the set-up page names an account: what people call it first, then the code the chart of accounts uses."""
    return f"{account.name} ({account.code})"


def reconcile_from_range(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    # Bounded so date arithmetic in the report (the day before) and in matching never leaves the calendar.
    return EARLIEST_RECONCILE_FROM, (today or timezone.localdate()) + datetime.timedelta(days=366)


def cash_account_problems(
    *,
    source: str,
    csv_mapping: CsvMapping | None,
    reconcile_from: datetime.date | None,
    opening_balance: int | None,
    date_window_days: int | None,
    today: datetime.date | None = None,
) -> dict[str, str]:
    problems = {}
    if source == StatementSource.CSV and csv_mapping is None:
        problems["csv_mapping"] = LAYOUT_NEEDED
    if reconcile_from is not None:
        earliest, latest = reconcile_from_range(today)
        if not earliest <= reconcile_from <= latest:
            problems["reconcile_from"] = f"Enter a date from {earliest:%d/%m/%Y} to {latest:%d/%m/%Y}"
    if opening_balance is not None and abs(opening_balance) >= MAX_AMOUNT:
        problems["opening_balance"] = BALANCE_TOO_LARGE
    if date_window_days is not None and not 0 <= date_window_days <= MAX_DATE_WINDOW:
        problems["date_window_days"] = WINDOW_RANGE
    return problems


def _refuse_first(problems: dict[str, str]) -> None:
    if problems:
        field, message = next(iter(problems.items()))
        raise SetupRefused(message, field=field)


def _history(action: str, acting_user):
    return pghistory.context(user=getattr(acting_user, "pk", None), action=action)


# --- Writes -----------------------------------------------------------------------------------------------------------


def csv_mapping_save(*, acting_user, mapping: CsvMapping | None = None, **fields: str) -> CsvMapping:
    """Create a CSV layout, or change `mapping`. Column names are trimmed, as the importer trims the file's."""
    unknown = set(fields) - set(MAPPING_FIELDS)
    if unknown:
        raise TypeError(f"Unknown CSV layout fields: {', '.join(sorted(unknown))}")
    cleaned = {field: (fields.get(field) or "").strip() for field in MAPPING_FIELDS}
    _refuse_first(csv_mapping_problems(cleaned))
    mapping = mapping or CsvMapping()
    for field, value in cleaned.items():
        setattr(mapping, field, value)
    try:
        with _history("csv_mapping_save", acting_user), transaction.atomic():
            mapping.save()
    except IntegrityError as exc:  # the name is unique; two people saving the same name at once
        raise SetupRefused(NAME_TAKEN.format(name=cleaned["name"]), field="name") from exc
    return mapping


def cash_account_save(
    *,
    acting_user,
    cash_account: CashAccount | None = None,
    account: Account | None = None,
    name: str,
    source: str,
    csv_mapping: CsvMapping | None,
    reconcile_from: datetime.date,
    opening_balance: int,
    date_window_days: int,
    today: datetime.date | None = None,
) -> CashAccount:
    """Make an asset account a cash account, or change one's settings. Its ledger account never changes.

    Changing `reconcile_from` or `opening_balance` after lines are matched is allowed: it changes the report from
    then on, and the history records who changed what.
    """
    name = name.strip()
    if not name:
        raise SetupRefused("Enter the name of the bank account", field="name")
    if source not in StatementSource.values:
        raise SetupRefused("Choose how the statements come", field="source")
    _refuse_first(
        cash_account_problems(
            source=source,
            csv_mapping=csv_mapping,
            reconcile_from=reconcile_from,
            opening_balance=opening_balance,
            date_window_days=date_window_days,
            today=today,
        )
    )
    if cash_account is None:
        if account is None or not eligible_accounts().filter(pk=account.pk).exists():
            raise SetupRefused(ACCOUNT_NOT_SUITABLE, field="account")
        cash_account = CashAccount(account=account)
    elif account is not None and account.pk != cash_account.account_id:
        raise SetupRefused(ACCOUNT_FIXED, field="account")
    cash_account.name = name
    cash_account.source = source
    cash_account.csv_mapping = csv_mapping
    cash_account.reconcile_from = reconcile_from
    cash_account.opening_balance = opening_balance
    cash_account.date_window_days = date_window_days
    try:
        with _history("cash_account_save", acting_user), transaction.atomic():
            cash_account.save()
    except IntegrityError as exc:  # one cash account per ledger account; someone else just made it one
        raise SetupRefused(ACCOUNT_TAKEN, field="account") from exc
    return cash_account


# --- Trying a layout on a sample file (reads only) -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayoutTrial:
    lines: list[ParsedLine]  # the first few read
    lines_read: int
    problems: list[tuple[int, str]]  # bad lines, or why the whole file was refused
    refused: bool


def csv_layout_try(data: bytes, fields: Mapping[str, str]) -> LayoutTrial:
    """Read a sample file with an unsaved layout, as an import would, without writing anything."""
    mapping = CsvMapping(**{field: (fields.get(field) or "").strip() for field in MAPPING_FIELDS})
    try:
        parsed = parse_csv(data, mapping)
    except ImportRefused as exc:
        return LayoutTrial(lines=[], lines_read=0, problems=exc.problems[:PREVIEW_PROBLEMS], refused=True)
    return LayoutTrial(
        lines=parsed.lines[:PREVIEW_LINES],
        lines_read=len(parsed.lines),
        problems=parsed.bad_lines[:PREVIEW_PROBLEMS],
        refused=False,
    )
