"""Payment runs: collect what is due, approve (never by the author), post each payment exactly once, and
produce the BACS Standard 18 file and bank CSV. Posting uses each scheduled payment's own ledger key, so a run
killed halfway and started again pays nothing twice."""

from __future__ import annotations

import dataclasses
import datetime

import pghistory
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from brokerage.models import PlanStatus
from budgets import bacs, payments
from budgets.cash import run_item_cash_out
from budgets.dp_invoices import dp_invoice_release, dp_invoice_settle
from budgets.invoices import invoice_pay
from budgets.models import (
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
from ledger.exceptions import LedgerError

NOT_THE_AUTHOR = "You created this payment run, so someone else must approve it"


@dataclasses.dataclass(frozen=True)
class Payee:
    name: str
    sort_code: str = ""
    account_number: str = ""
    connect_account: str = ""


def _payee_for_payment(payment: ScheduledPayment) -> Payee | None:
    if payment.kind == PaymentKind.DIRECT_PAYMENT:
        account = DirectPaymentAccount.objects.filter(budget_id=payment.budget_id).first()
        return account and Payee(account.account_name, account.sort_code, account.account_number)
    holder = HolderBankAccount.objects.filter(organisation_id=payment.holder_id).first()
    return holder and Payee(holder.account_name, holder.sort_code, holder.account_number, holder.stripe_account_id)


def _payee_for_invoice(invoice: Invoice | DirectPaymentInvoice) -> Payee | None:
    provider = invoice.provider
    name = (provider.account_name or provider.name)[:18]
    if provider.stripe_account_id:
        return Payee(name, connect_account=provider.stripe_account_id)
    if provider.sort_code and provider.account_number:
        return Payee(name, provider.sort_code.replace("-", ""), provider.account_number)
    return None


def _add_item(run: PaymentRun, payee: Payee, amount: int, reference: str, **paying) -> PaymentRunItem:
    return PaymentRunItem.objects.create(
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


def _waiting(run_date: datetime.date) -> tuple:
    """What a run for this date gathers: due instalments of payable budgets, approved invoices of live ones, and
    the invoices people paid from their direct payment; none of them in a run yet."""
    return (
        ScheduledPayment.objects.filter(
            status=PaymentStatus.DUE, due_on__lte=run_date, budget__plan__status__in=PAYABLE, run_item__isnull=True
        ),
        Invoice.objects.filter(
            status=InvoiceStatus.APPROVED, run_item__isnull=True, budget_line__budget__plan__status__in=LIVE
        ),
        DirectPaymentInvoice.objects.filter(status=DirectPaymentInvoiceStatus.QUEUED, run_item__isnull=True),
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
    else:
        what = f"The payment due on {item.due_on:%-d %B %Y} for budget {item.budget_id}"
    return f"{what}: the payee has no bank details or connected account yet"


def payment_run_create(*, run_date: datetime.date, acting_user) -> tuple[PaymentRun, list]:
    """Gather every due payment of a live budget and every approved invoice not yet in a run. Returns the run
    and what was left out (`left_out_reason` says why): the payee has no bank details or connected account yet,
    or paying them needs a necessity approval (rule 11) that is missing or was withdrawn. A direct-payment invoice
    to such a payee is not paid: its reservation is released, so the person can spend the money."""
    with transaction.atomic():
        # Locked, and skipped if another run is gathering them right now: a payment joins one run only.
        due, invoices, person_invoices = (
            waiting.select_for_update(skip_locked=True, of=("self",)) for waiting in _waiting(run_date)
        )
        due = due.order_by("due_on", "id")
        invoices = invoices.select_related("provider", "budget_line__budget__plan").order_by("invoice_date", "id")
        person_invoices = person_invoices.select_related("provider", "budget__plan").order_by("recorded_at", "id")
        blocked = blocked_payees()
        run = PaymentRun.objects.create(run_date=run_date, author=acting_user)
        left_out: list = []
        for payment in due:
            net = payment.amount_pence - payment.offset_pence
            if net == 0:  # wholly offset by surplus: nothing to send, but the instalment is still recorded
                scheduled_payment_pay(payment=payment, acting_user=acting_user)
                continue
            payee = _payee_for_payment(payment)
            if payee is None:
                left_out.append(payment)
                continue
            reference = f"PHB {payment.budget_id} {payment.due_on:%d%m%y}"
            _add_item(run, payee, net, reference, scheduled_payment=payment)
        for invoice in invoices:
            payee = _payee_for_invoice(invoice)
            if payee is None or (invoice.budget_line.budget.plan.person_id, invoice.provider_id) in blocked:
                left_out.append(invoice)
                continue
            _add_item(run, payee, invoice.amount_pence, invoice.invoice_number[:18], invoice=invoice)
        for person_invoice in person_invoices:  # paid from a direct payment; the money is already reserved
            if (person_invoice.budget.plan.person_id, person_invoice.provider_id) in blocked:
                reason = NEEDS_NECESSITY.format(payee=person_invoice.provider.name)
                dp_invoice_release(invoice=person_invoice, reason=reason, acting_user=acting_user)
                continue
            payee = _payee_for_invoice(person_invoice)
            _add_item(
                run, payee, person_invoice.amount_pence, person_invoice.invoice_number[:18], dp_invoice=person_invoice
            )
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
    then posted. The run is paid once every item is; an item the gateway refused is kept with its reason and
    retried the next time the run is paid."""
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
            # a retry; everyone else in the run is still paid.
            PaymentRunItem.objects.filter(pk=item.pk).update(failure=str(exc)[:500])
    if not run.items.filter(paid_at__isnull=True).exists():
        PaymentRun.objects.filter(pk=run.pk, status=RunStatus.APPROVED).update(
            status=RunStatus.POSTED, posted_at=timezone.now()
        )
    run.refresh_from_db()
    return run


def _send_transfer(item: PaymentRunItem) -> str | None:
    """The Connect transfer's id, or None when the gateway refused it (the item keeps the reason)."""
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


def _credits(run: PaymentRun) -> list[bacs.Credit]:
    return [
        bacs.Credit(
            sort_code=item.sort_code,
            account_number=item.account_number,
            account_name=item.payee_name,
            amount_pence=item.amount_pence,
            reference=item.reference,
        )
        for item in run.items.filter(method=PayoutMethod.BACS).order_by("id")
    ]


def payment_run_bacs_file(run: PaymentRun) -> bytes:
    originator = bacs.Originator(**settings.BACS_ORIGINATOR)
    return bacs.standard18(
        originator=originator, credits=_credits(run), processing_day=run.run_date, serial=f"{run.pk % 1_000_000:06d}"
    )


def payment_run_csv(run: PaymentRun) -> bytes:
    return bacs.bulk_payment_csv(_credits(run), payment_date=run.run_date)
