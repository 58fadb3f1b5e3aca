"""Where money really moves: the ICB's bank account and its Stripe balance, so finance can reconcile them.

The budget ledgers say whose money a payment was (from a budget's `held:icb` to the person's account, say); this
module also records the movement on the real account it left: `icb:bank` for a payment run's BACS file, the
Stripe balance for a Connect transfer. The other side is `icb:paid-out`, the running total of money paid out for
budgets. One payment run is one BACS line on the bank statement, so every BACS item of a run shares the run's
reference and auto-matching takes them as one group (ledger/matching.py).

Stripe's own statements (balance transactions and payouts) come in through the payments gateway and become lines
on the Stripe cash account, with the transfers only Stripe can tell us about:
- a fee is Stripe's figure, nothing to decide: the import posts it to `icb:stripe-fees`;
- a payout moves money from the Stripe balance to the bank: the import posts it, referenced by the payout id, so
  it matches the Stripe line here and the bank line there;
- a charge or a refund takes the reference of the budget it paid (found through its card payment), so it matches
  the card-payment transfer by reference.
A payout that fails or is cancelled before it was fetched is left out (Stripe reverses it on the balance). One
fetched earlier as pending or in transit was posted to the bank; Stripe then returns the money with a
`payout_failure` or `payout_cancel` balance transaction, which the import records as a line and posts as the
reversal of the payout, so the Stripe account matches line for line and the pair, which never reached the bank
statement, cancels out in the bank's reconciliation.
"""

from __future__ import annotations

import datetime
import hashlib

from django.db import transaction
from django.utils import timezone

from budgets import payments
from budgets.card_payments import stripe_balance_account
from budgets.ending import icb_bank_account
from budgets.models import Budget, CardPayment, PaymentRunItem, PayoutMethod
from config.formatting import format_date
from ledger import services as ledger
from ledger.models import Account, AccountKind, CashAccount, StatementImport, StatementSource, Transfer
from ledger.statements_import import SKIP, ImportRefused, Parsed, ParsedLine, lines_record

PAID_OUT_CODE = "icb:paid-out"
STRIPE_FEES_CODE = "icb:stripe-fees"
REVERSED_PAYOUTS = {"failed", "canceled"}
# Stripe shows a payout on the balance too; the payout object is the one with the arrival date and status.
PAYOUT_TYPES = {"payout", "payout_cancel", "payout_failure"}
RETURNED_PAYOUTS = {"payout_failure": "failed", "payout_cancel": "was cancelled"}


def paid_out_account() -> Account:
    return ledger.account_open(
        code=PAID_OUT_CODE, name="Paid out for personal health budgets", kind=AccountKind.EQUITY, owner_ref="icb"
    )


def stripe_fees_account() -> Account:
    return ledger.account_open(code=STRIPE_FEES_CODE, name="Stripe fees", kind=AccountKind.EXPENSE, owner_ref="icb")


def run_reference(run_id: int) -> str:
    return f"PHB RUN {run_id}"


def run_item_cash_out(*, item: PaymentRunItem, gateway_transfer_id: str, acting_user) -> None:
    """Record a paid run item leaving the ICB's bank (BACS) or Stripe balance (Connect). Call inside the item's
    transaction, so the movement exists exactly when the item is paid."""
    connect = item.method == PayoutMethod.CONNECT
    ledger.transfer_post(
        key=f"run-item:{item.pk}:cash",
        debit_account_id=paid_out_account().pk,
        credit_account_id=(stripe_balance_account() if connect else icb_bank_account()).pk,
        amount=item.amount_pence,
        code="connect_transfer" if connect else "bacs_payment",
        # The bank pays a BACS file on its processing day, the run's date (never before today: a run approved in
        # time but paid after its date goes today); Stripe moves a Connect transfer when it is sent.
        effective_date=timezone.localdate() if connect else max(item.run.run_date, timezone.localdate()),
        reference=gateway_transfer_id if connect else run_reference(item.run_id),
        description=f"{item.payee_name}: {item.reference}"[:300],
        acting_user=acting_user,
    )


# --- Importing Stripe's statements -------------------------------------------------------------------------------


class NoMovements(ImportRefused):
    """Stripe had nothing in those dates: not an error, but nothing is recorded either."""


def stripe_statement_import(
    *, cash_account: CashAccount, start: datetime.date, end: datetime.date, acting_user
) -> StatementImport:
    """Fetch the balance transactions and payouts created from `start` to `end` (inclusive) and record them on
    the Stripe cash account. Re-running, or overlapping dates, adds nothing twice (keyed by Stripe's ids)."""
    if cash_account.source != StatementSource.STRIPE:
        raise ImportRefused([(0, f"{cash_account.name} is not a Stripe account")])
    if start > end:
        raise ImportRefused([(0, "The end date must be the same as or after the start date")])
    since = datetime.datetime.combine(start, datetime.time.min, tzinfo=datetime.UTC)
    until = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC)
    gateway = payments.gateway()
    try:
        movements = gateway.balance_transactions(since=since, until=until)
        payouts = gateway.payouts(since=since, until=until)
    except payments.PaymentError as exc:
        raise ImportRefused([(0, f"Stripe could not be reached: {exc}")]) from exc
    parsed, fees, paid_out, returned = _lines(movements, payouts)
    if not parsed.lines and not parsed.bad_lines:
        raise NoMovements([(0, f"Stripe has no movements from {format_date(start)} to {format_date(end)}")])
    ids = sorted(line.bank_id for line in parsed.lines)
    with transaction.atomic():
        for line in fees:
            _post(line, debit=stripe_fees_account(), credit=cash_account.account, code="stripe_fee", user=acting_user)
        for line in paid_out:
            _post(line, debit=icb_bank_account(), credit=cash_account.account, code="stripe_payout", user=acting_user)
        for line, payout_transfer in returned:
            ledger.transfer_reverse(
                key=f"stripe:{line.bank_id}",
                transfer=payout_transfer,
                effective_date=line.date,
                description=line.description,
                acting_user=acting_user,
            )
        return lines_record(
            cash_account=cash_account,
            source=StatementSource.STRIPE,
            filename=f"Stripe {start:%d/%m/%Y} to {end:%d/%m/%Y}",
            sha256=hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            parsed=parsed,
            acting_user=acting_user,
            on_bad_lines=SKIP,
        )


def _recorded_payout(payout_id: str) -> Transfer | None:
    """The payout's own transfer to the bank, if an earlier fetch posted it (a reversal shares its reference)."""
    if not payout_id:
        return None
    return Transfer.objects.filter(code="stripe_payout", reference=payout_id, reverses__isnull=True).first()


def _lines(
    movements: list[payments.BalanceTransaction], payouts: list[payments.Payout]
) -> tuple[Parsed, list[ParsedLine], list[ParsedLine], list[tuple[ParsedLine, Transfer]]]:
    parsed, fees, paid_out, returned = Parsed(), [], [], []
    intents = {m.payment_intent_id for m in movements if m.payment_intent_id}
    budgets_by_intent = {
        intent: Budget(pk=budget_id).owner_ref
        for intent, budget_id in CardPayment.objects.filter(intent_id__in=intents).values_list("intent_id", "budget_id")
    }
    number = 0
    for movement in sorted(movements, key=lambda m: (m.created, m.id)):
        number += 1
        if movement.type in RETURNED_PAYOUTS and movement.currency == payments.CURRENCY:
            payout_transfer = _recorded_payout(movement.source)
            if payout_transfer is not None:
                line = ParsedLine(
                    line_number=number,
                    date=movement.created.date(),
                    amount=movement.amount_pence,
                    description=f"Payout {movement.source} {RETURNED_PAYOUTS[movement.type]}: back on the balance",
                    reference=movement.source,
                    bank_id=movement.id,
                )
                parsed.lines.append(line)
                returned.append((line, payout_transfer))
        if movement.type in PAYOUT_TYPES:
            continue
        if movement.currency != payments.CURRENCY:
            parsed.bad_lines.append((number, f"{movement.id} is in {movement.currency.upper()}, not pounds"))
            continue
        day = movement.created.date()
        reference = budgets_by_intent.get(movement.payment_intent_id, "") or (
            movement.source if movement.type == "transfer" else ""
        )
        if movement.amount_pence:
            parsed.lines.append(
                ParsedLine(
                    line_number=number,
                    date=day,
                    amount=movement.amount_pence,
                    description=(movement.description or movement.type)[:300],
                    reference=reference[:200],
                    bank_id=movement.id,
                )
            )
        if movement.fee_pence:
            fee = ParsedLine(
                line_number=number,
                date=day,
                amount=-movement.fee_pence,
                description=f"Stripe fee on {movement.type} {movement.source}"[:300],
                reference=f"fee {movement.id}",
                bank_id=f"{movement.id}:fee",
            )
            parsed.lines.append(fee)
            fees.append(fee)
    for payout in sorted(payouts, key=lambda p: (p.created, p.id)):
        number += 1
        if payout.status in REVERSED_PAYOUTS:
            continue
        if payout.currency != payments.CURRENCY:
            parsed.bad_lines.append((number, f"Payout {payout.id} is in {payout.currency.upper()}, not pounds"))
            continue
        line = ParsedLine(
            line_number=number,
            date=payout.created.date(),
            amount=-payout.amount_pence,
            description=f"Payout to the bank, arriving {payout.arrival_date:%d/%m/%Y}",
            reference=payout.id,
            bank_id=payout.balance_transaction_id or payout.id,
        )
        parsed.lines.append(line)
        paid_out.append(line)
    return parsed, fees, paid_out, returned


def _post(line: ParsedLine, *, debit: Account, credit: Account, code: str, user) -> None:
    ledger.transfer_post(
        key=f"stripe:{line.bank_id}",
        debit_account_id=debit.pk,
        credit_account_id=credit.pk,
        amount=-line.amount,
        code=code,
        effective_date=line.date,
        reference=line.reference,
        description=line.description,
        acting_user=user,
    )
