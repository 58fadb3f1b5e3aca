"""Every write to the ledger. PostgreSQL validates and applies transfers (see migration 0002); these
functions shape requests, make them idempotent, retry transient conflicts and turn database refusals into
named errors.

Idempotency: each transfer carries a client-supplied key. Replaying a key returns the original transfer
(`replayed=True`); the same key with a different payload raises IdempotencyConflict.

By hand: the ledger's own tools where a person names the accounts (the API, recording a statement line's missing
transfer) pass `by_hand=True`, which refuses accounts only their owner's app moves (a budget's: see
models.MOVED_BY_OWNER_PREFIX) with AccountMovedByOwner. The owning apps call these functions without it.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from ledger import exceptions as errors
from ledger.models import MOVED_BY_OWNER_PREFIX, Account, AccountKind, ClosedPeriod, Phase, Transfer

PHASES = frozenset(Phase.values)
MAX_AMOUNT = 10**12  # £10bn in pence: anything larger is a typing error, not a budget
MAX_ID = 2**63 - 1  # PostgreSQL bigint
MAX_RETRIES = 5
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class TransferRequest:
    """One transfer to record. `phase` is posted (default) or pending; resolutions use pending_id."""

    key: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: str
    effective_date: datetime.date
    currency: str = "GBP"
    reference: str = ""
    description: str = ""
    phase: str = Phase.POSTED
    pending_id: int | None = None
    reverses_id: int | None = None
    timeout_at: datetime.datetime | None = None

    # The fields a replay must repeat exactly.
    PAYLOAD_FIELDS = (
        "phase",
        "debit_account_id",
        "credit_account_id",
        "amount",
        "currency",
        "code",
        "reference",
        "description",
        "pending_id",
        "reverses_id",
        "effective_date",
    )

    def payload(self) -> tuple:
        return tuple(getattr(self, name) for name in self.PAYLOAD_FIELDS)


class TransferResult:
    """A recorded transfer and whether it was a replay. The Transfer is built only when asked for:
    batches of thousands rarely need the objects, and building them costs more than the insert."""

    __slots__ = ("_row", "_transfer", "replayed")

    def __init__(self, *, replayed: bool, transfer: Transfer | None = None, row: tuple | None = None):
        self.replayed = replayed
        self._transfer = transfer
        self._row = row

    @property
    def transfer(self) -> Transfer:
        if self._transfer is None:
            pk, values = self._row
            self._transfer = Transfer(id=pk, **dict(zip(_COLUMNS, values, strict=True)))
        return self._transfer


# --- Accounts -----------------------------------------------------------------------------------------


def account_open(
    *,
    code: str,
    name: str,
    kind: AccountKind | str,
    owner_ref: str = "",
    currency: str = "GBP",
    debits_must_not_exceed_credits: bool = False,
    credits_must_not_exceed_debits: bool = False,
) -> Account:
    """Open an account, or return the one already open under `code` (opening is idempotent)."""
    account, _created = Account.objects.get_or_create(
        code=code,
        defaults={
            "name": name,
            "kind": kind,
            "owner_ref": owner_ref,
            "currency": currency,
            "debits_must_not_exceed_credits": debits_must_not_exceed_credits,
            "credits_must_not_exceed_debits": credits_must_not_exceed_debits,
        },
    )
    return account


def account_close(*, account: Account) -> Account:
    """Close an account to new transfers; it must have nothing pending."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        if account.debits_pending or account.credits_pending:
            raise errors.InvalidTransfer(f"Account {account.code} still has pending transfers; resolve them first")
        account.closed = True
        account.save(update_fields=["closed"])
    return account


# --- Transfers ----------------------------------------------------------------------------------------


def transfer_post(
    *,
    key: str,
    debit_account_id: int,
    credit_account_id: int,
    amount: int,
    code: str,
    effective_date: datetime.date,
    acting_user=None,
    currency: str = "GBP",
    reference: str = "",
    description: str = "",
    by_hand: bool = False,
) -> TransferResult:
    """Move `amount` pence now: debit one account, credit another."""
    request = TransferRequest(
        key=key,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        code=code,
        effective_date=effective_date,
        currency=currency,
        reference=reference,
        description=description,
    )
    return transfers_record([request], acting_user=acting_user, by_hand=by_hand)[0]


def transfer_reserve(
    *,
    key: str,
    debit_account_id: int,
    credit_account_id: int,
    amount: int,
    code: str,
    effective_date: datetime.date,
    acting_user=None,
    timeout: datetime.timedelta | None = None,
    currency: str = "GBP",
    reference: str = "",
    description: str = "",
    by_hand: bool = False,
) -> TransferResult:
    """Reserve `amount` as a pending transfer; post, void or let it expire after `timeout` later."""
    request = TransferRequest(
        key=key,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        code=code,
        effective_date=effective_date,
        currency=currency,
        reference=reference,
        description=description,
        phase=Phase.PENDING,
        timeout_at=timezone.now() + timeout if timeout else None,
    )
    return transfers_record([request], acting_user=acting_user, by_hand=by_hand)[0]


def pending_post(
    *,
    key: str,
    pending: Transfer,
    acting_user=None,
    amount: int | None = None,
    effective_date: datetime.date | None = None,
    description: str = "",
    by_hand: bool = False,
) -> TransferResult:
    """Post a pending transfer in full, or in part (the rest is released)."""
    return _resolve(
        key=key,
        pending=pending,
        phase=Phase.POST_PENDING,
        amount=amount or pending.amount,
        acting_user=acting_user,
        effective_date=effective_date,
        description=description,
        by_hand=by_hand,
    )


def pending_void(
    *,
    key: str,
    pending: Transfer,
    acting_user=None,
    effective_date: datetime.date | None = None,
    description: str = "",
    by_hand: bool = False,
) -> TransferResult:
    """Release a pending transfer without posting anything."""
    return _resolve(
        key=key,
        pending=pending,
        phase=Phase.VOID_PENDING,
        amount=pending.amount,
        acting_user=acting_user,
        effective_date=effective_date,
        description=description,
        by_hand=by_hand,
    )


def pending_expire_due(*, now: datetime.datetime | None = None) -> int:
    """Expire every pending transfer whose timeout has passed (periodic job; safe to run twice)."""
    now = now or timezone.now()
    due = Transfer.objects.filter(phase=Phase.PENDING, timeout_at__lte=now, resolutions__isnull=True)
    requests = [
        TransferRequest(
            key=f"expire:{pending.pk}",
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount,
            code=pending.code,
            effective_date=timezone.localdate(now),
            currency=pending.currency,
            reference=pending.reference,
            description="Expired unresolved",
            phase=Phase.EXPIRE_PENDING,
            pending_id=pending.pk,
        )
        for pending in due.order_by("id")[:10_000]
    ]
    if not requests:
        return 0
    results = transfers_record(requests, acting_user=None)
    return sum(not result.replayed for result in results)


def transfer_reverse(
    *,
    key: str,
    transfer: Transfer,
    acting_user=None,
    effective_date: datetime.date | None = None,
    description: str = "",
    by_hand: bool = False,
) -> TransferResult:
    """Reverse a posted transfer with a new, mirrored one that references it; the original stays as it was."""
    request = TransferRequest(
        key=key,
        debit_account_id=transfer.credit_account_id,
        credit_account_id=transfer.debit_account_id,
        amount=transfer.amount,
        code=transfer.code,
        effective_date=effective_date or timezone.localdate(),
        currency=transfer.currency,
        reference=transfer.reference,
        description=description or f"Reversal of {transfer.idempotency_key}",
        reverses_id=transfer.pk,
    )
    return transfers_record([request], acting_user=acting_user, by_hand=by_hand)[0]


def transfers_record(
    requests: Sequence[TransferRequest], *, acting_user=None, by_hand: bool = False
) -> list[TransferResult]:
    """Record linked transfers: all of them or none, in one statement. Replays return the originals.
    `by_hand`: a person chose the accounts, so an account only its owner's app moves is refused."""
    if not requests:
        return []
    for request in requests:
        _validate(request)
    if by_hand:
        _refuse_accounts_moved_by_owner(requests)
    if len({request.key for request in requests}) != len(requests):
        raise errors.InvalidTransfer("Each transfer in a linked group needs its own idempotency key")
    group_key = uuid.uuid4() if len(requests) > 1 else None
    acting_user_id = getattr(acting_user, "pk", acting_user)
    return _with_retries(lambda: _insert(requests, group_key=group_key, acting_user_id=acting_user_id))


# --- Periods ------------------------------------------------------------------------------------------


def period_close(*, month: datetime.date, acting_user) -> ClosedPeriod:
    """Close a month for good: transfers dated inside it are refused from now on. Only a month that has ended:
    closing the running month would refuse everything dated today (purchases, instalments, card payments)."""
    month = month.replace(day=1)
    next_month = (month + datetime.timedelta(days=32)).replace(day=1)
    if timezone.localdate() < next_month:
        raise errors.PeriodNotEnded(f"{month:%B %Y} has not ended: it can be closed from {next_month:%-d %B %Y}")
    with transaction.atomic():
        period, created = ClosedPeriod.objects.get_or_create(month=month, defaults={"closed_by": acting_user})
    if not created:
        raise errors.PeriodAlreadyClosed(f"{month:%B %Y} is already closed")
    return period


# --- Internals ----------------------------------------------------------------------------------------


def _resolve(*, key, pending, phase, amount, acting_user, effective_date, description, by_hand) -> TransferResult:
    request = TransferRequest(
        key=key,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=amount,
        code=pending.code,
        effective_date=effective_date or timezone.localdate(),
        currency=pending.currency,
        reference=pending.reference,
        description=description,
        phase=phase,
        pending_id=pending.pk,
    )
    return transfers_record([request], acting_user=acting_user, by_hand=by_hand)[0]


def _refuse_accounts_moved_by_owner(requests: Sequence[TransferRequest]) -> None:
    """A budget's money moves only through budgets' services, which apply its checks (plan-line coding, what may be
    paid, funds, the mixing flag); a transfer posted, reversed or resolved by hand would skip them all. Checked before
    the insert, so replaying a budget's own transfer by hand is refused too."""
    ids = {r.debit_account_id for r in requests} | {r.credit_account_id for r in requests}
    owned = (
        Account.objects.filter(pk__in=[i for i in ids if 0 < i <= MAX_ID], owner_ref__startswith=MOVED_BY_OWNER_PREFIX)
        .order_by("code")
        .values_list("code", flat=True)
        .first()
    )
    if owned is not None:
        raise errors.AccountMovedByOwner(errors.MOVED_BY_BUDGET.format(code=owned))


def _validate(request: TransferRequest) -> None:
    if not request.key or len(request.key) > 200:
        raise errors.InvalidTransfer("Every transfer needs an idempotency key of 1 to 200 characters")
    if isinstance(request.amount, bool) or not isinstance(request.amount, int):
        raise errors.InvalidTransfer("The amount must be a whole number of pence")
    if not 0 < request.amount <= MAX_AMOUNT:
        raise errors.InvalidTransfer(f"The amount must be between 1p and {MAX_AMOUNT}p")
    if request.debit_account_id == request.credit_account_id:
        raise errors.InvalidTransfer("A transfer must move money between two different accounts")
    if not CODE_PATTERN.match(request.code or ""):
        raise errors.InvalidTransfer("The code must be lower-case letters, digits and underscores, like instalment")
    if request.phase not in PHASES:
        raise errors.InvalidTransfer(f"Unknown phase {request.phase}")


# Per-row columns, then the three that are the same for a whole statement (sent once, not as arrays).
_ROW_COLUMNS = (
    "idempotency_key", "phase", "debit_account_id", "credit_account_id", "amount", "currency", "code", "reference",
    "description", "pending_id", "reverses_id", "timeout_at", "effective_date",
)  # fmt: skip
_ROW_TYPES = (
    "text", "text", "bigint", "bigint", "bigint", "text", "text", "text", "text", "bigint", "bigint", "timestamptz",
    "date",
)  # fmt: skip
_SHARED_COLUMNS = ("group_key", "recorded_at", "acting_user_id")
_COLUMNS = _ROW_COLUMNS + _SHARED_COLUMNS
_INSERT_ONE_SQL = (
    f"INSERT INTO ledger_transfer ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
)
_INSERT_MANY_SQL = (
    f"INSERT INTO ledger_transfer ({', '.join(_COLUMNS)}) "
    f"SELECT rows.*, %s::uuid, %s::timestamptz, %s::bigint "
    f"FROM unnest({', '.join(f'%b::{t}[]' for t in _ROW_TYPES)}) AS rows "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
)


def _insert(requests: Sequence[TransferRequest], *, group_key, acting_user_id) -> list[TransferResult]:
    shared = (group_key, timezone.now(), acting_user_id)
    rows = [
        (
            r.key, r.phase, r.debit_account_id, r.credit_account_id, r.amount, r.currency, r.code, r.reference,
            r.description, r.pending_id, r.reverses_id, r.timeout_at, r.effective_date,
        )
        for r in requests
    ]  # fmt: skip
    if len(rows) == 1 and not connection.in_atomic_block:
        # One INSERT is atomic on its own: the hot path needs no BEGIN and COMMIT round trips.
        inserted = _execute_insert(rows, shared, requests)
        existing = _check_replays(requests, inserted)
    else:
        with transaction.atomic():
            inserted = _execute_insert(rows, shared, requests)
            existing = _check_replays(requests, inserted)
    results = []
    for request, row in zip(requests, rows, strict=True):
        if request.key in inserted:
            results.append(TransferResult(replayed=False, row=(inserted[request.key], row + shared)))
        else:
            results.append(TransferResult(replayed=True, transfer=existing[request.key]))
    return results


def _execute_insert(rows: list[tuple], shared: tuple, requests: Sequence[TransferRequest]) -> dict[str, int]:
    """Runs on psycopg's own cursor so the statement is prepared once per connection and reused."""
    connection.ensure_connection()
    try:
        # Django's cursors bind parameters client-side; a plain psycopg cursor sends them separately, which is
        # what lets the server keep the prepared plan.
        with psycopg.Cursor(connection.connection) as cursor:
            if len(rows) == 1:
                cursor.execute(_INSERT_ONE_SQL, rows[0] + shared, prepare=True)
            else:
                columns = [list(column) for column in zip(*rows, strict=True)]
                # %b: arrays go in binary, with no text escaping of thousands of values.
                cursor.execute(_INSERT_MANY_SQL, [*shared, *columns], prepare=True)
            return {key: pk for pk, key in cursor.fetchall()}
    except psycopg.Error as exc:
        raise _translate(exc, requests) from exc


def _check_replays(requests: Sequence[TransferRequest], inserted: dict[str, int]) -> dict[str, Transfer]:
    """Keys that were not inserted already exist: each must repeat its original payload exactly."""
    if len(inserted) == len(requests):
        return {}
    missing = [r.key for r in requests if r.key not in inserted]
    existing = {t.idempotency_key: t for t in Transfer.objects.filter(idempotency_key__in=missing)}
    for request in requests:
        if request.key in existing and _payload(existing[request.key]) != request.payload():
            raise errors.IdempotencyConflict(errors.IDEMPOTENCY_CONFLICT.format(key=request.key))
    return existing


def _payload(transfer: Transfer) -> tuple:
    return tuple(getattr(transfer, name) for name in TransferRequest.PAYLOAD_FIELDS)


def _owns_transaction() -> bool:
    """Inside a caller's atomic block a retry would replay only part of its work, so we never retry there."""
    return not connection.in_atomic_block


def _with_retries(operation: Callable[[], T]) -> T:
    """Retry serialization failures and deadlocks, but only when we own the transaction."""
    if not _owns_transaction():
        return operation()
    for attempt in range(MAX_RETRIES):
        try:
            return operation()
        except errors.LedgerError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in RETRYABLE_SQLSTATES or attempt == MAX_RETRIES - 1:
                raise
            time.sleep(0.005 * (2**attempt))
    raise AssertionError("unreachable")


_CONSTRAINT_ERRORS = {
    "account_debits_within_credits": errors.InsufficientFunds,
    "account_credits_within_debits": errors.InsufficientFunds,
}


def _translate(exc: psycopg.Error, requests: Sequence[TransferRequest]) -> errors.LedgerError:
    cause = exc
    sqlstate = getattr(cause, "sqlstate", None)
    diag = getattr(cause, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc)
    constraint = getattr(diag, "constraint_name", None) or ""
    by_sqlstate = {
        "LG001": errors.PeriodClosed,
        "LG002": errors.CurrencyMismatch,
        "LG003": errors.AccountClosed,
        "LG004": errors.PendingInvalid,
        "LG005": errors.ReversalInvalid,
        "LG006": errors.AccountNotFound,
    }
    if sqlstate in by_sqlstate:
        text = message.removeprefix("ledger: ")
        return by_sqlstate[sqlstate](text[:1].upper() + text[1:])
    if sqlstate == "23514" and constraint in _CONSTRAINT_ERRORS:
        account_code = _account_code_from_check(cause)
        return errors.InsufficientFunds(errors.INSUFFICIENT_FUNDS.format(code=account_code))
    if sqlstate == "23505" and constraint == "transfer_pending_resolved_once":
        keys = ", ".join(r.key for r in requests if r.pending_id)
        return errors.PendingAlreadyResolved(errors.ALREADY_RESOLVED.format(key=keys))
    if sqlstate == "23505" and constraint == "transfer_reversed_once":
        return errors.ReversalInvalid(errors.ALREADY_REVERSED.format(key=", ".join(r.key for r in requests)))
    if sqlstate in RETRYABLE_SQLSTATES:
        return errors.LedgerError("The ledger was busy; try again")
    if sqlstate == "22003":  # numeric_value_out_of_range: an id or total beyond a bigint
        return errors.InvalidTransfer("A number in the transfer is too large")
    raise exc


def _account_code_from_check(cause) -> str:
    """PostgreSQL's CHECK message includes the failing row; the code is its second column."""
    detail = getattr(getattr(cause, "diag", None), "message_detail", "") or ""
    match = re.search(r"Failing row contains \(\d+, ([^,]+),", detail)
    return match.group(1) if match else "unknown"
