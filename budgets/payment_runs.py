"""Payment runs: collect what is due, approve (never by the author), post each payment exactly once, and
produce the BACS Standard 18 file and bank CSV. Posting uses each scheduled payment's own ledger key, so a run
killed halfway and started again pays nothing twice. The files hold only what the ledger has paid: a payment the
ledger refused never reaches the bank, and finance can take it out of the run."""

from __future__ import annotations

import dataclasses
import datetime

import pghistory
from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q, Sum
from django.utils import timezone

from brokerage.models import PlanStatus
from budgets import bacs, payments
from budgets.cash import run_item_cash_out
from budgets.dp_invoices import dp_invoice_release, dp_invoice_settle
from budgets.invoices import invoice_pay, line_money_left, lines_money_left, more_than_left, open_commitment
from budgets.models import (
    BudgetAccount,
    DirectPaymentAccount,
    DirectPaymentInvoice,
    DirectPaymentInvoiceStatus,
    HolderBankAccount,
    Invoice,
    InvoiceStatus,
    PaymentKind,
    PaymentRun,
    PaymentRunItem,
    PaymentStatus,
    PayoutMethod,
    RunStatus,
    ScheduledPayment,
)
from budgets.services import PAYABLE, BudgetError, scheduled_payment_pay
from budgets.spending import blocked_connection, blocked_payees
from config.formatting import format_date, format_pence
from ledger.exceptions import AccountClosed, InsufficientFunds, LedgerError, PeriodClosed

NOT_THE_AUTHOR = "You created this payment run, so someone else must approve it"


@dataclasses.dataclass(frozen=True)
class Payee:
    name: str
    sort_code: str = ""
    account_number: str = ""
    connect_account: str = ""


@dataclasses.dataclass(frozen=True)
class BankDetails:
    """The dedicated accounts and holders' bank accounts a run's instalments go to, read once for the whole run."""

    dedicated: dict[int, DirectPaymentAccount]  # by budget id
    holders: dict[int, HolderBankAccount]  # by organisation id

    @classmethod
    def for_payments(cls, payments: list[ScheduledPayment]) -> BankDetails:
        budgets = {p.budget_id for p in payments if p.kind == PaymentKind.DIRECT_PAYMENT}
        holders = {p.holder_id for p in payments if p.kind != PaymentKind.DIRECT_PAYMENT}
        return cls(
            {account.budget_id: account for account in DirectPaymentAccount.objects.filter(budget_id__in=budgets)},
            {bank.organisation_id: bank for bank in HolderBankAccount.objects.filter(organisation_id__in=holders)},
        )


def _payee_for_payment(payment: ScheduledPayment, banks: BankDetails) -> Payee | None:
    if payment.kind == PaymentKind.DIRECT_PAYMENT:
        account = banks.dedicated.get(payment.budget_id)
        return account and Payee(account.account_name, account.sort_code, account.account_number)
    holder = banks.holders.get(payment.holder_id)
    return holder and Payee(holder.account_name, holder.sort_code, holder.account_number, holder.stripe_account_id)


def _payee_for_invoice(invoice: Invoice | DirectPaymentInvoice) -> Payee | None:
    provider = invoice.provider
    name = (provider.account_name or provider.name)[:18]
    if provider.stripe_account_id:
        return Payee(name, connect_account=provider.stripe_account_id)
    if provider.sort_code and provider.account_number:
        return Payee(name, provider.sort_code.replace("-", ""), provider.account_number)
    return None


def _item(run: PaymentRun, payee: Payee, amount: int, reference: str, **paying) -> PaymentRunItem:
    """A run's item, not saved yet: a run saves all its items at once."""
    return PaymentRunItem(
        run=run,
        amount_pence=amount,
        payee_name=payee.name,
        method=PayoutMethod.CONNECT if payee.connect_account else PayoutMethod.BACS,
        sort_code="" if payee.connect_account else payee.sort_code,
        account_number="" if payee.connect_account else payee.account_number,
        connect_account=payee.connect_account,
        reference=reference,
        **paying,
    )


LIVE = [PlanStatus.SETTING_UP, PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.STOPPING]


NOTHING_DUE = "Nothing is due to be paid on or before {day:%-d %B %Y}"

# A run pays on its date: the bank's processing day and the date of the money leaving the ICB's bank. A date in the
# past would date that movement before today (1 January 1900 was accepted once); one far ahead is a typing slip.
MAX_DAYS_AHEAD = 60
RUN_DATE_PAST = "The date must be today or later"
RUN_DATE_TOO_FAR = "The date must be no more than {days} days from today, so {last:%-d %B %Y} or earlier"


def run_date_problem(run_date: datetime.date, today: datetime.date | None = None) -> str | None:
    """Why a run cannot pay on this date, in a sentence for the date field; None when it can."""
    today = today or timezone.localdate()
    if run_date < today:
        return RUN_DATE_PAST
    if run_date > today + datetime.timedelta(days=MAX_DAYS_AHEAD):
        return RUN_DATE_TOO_FAR.format(days=MAX_DAYS_AHEAD, last=today + datetime.timedelta(days=MAX_DAYS_AHEAD))
    return None


def _day_after(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min))


def _waiting(run_date: datetime.date) -> tuple:
    """What a run for this date gathers, each only when due on or before that date and not in a run yet: due
    instalments of payable budgets; approved invoices of live ones, due on their invoice date; and the invoices
    people paid from their direct payment, due on the day the person confirmed paying (the money was reserved
    then, and the person expects it to go in the next run)."""
    return (
        ScheduledPayment.objects.filter(
            status=PaymentStatus.DUE, due_on__lte=run_date, budget__plan__status__in=PAYABLE, run_item__isnull=True
        ),
        Invoice.objects.filter(
            status=InvoiceStatus.APPROVED,
            invoice_date__lte=run_date,
            run_item__isnull=True,
            budget_line__budget__plan__status__in=LIVE,
        ),
        DirectPaymentInvoice.objects.filter(
            status=DirectPaymentInvoiceStatus.QUEUED, recorded_at__lt=_day_after(run_date), run_item__isnull=True
        ),
    )


def anything_due(run_date: datetime.date) -> bool:
    """Whether a run for this date would pay anything: an empty run is only one more thing to approve."""
    return any(waiting.exists() for waiting in _waiting(run_date))


NEEDS_NECESSITY = "paying {payee} needs the ICB's approval that it is necessary (rule 11)"


def left_out_reason(item: ScheduledPayment | Invoice) -> str:
    """Why a payment run left this out, in a sentence for the run's page."""
    if isinstance(item, Invoice):
        what = f"Invoice {item.invoice_number} from {item.provider.name}"
        if blocked_connection(item.budget_line.budget, item.provider):
            return f"{what}: {NEEDS_NECESSITY.format(payee=item.provider.name)}"
        if item.amount_pence > line_money_left(item.budget_line, excluding=item):
            reason = more_than_left(item.budget_line, excluding=item)
            return f"{what}: {reason[:1].lower()}{reason[1:]}. Reject it, or ask the provider for a corrected one"
    else:
        what = f"The payment due on {item.due_on:%-d %B %Y} for budget {item.budget_id}"
    return f"{what}: the payee has no bank details or connected account yet"


def payment_run_create(*, run_date: datetime.date, acting_user) -> tuple[PaymentRun, list]:
    """Gather every payment of a live budget and every approved invoice due on or before `run_date` and not yet in
    a run. The pages and the API take the date only when `run_date_problem` has none; a run for a past date pays
    what was due by then, dated the day it is paid (`payment_day`). Returns the run and what was left out
    (`left_out_reason` says why): the payee has no bank details or connected account yet, paying them needs a
    necessity approval (rule 11) that is missing or was withdrawn, or an invoice is for more than its plan line has
    left. A direct-payment invoice to a payee who needs a necessity approval is not paid: its reservation is
    released, so the person can spend the money."""
    with transaction.atomic():
        # Locked, and skipped if another run is gathering them right now: a payment joins one run only.
        due, invoices, person_invoices = (
            waiting.select_for_update(skip_locked=True, of=("self",)) for waiting in _waiting(run_date)
        )
        due = list(due.order_by("due_on", "id"))
        invoices = list(invoices.select_related("provider", "budget_line__budget__plan").order_by("invoice_date", "id"))
        person_invoices = person_invoices.select_related("provider", "budget__plan").order_by("recorded_at", "id")
        # What each check needs, read once for the run rather than once a payment: the run's queries do not grow
        # with what it gathers (tests/budgets/test_run_refusals.py counts them).
        blocked = blocked_payees()
        banks = BankDetails.for_payments(due)
        money_left = lines_money_left(invoice.budget_line for invoice in invoices)
        run = PaymentRun.objects.create(run_date=run_date, author=acting_user)
        items: list[PaymentRunItem] = []
        left_out: list = []
        for payment in due:
            net = payment.amount_pence - payment.offset_pence
            if net == 0:  # wholly offset by surplus: nothing to send, but the instalment is still recorded
                scheduled_payment_pay(payment=payment, acting_user=acting_user)
                continue
            payee = _payee_for_payment(payment, banks)
            if payee is None:
                left_out.append(payment)
                continue
            reference = f"PHB {payment.budget_id} {payment.due_on:%d%m%y}"
            items.append(_item(run, payee, net, reference, scheduled_payment=payment))
        for invoice in invoices:
            payee = _payee_for_invoice(invoice)
            # What the line has left for this invoice: every invoice waiting on it is counted, this one apart.
            left = money_left[invoice.budget_line_id] + invoice.amount_pence
            if (
                payee is None
                or (invoice.budget_line.budget.plan.person_id, invoice.provider_id) in blocked
                # Approved before the line's limit was checked: the ledger would refuse it, so it waits outside.
                or invoice.amount_pence > left
            ):
                left_out.append(invoice)
                continue
            items.append(_item(run, payee, invoice.amount_pence, invoice.invoice_number[:18], invoice=invoice))
        for person_invoice in person_invoices:  # paid from a direct payment; the money is already reserved
            if (person_invoice.budget.plan.person_id, person_invoice.provider_id) in blocked:
                reason = NEEDS_NECESSITY.format(payee=person_invoice.provider.name)
                dp_invoice_release(invoice=person_invoice, reason=reason, acting_user=acting_user)
                continue
            payee = _payee_for_invoice(person_invoice)
            items.append(
                _item(
                    run,
                    payee,
                    person_invoice.amount_pence,
                    person_invoice.invoice_number[:18],
                    dp_invoice=person_invoice,
                )
            )
        PaymentRunItem.objects.bulk_create(items)  # one INSERT, in the order gathered (ids follow it)
    return run, left_out


def no_longer_payable(run: PaymentRun) -> list[str]:
    """The people whose budgets stopped being payable since the run was prepared (suspended, stopping...), and the
    payees whose necessity approval (rule 11) was withdrawn since."""
    names = []
    invoices = run.items.select_related(
        "invoice__provider", "invoice__budget_line__budget__plan", "dp_invoice__provider", "dp_invoice__budget__plan"
    ).filter(Q(invoice__isnull=False) | Q(dp_invoice__isnull=False))
    blocked = blocked_payees()
    for item in invoices:
        invoice = item.invoice or item.dp_invoice
        budget = invoice.budget_line.budget if item.invoice_id else invoice.budget
        if (budget.plan.person_id, invoice.provider_id) in blocked:
            names.append(f"{invoice.provider.name} ({NEEDS_NECESSITY.format(payee='them')})")
    items = run.items.select_related(
        "scheduled_payment__budget__plan__person", "invoice__budget_line__budget__plan__person"
    ).filter(Q(scheduled_payment__isnull=False) | Q(invoice__isnull=False))
    for item in items:
        plan = (item.scheduled_payment.budget if item.scheduled_payment_id else item.invoice.budget_line.budget).plan
        allowed = PAYABLE if item.scheduled_payment_id else LIVE
        if plan.status not in allowed:
            names.append(f"{plan.person.full_name} (the plan is {plan.get_status_display().lower()})")
    return names


def payment_run_approve(*, run: PaymentRun, acting_user) -> PaymentRun:
    if run.author_id == acting_user.pk:
        raise BudgetError(NOT_THE_AUTHOR)
    if not acting_user.has_role("finance_manager", "finance_officer"):
        raise BudgetError("Only finance staff can approve a payment run")
    if stale := no_longer_payable(run):
        raise BudgetError(
            f"This run pays budgets that can no longer be paid: {', '.join(stale)}. Discard it and prepare a new "
            "one, which leaves them out"
        )
    with transaction.atomic():
        updated = PaymentRun.objects.filter(pk=run.pk, status=RunStatus.DRAFT).update(
            status=RunStatus.APPROVED, approved_by=acting_user, approved_at=timezone.now()
        )
        if not updated:
            raise BudgetError("This payment run has already been approved")
    run.refresh_from_db()
    return run


def payment_run_discard(*, run: PaymentRun, acting_user) -> None:
    """A run waiting for approval is a proposal: discarding it frees what it gathered for the next run. Nothing
    was paid or sent, so nothing in the ledger changes."""
    if not acting_user.has_role("finance_manager", "finance_officer"):
        raise BudgetError("Only finance staff can discard a payment run")
    with transaction.atomic():
        locked = PaymentRun.objects.select_for_update().filter(pk=run.pk, status=RunStatus.DRAFT).first()
        if locked is None:
            raise BudgetError("Only a run waiting for approval can be discarded")
        locked.items.all().delete()  # an unapproved proposal: its payments go back to wait for the next run
        with pghistory.context(action="payment_run_discard", user=acting_user.pk):
            locked.status = RunStatus.DISCARDED
            locked.save(update_fields=["status"])


def payment_run_post(*, run: PaymentRun, acting_user) -> PaymentRun:
    """Pay every item; each is its own transaction, keyed by what it pays, so re-running is safe. A Connect
    transfer is sent first with the item's own idempotency key (sending it again returns the same transfer),
    then posted. The run is paid once every item is; an item the gateway or the ledger refused is kept with its
    reason in plain English, and is retried the next time the run is paid or taken out of the run
    (`payment_run_item_remove`)."""
    run.refresh_from_db()
    if run.status == RunStatus.DRAFT:
        raise BudgetError("Approve the payment run before paying it")
    items = run.items.filter(paid_at__isnull=True).select_related("run", "scheduled_payment", "invoice", "dp_invoice")
    for item in items:
        transfer_id = item.gateway_transfer_id
        if item.method == PayoutMethod.CONNECT:
            transfer_id = _send_transfer(item)
            if transfer_id is None:
                continue
        try:
            with transaction.atomic():
                # Locked, and skipped if it was paid or taken out of the run since this list was read.
                if not PaymentRunItem.objects.select_for_update().filter(pk=item.pk, paid_at__isnull=True).exists():
                    continue
                if item.invoice_id:
                    invoice_pay(invoice=item.invoice, acting_user=acting_user)
                elif item.dp_invoice_id:
                    dp_invoice_settle(invoice=item.dp_invoice, acting_user=acting_user)
                else:
                    scheduled_payment_pay(payment=item.scheduled_payment, acting_user=acting_user, approved_in_run=True)
                run_item_cash_out(item=item, gateway_transfer_id=transfer_id, acting_user=acting_user)
                PaymentRunItem.objects.filter(pk=item.pk).update(paid_at=timezone.now(), failure="")
        except (BudgetError, LedgerError) as exc:
            # One payment that cannot be posted (the budget's money ran short, say) keeps its reason and waits for
            # a retry, or to be taken out of the run; everyone else in the run is still paid.
            PaymentRunItem.objects.filter(pk=item.pk).update(failure=not_paid_reason(item, exc)[:500])
    _posted_when_all_paid(run)
    run.refresh_from_db()
    return run


def _posted_when_all_paid(run: PaymentRun) -> None:
    if not run.items.filter(paid_at__isnull=True).exists():
        PaymentRun.objects.filter(pk=run.pk, status=RunStatus.APPROVED).update(
            status=RunStatus.POSTED, posted_at=timezone.now()
        )


SHORT_OF_MONEY = "The budget does not hold enough for this ({left} is left)"
PERIOD_CLOSED = "It would be dated in a month finance has closed"
ACCOUNT_CLOSED = "One of the budget's accounts is closed, so nothing more can be paid from it"
LEDGER_REFUSED = "The ledger could not record it: pay the run again, or take this payment out of the run"


def _budget_can_pay(item: PaymentRunItem) -> int:
    """Pence the budget can still pay this item from: what the ICB holds for it, and for a provider invoice the
    line's open commitment too (the invoice is paid from that first)."""
    held = BudgetAccount.objects.select_related("account").get(budget=item.budget, purpose="held:icb")
    available = held.account.available_balance
    if item.invoice_id and (commitment := open_commitment(item.invoice.budget_line)) is not None:
        available += commitment.amount
    return max(available, 0)


def not_paid_reason(item: PaymentRunItem, exc: Exception) -> str:
    """Why the ledger did not pay this item, for the finance team: no account codes or transfer keys."""
    if isinstance(exc, InsufficientFunds):
        return SHORT_OF_MONEY.format(left=format_pence(_budget_can_pay(item)))
    if isinstance(exc, PeriodClosed):
        return PERIOD_CLOSED
    if isinstance(exc, AccountClosed):
        return ACCOUNT_CLOSED
    if isinstance(exc, LedgerError):
        return LEDGER_REFUSED
    return str(exc)  # our own refusals are already written for people


def _send_transfer(item: PaymentRunItem) -> str | None:
    """The Connect transfer's id, or None when the gateway refused it (the item keeps the reason) or the item was
    paid or taken out of the run meanwhile. The item stays locked while the transfer is sent, so it cannot be
    taken out of the run half-way through."""
    with transaction.atomic():
        if not PaymentRunItem.objects.select_for_update().filter(pk=item.pk, paid_at__isnull=True).exists():
            return None
        try:
            transfer = payments.gateway().transfer(
                destination_account=item.connect_account,
                amount_pence=item.amount_pence,
                metadata={"payment_run": str(item.run_id), "item": str(item.pk), "reference": item.reference},
                idempotency_key=item.idempotency_key,
            )
        except payments.GatewayError as exc:
            PaymentRunItem.objects.filter(pk=item.pk).update(failure=str(exc)[:500])
            return None
        PaymentRunItem.objects.filter(pk=item.pk).update(gateway_transfer_id=transfer.id)
    return transfer.id


# --- Taking a payment that could not be paid out of a run --------------------------------------------------------

TAKE_OUT_ONLY_UNPAID = "Only a payment the run tried and could not pay can be taken out of an approved run"
TAKE_OUT_SENT = (
    "This payment was sent by Stripe transfer, so it cannot be taken out: pay the run again to record it, or ask "
    "the payee to return the money"
)
NOT_IN_RUN = "That payment is no longer in this run"
TAKEN_OUT = "Taken out of payment run {run} by {name} on {day}. It was not paid: {reason}"


def payment_run_item_remove(*, run: PaymentRun, item_id: int, acting_user) -> PaymentRunItem:
    """Take out of an approved run a payment it tried and could not pay (the budget ran short, the payee's
    account refused it), so what it paid for is free again: a provider invoice can be rejected or paid by a later
    run; an instalment or a person's invoice waits for the next run. Nothing was posted or sent for it, so the
    ledger does not change. The item's last state, naming who took it out and why, stays in its history (an
    update event under a `payment_run_item_remove` context) before the row is removed; the run is then paid if
    everything left in it is. Returns the item as it was."""
    if not acting_user.has_role("finance_manager", "finance_officer"):
        raise BudgetError("Only finance staff can take a payment out of a run")
    with transaction.atomic():
        locked = PaymentRun.objects.select_for_update().get(pk=run.pk)
        item = (
            PaymentRunItem.objects.select_for_update(of=("self",))
            .select_related("invoice", "dp_invoice", "scheduled_payment")
            .filter(pk=item_id, run=locked)
            .first()
        )
        if item is None:
            raise BudgetError(NOT_IN_RUN)
        if locked.status != RunStatus.APPROVED or item.paid_at is not None or not item.failure:
            raise BudgetError(TAKE_OUT_ONLY_UNPAID)
        if item.gateway_transfer_id:
            raise BudgetError(TAKE_OUT_SENT)
        reason = item.failure[:1].lower() + item.failure[1:]
        record = TAKEN_OUT.format(
            run=run.pk, name=acting_user.full_name, day=format_date(timezone.localdate()), reason=reason
        )
        with pghistory.context(action="payment_run_item_remove", user=acting_user.pk, payment_run=run.pk):
            PaymentRunItem.objects.filter(pk=item.pk).update(failure=record[:2000])  # the last state, in history
            PaymentRunItem.objects.filter(pk=item.pk).delete()  # what it paid for is free for a later run
        _posted_when_all_paid(locked)
    item.failure = record
    return item


def items_taken_out(run: PaymentRun) -> list:
    """The payments taken out of this run, from their history: who took each out, when and why, oldest first."""
    return list(
        PaymentRunItem.pgh_event_model.objects.filter(
            run_id=run.pk, pgh_label="update", pgh_context__metadata__action="payment_run_item_remove"
        ).order_by("pgh_id")
    )


# --- The bank files: only what the ledger has paid ------------------------------------------------------------

NOTHING_PAID_BY_BACS = "Nothing in payment run {run} has been paid by BACS yet, so there is no bank file to download"


def _paid_by_bacs(run: PaymentRun):
    return run.items.filter(method=PayoutMethod.BACS, paid_at__isnull=False).order_by("id")


def has_bank_file(run: PaymentRun) -> bool:
    return _paid_by_bacs(run).exists()


def paid_by_bacs_pence(run: PaymentRun) -> int:
    """What the bank file pays: the contra and the UTL1 totals."""
    return _paid_by_bacs(run).aggregate(total=Sum("amount_pence"))["total"] or 0


def payment_day(run: PaymentRun) -> datetime.date:
    """The bank's processing day: the run's date, or the day it was first paid if that is later (a run approved
    on time but paid after its date). Fixed once the run is paid, so the same run always gives the same file."""
    first_paid = run.items.filter(paid_at__isnull=False).aggregate(first=Min("paid_at"))["first"]
    return max(run.run_date, timezone.localdate(first_paid) if first_paid else timezone.localdate())


def _credits(run: PaymentRun) -> list[bacs.Credit]:
    """The BACS payments the ledger has paid, and only those: an item it refused never reaches the bank."""
    credits = [
        bacs.Credit(
            sort_code=item.sort_code,
            account_number=item.account_number,
            account_name=item.payee_name,
            amount_pence=item.amount_pence,
            reference=item.reference,
        )
        for item in _paid_by_bacs(run)
    ]
    if not credits:
        raise BudgetError(NOTHING_PAID_BY_BACS.format(run=run.pk))
    return credits


def payment_run_bacs_file(run: PaymentRun) -> bytes:
    originator = bacs.Originator(**settings.BACS_ORIGINATOR)
    return bacs.standard18(
        originator=originator,
        credits=_credits(run),
        processing_day=payment_day(run),
        serial=f"{run.pk % 1_000_000:06d}",
    )


def payment_run_csv(run: PaymentRun) -> bytes:
    return bacs.bulk_payment_csv(_credits(run), payment_date=payment_day(run))
