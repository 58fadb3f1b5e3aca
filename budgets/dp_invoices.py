"""The person pays a provider's invoice from their direct payment.

Confirming reserves the money in the ledger at once (a pending transfer from the direct-payment account to the
plan line), so it cannot be spent twice. A provider with a Stripe connected account is then paid by a Connect
transfer carrying our own idempotency key, after the reservation is committed; anyone else is paid by BACS in
the next payment run. Either way the reservation is posted when the money has gone, or released if it cannot go.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from brokerage.models import ManagementType
from budgets import payments
from budgets.models import BudgetAccount, BudgetLine, DirectPaymentInvoice, DirectPaymentInvoiceStatus, PayoutMethod
from budgets.services import BudgetError
from budgets.spending import CONNECTED_REFUSED, NOT_ENOUGH, blocked_connection, check_spend
from config.formatting import format_pence
from ledger import services as ledger
from ledger.exceptions import InsufficientFunds
from ledger.models import Transfer

NO_PAYEE_DETAILS = "This provider has no bank details or connected account yet, so it cannot be paid from here"


def dp_invoice_check(*, budget, line: BudgetLine, provider, invoice_number: str, amount_pence: int) -> str:
    """Whether the invoice can be paid: raises BudgetError saying why not, or returns how it would be paid. The
    person's form asks before its check step, so a refusal shows where they typed, not after they confirmed."""
    check_spend(
        budget, line, amount_pence, ManagementType.DIRECT_PAYMENT, "Choose one of this budget's direct-payment lines"
    )
    # Rule 12 holds when paying too: the line's kind of service may need a registered provider.
    registration = line.plan_line.category.requires_registration
    if not provider.active or (registration and not provider.holds_registration(registration)):
        raise BudgetError(
            f"{provider.name} cannot be paid for “{line.plan_line.description}”: it needs a provider with a "
            f"{line.plan_line.category.get_requires_registration_display()} registration number"
            if provider.active
            else f"{provider.name} is no longer in the directory, so it cannot be paid"
        )
    if blocked_connection(budget, provider):
        raise BudgetError(CONNECTED_REFUSED)
    if provider.stripe_account_id:
        method = PayoutMethod.CONNECT
    elif provider.sort_code and provider.account_number:
        method = PayoutMethod.BACS
    else:
        raise BudgetError(NO_PAYEE_DETAILS)
    if DirectPaymentInvoice.objects.filter(provider=provider, invoice_number=invoice_number).exists():
        raise BudgetError(f"Invoice {invoice_number} from {provider.name} has already been paid or is being paid")
    held = BudgetAccount.objects.select_related("account").get(budget=budget, purpose="held:direct-payment").account
    if amount_pence > held.available_balance:  # the ledger refuses it too when it is posted; this says so first
        raise BudgetError(f"{NOT_ENOUGH}: {format_pence(max(held.available_balance, 0))} is free to spend")
    return method


def dp_invoice_pay(
    *, budget, line: BudgetLine, provider, invoice_number: str, amount_pence: int, key: str, acting_user
) -> DirectPaymentInvoice:
    existing = DirectPaymentInvoice.objects.filter(idempotency_key=key, budget=budget).first()
    if existing is not None:  # the same confirmation sent twice (a double click): one payment
        return existing
    method = dp_invoice_check(
        budget=budget, line=line, provider=provider, invoice_number=invoice_number, amount_pence=amount_pence
    )
    held = BudgetAccount.objects.get(budget=budget, purpose="held:direct-payment").account_id
    with transaction.atomic():
        invoice = DirectPaymentInvoice.objects.create(
            budget=budget,
            budget_line=line,
            provider=provider,
            invoice_number=invoice_number,
            amount_pence=amount_pence,
            method=method,
            status=DirectPaymentInvoiceStatus.SENDING
            if method == PayoutMethod.CONNECT
            else DirectPaymentInvoiceStatus.QUEUED,
            idempotency_key=key,
            recorded_by=acting_user,
        )
        try:
            ledger.transfer_reserve(
                key=f"{invoice.ledger_key}:reserve",
                debit_account_id=line.spend_account_id,
                credit_account_id=held,
                amount=amount_pence,
                code="dp_invoice",
                effective_date=timezone.localdate(),
                reference=f"plan-line:{line.plan_line_id}",
                description=f"Invoice {invoice_number} from {provider.name}"[:300],
                acting_user=acting_user,
            )
        except InsufficientFunds as exc:
            raise BudgetError(NOT_ENOUGH) from exc
    if method == PayoutMethod.CONNECT:
        dp_invoice_send(invoice=invoice, acting_user=acting_user)
        invoice.refresh_from_db()
    return invoice


def dp_invoice_send(*, invoice: DirectPaymentInvoice, acting_user) -> None:
    """Send the Connect transfer (again, safely: same key, same transfer) and settle the reservation."""
    try:
        transfer = payments.gateway().transfer(
            destination_account=invoice.provider.stripe_account_id,
            amount_pence=invoice.amount_pence,
            metadata={"dp_invoice": str(invoice.pk), "invoice_number": invoice.invoice_number},
            idempotency_key=invoice.ledger_key,
        )
    except payments.PaymentError as exc:
        with transaction.atomic():
            ledger.pending_void(
                key=f"{invoice.ledger_key}:release", pending=_reservation(invoice), acting_user=acting_user
            )
            DirectPaymentInvoice.objects.filter(pk=invoice.pk).update(
                status=DirectPaymentInvoiceStatus.FAILED, failure=str(exc)[:500]
            )
        return
    DirectPaymentInvoice.objects.filter(pk=invoice.pk).update(gateway_transfer_id=transfer.id)
    dp_invoice_settle(invoice=invoice, acting_user=acting_user)


NO_LONGER_APPROVED = "Not paid: {reason}. The money is back in the direct-payment account"


def dp_invoice_release(*, invoice: DirectPaymentInvoice, reason: str, acting_user) -> None:
    """An invoice waiting for a payment run that can no longer be paid: the reservation is released (the money is
    free to spend again) and the invoice is marked failed with the reason, once."""
    with transaction.atomic():
        invoice = DirectPaymentInvoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != DirectPaymentInvoiceStatus.QUEUED:
            return
        ledger.pending_void(key=f"{invoice.ledger_key}:release", pending=_reservation(invoice), acting_user=acting_user)
        invoice.status = DirectPaymentInvoiceStatus.FAILED
        invoice.failure = NO_LONGER_APPROVED.format(reason=reason)[:500]
        invoice.save(update_fields=["status", "failure"])


def dp_invoice_settle(*, invoice: DirectPaymentInvoice, acting_user) -> DirectPaymentInvoice:
    """The money has gone: post the reservation, once."""
    with transaction.atomic():
        invoice = DirectPaymentInvoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status == DirectPaymentInvoiceStatus.PAID:
            return invoice
        ledger.pending_post(key=f"{invoice.ledger_key}:paid", pending=_reservation(invoice), acting_user=acting_user)
        invoice.status = DirectPaymentInvoiceStatus.PAID
        invoice.save(update_fields=["status"])
    return invoice


def _reservation(invoice: DirectPaymentInvoice) -> Transfer:
    return Transfer.objects.get(idempotency_key=f"{invoice.ledger_key}:reserve")
