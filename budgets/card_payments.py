"""Card payments in from the person (their assessed contribution, or money a recovery notice asks back), and
Stripe's webhooks about them (DESIGN.md §3 "Money movement and Stripe").

What a person may pay is what they owe (`card_payments_due`). A top-up of their own money is not taken: money in
from anyone but the funders or the recorded contribution is mixing (rule 8), so the budget would have to keep it
apart and give it back. A surplus is asked back by a recovery notice after it is offset (rule 15), and paid as a
recovery. Payments made for those purposes before stay in the ledger under their own accounts.

The life of a payment: `card_payment_start` records it and creates a PaymentIntent; the person's browser turns
their card into a token at Stripe (card details never reach our server) and `card_payment_confirm` charges it.
Nothing is credited then, whatever the browser or the confirm call says: the money reaches the ledger only when
Stripe's signed `payment_intent.succeeded` webhook arrives (`stripe_event_handle`), exactly once however often and
in whatever order Stripe delivers it. Finance can refund (`card_payment_refund`), which posts the reverse.

Ledger: Stripe holds the money for the ICB, so a payment debits the global asset account `icb:stripe-balance`
and credits the budget's `card:<purpose>` equity account (both opened on first use).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from brokerage.models import CarePlan, PlanStatus
from budgets import payments
from budgets.models import (
    Addressee,
    Budget,
    CardPayment,
    CardPaymentPurpose,
    CardPaymentStatus,
    Recovery,
    RecoveryStatus,
    StripeEvent,
)
from budgets.services import BudgetError, budget_account, pence
from config.formatting import format_pence
from ledger import services as ledger
from ledger.exceptions import LedgerError
from ledger.models import Account, AccountKind, Transfer

logger = logging.getLogger(__name__)

MAX_CARD_PENCE = 10_000_00
LIVE_STATUSES = (PlanStatus.SETTING_UP, PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.STOPPING)
STRIPE_BALANCE_CODE = "icb:stripe-balance"
LEDGER_CODE = "card_payment"
REFUND_CODE = "card_refund"

AMOUNT_RANGE = "The amount must be between 1p and £10,000.00"
CHOOSE_PURPOSE = "Choose what the payment is for"
PLAN_NOT_LIVE = "Card payments cannot be taken while the plan is {status}"
KEY_FOR_ANOTHER_BUDGET = "This form was already used for another budget. Start again."
NEEDS_JAVASCRIPT = "Paying by card needs JavaScript switched on in your browser"
NEEDS_AUTHENTICATION = payments.decline_message("authentication_required")
REFUND_NOT_PAID = "Only a payment that has been received can be refunded"
REFUND_TOO_MUCH = "You can refund at most {left}, which is what is left of this payment"
REFUND_ALREADY_MADE = "This refund has already been made"
REFUND_RANGE = "The refund must be at least 1p"
NOT_DUE = {
    CardPaymentPurpose.CONTRIBUTION: "There is no assessed contribution left to pay for this budget",
    CardPaymentPurpose.RECOVERY: "There is no money asked back that can be paid by card",
    CardPaymentPurpose.TOP_UP: "Your own money cannot be added to the budget: it has to be kept apart from it",
    CardPaymentPurpose.SURPLUS: "A surplus is paid back when a recovery notice asks for it",
}
OVER_DUE = {
    CardPaymentPurpose.CONTRIBUTION: "Your contribution still to pay is {due}: you can pay at most that",
    CardPaymentPurpose.RECOVERY: "You have {due} to pay back: you can pay at most that",
}


class CardPaymentError(BudgetError):
    """A card payment cannot be started, confirmed or refunded as asked; nothing was charged or posted."""


# --- Starting and confirming (the person's pages) ---------------------------------------------------------------


def card_payment_start(*, budget: Budget, purpose: str, amount_pence: int, acting_user, key: str) -> CardPayment:
    """Record a card payment and create its PaymentIntent; the same `key` (the one-time form key) gives the same
    payment, so a form posted twice starts one payment. The row is committed before Stripe is called and the
    intent is created with the row's own idempotency key, so a retry after a failure never makes a second one."""
    if purpose not in CardPaymentPurpose.values:
        raise CardPaymentError(CHOOSE_PURPOSE)
    if isinstance(amount_pence, bool) or not isinstance(amount_pence, int) or not 0 < amount_pence <= MAX_CARD_PENCE:
        raise CardPaymentError(AMOUNT_RANGE)
    status = CarePlan.objects.filter(pk=budget.plan_id).values_list("status", flat=True).get()  # never a stale copy
    if status not in LIVE_STATUSES:
        raise CardPaymentError(PLAN_NOT_LIVE.format(status=PlanStatus(status).label.lower()))
    payment = CardPayment.objects.filter(idempotency_key=key).first()
    if payment is None:  # a form posted again gets its payment back, even if what it paid is no longer owed
        due = card_payments_due(budget).get(purpose, 0)
        if not due:
            raise CardPaymentError(NOT_DUE[purpose])
        if amount_pence > due:
            raise CardPaymentError(OVER_DUE[purpose].format(due=format_pence(due)))
    if payment is None:
        try:
            with transaction.atomic():
                payment = CardPayment.objects.create(
                    budget=budget, purpose=purpose, amount_pence=amount_pence, paid_by=acting_user, idempotency_key=key
                )
        except IntegrityError:  # the same form, posted twice at once: the other request made it
            payment = CardPayment.objects.get(idempotency_key=key)
    if payment.budget_id != budget.pk:
        raise CardPaymentError(KEY_FOR_ANOTHER_BUDGET)
    if not payment.intent_id:
        intent = payments.gateway().create_intent(
            amount_pence=payment.amount_pence,
            description=f"Personal health budget: {payment.get_purpose_display()}",
            metadata={"budget": str(budget.pk), "card_payment": str(payment.pk), "purpose": payment.purpose},
            idempotency_key=payment.ledger_key,
        )
        # Only the first intent id sticks (a server that ignores idempotency keys could answer twice).
        CardPayment.objects.filter(pk=payment.pk, intent_id="").update(intent_id=intent.id)
        payment.refresh_from_db()
    return payment


def card_payment_confirm(*, payment: CardPayment, token_or_payment_method: str, acting_user) -> CardPayment:
    """Charge the card token made in the person's browser. A decline marks the payment failed with a message the
    person can act on; anything else leaves it processing until Stripe's webhook says the money arrived.

    The row stays locked while Stripe is called, so the same card form posted twice charges once, and a webhook
    that arrives before this commits waits for it rather than being overwritten by it."""
    if not token_or_payment_method:
        raise CardPaymentError(NEEDS_JAVASCRIPT)
    with transaction.atomic():
        locked = CardPayment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != CardPaymentStatus.STARTED:
            return locked  # a second press of "Pay", or the webhook got here first
        if not locked.intent_id:
            raise CardPaymentError(payments.UNREACHABLE)
        gateway = payments.gateway()
        try:
            intent = gateway.confirm_intent(
                intent_id=locked.intent_id,
                card_token=token_or_payment_method,
                idempotency_key=f"{locked.ledger_key}:confirm:{token_or_payment_method}",
            )
        except payments.PaymentDeclined as exc:
            _mark_failed(locked, exc.message)
            return locked
        except payments.GatewayError:
            # The charge may have gone through before the connection failed: ask Stripe what happened.
            try:
                intent = gateway.retrieve_intent(locked.intent_id)
            except payments.GatewayError:
                intent = None
            if intent is None or intent.status not in ("processing", "succeeded"):
                raise
        if intent.status in ("processing", "succeeded"):
            locked.status = CardPaymentStatus.PROCESSING
            locked.save(update_fields=["status"])
        else:  # requires_action: 3-D Secure, which this card form cannot complete
            _mark_failed(locked, NEEDS_AUTHENTICATION)
    return locked


def _mark_failed(payment: CardPayment, message: str) -> None:
    payment.status = CardPaymentStatus.FAILED
    payment.failure = message
    payment.save(update_fields=["status", "failure"])


# --- Webhooks ---------------------------------------------------------------------------------------------------

MAX_ATTEMPTS = 5
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock


def stripe_event_handle(event: dict[str, Any]) -> dict[str, Any]:
    """Apply one verified Stripe event exactly once and return its result.

    The event id is stored (UNIQUE) in the same transaction as the effect, so of several deliveries of one event,
    at once or days apart, one has the effect and every other one gets the first result back. Unknown types and
    events about intents this service never made are stored and acknowledged, so Stripe stops resending them."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _handle_once(event)
        except (OperationalError, LedgerError) as exc:  # the ledger wraps PostgreSQL's errors in its own
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or connection.in_atomic_block or attempt == MAX_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def _handle_once(event: dict[str, Any]) -> dict[str, Any]:
    event_id, event_type = str(event["id"]), str(event.get("type", ""))
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint, so only a clash on event_id counts as a duplicate
                stored = StripeEvent.objects.create(event_id=event_id, type=event_type[:80])
        except IntegrityError:
            # Another delivery of this event committed first (the INSERT waited for it): answer with its result.
            return StripeEvent.objects.get(event_id=event_id).result
        result = _effect(event_type, (event.get("data") or {}).get("object") or {})
        stored.result = result
        stored.save(update_fields=["result"])
    return result


def _effect(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    if event_type not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return {"ignored": True}
    payment = _payment_for(obj)
    if payment is None:
        return {"ignored": True, "reason": "no card payment for this payment intent"}
    if event_type == "payment_intent.succeeded":
        return _succeeded(payment, obj)
    return _failed(payment, obj)


def _payment_for(obj: dict[str, Any]) -> CardPayment | None:
    """The payment this intent belongs to, locked. By intent id; failing that by our metadata, for an intent whose
    id was never saved (the process stopped between Stripe's answer and our write)."""
    intent_id = str(obj.get("id") or "")
    if not intent_id:
        return None
    payment = CardPayment.objects.select_for_update().filter(intent_id=intent_id).first()
    if payment is not None:
        return payment
    metadata = obj.get("metadata") or {}
    if not str(metadata.get("card_payment", "")).isdigit():
        return None
    payment = (
        CardPayment.objects.select_for_update()
        .filter(pk=int(metadata["card_payment"]), budget_id=str(metadata.get("budget", "")), intent_id="")
        .first()
        if str(metadata.get("budget", "")).isdigit()
        else None
    )
    if payment is not None:
        payment.intent_id = intent_id
        payment.save(update_fields=["intent_id"])
    return payment


def _succeeded(payment: CardPayment, obj: dict[str, Any]) -> dict[str, Any]:
    result = {"card_payment": payment.pk}
    if obj.get("amount") != payment.amount_pence or str(obj.get("currency", "gbp")).lower() != payments.CURRENCY:
        # Never credit a different sum than the one the person agreed to: leave it for finance to look at.
        logger.error("Card payment %s: Stripe reports %s %s", payment.pk, obj.get("amount"), obj.get("currency"))
        return {**result, "ignored": True, "reason": "amount or currency differs from the card payment"}
    if payment.status in (CardPaymentStatus.SUCCEEDED, CardPaymentStatus.REFUNDED):
        return {**result, "status": payment.status, "credited_pence": 0}
    # A success after a failure still credits: Stripe does not promise to deliver events in order.
    budget = payment.budget
    ledger.transfer_post(
        key=payment.ledger_key,
        debit_account_id=stripe_balance_account().pk,
        credit_account_id=card_account(budget, payment.purpose).pk,
        amount=payment.amount_pence,
        code=LEDGER_CODE,
        effective_date=timezone.localdate(),
        reference=budget.owner_ref,
        description=f"Paid by card: {payment.get_purpose_display()} (card payment {payment.pk})",
        acting_user=payment.paid_by,
    )
    payment.status = CardPaymentStatus.SUCCEEDED
    payment.failure = ""
    payment.succeeded_at = timezone.now()
    payment.save(update_fields=["status", "failure", "succeeded_at"])
    # --- Ending a budget: a card repayment of a recovery notice is applied to it (budgets/ending.py) ---
    if payment.purpose == CardPaymentPurpose.RECOVERY:
        from budgets.ending import recovery_card_paid

        result["applied_to_recovery_pence"] = recovery_card_paid(payment)
    # --- end ending ---
    return {**result, "status": payment.status, "credited_pence": payment.amount_pence}


def _failed(payment: CardPayment, obj: dict[str, Any]) -> dict[str, Any]:
    result = {"card_payment": payment.pk}
    if payment.status in (CardPaymentStatus.SUCCEEDED, CardPaymentStatus.REFUNDED):
        # A late failure (an earlier attempt on the same intent) never undoes money that arrived.
        return {**result, "status": payment.status, "ignored": True, "reason": "already paid"}
    error = obj.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code")
    _mark_failed(payment, payments.decline_message(code))
    return {**result, "status": payment.status}


def card_payments_due(budget: Budget) -> dict[str, int]:
    """What the person may pay by card for this budget, by purpose, with the most they owe: the assessed
    contribution for the budget's year less what was paid by card (net of refunds) or into the dedicated account
    as the contribution; and what open recovery notices addressed to them still ask back. Only purposes with
    something owed are present, in the order the form offers them."""
    due = {}
    contribution = pence(CarePlan.objects.get(pk=budget.plan_id).funding_contribution)
    if contribution > 0:
        paid = sum(
            held.account.credits_posted - held.account.debits_posted
            for held in budget.accounts.filter(
                purpose__in=[f"card:{CardPaymentPurpose.CONTRIBUTION}", "money-in:contribution"]
            ).select_related("account")
        )
        if contribution > paid:
            due[CardPaymentPurpose.CONTRIBUTION] = contribution - paid
    owed = sum(
        recovery.outstanding_pence
        for recovery in Recovery.objects.filter(budget=budget, status=RecoveryStatus.ISSUED).exclude(
            addressee=Addressee.PERSONAL_REPRESENTATIVES
        )
    )
    if owed > 0:
        due[CardPaymentPurpose.RECOVERY] = owed
    return due


# --- Ledger accounts ---------------------------------------------------------------------------------------------


def stripe_balance_account() -> Account:
    """What Stripe holds for the ICB: card payments in, refunds and payouts out."""
    return ledger.account_open(code=STRIPE_BALANCE_CODE, name="Stripe balance", kind=AccountKind.ASSET, owner_ref="icb")


def card_account(budget: Budget, purpose: str) -> Account:
    """The budget's account for money paid in by card for `purpose`, opened on first use."""
    return budget_account(
        budget, f"card:{purpose}", f"Paid by card: {CardPaymentPurpose(purpose).label}", AccountKind.EQUITY
    )


# --- Refunds (finance) -------------------------------------------------------------------------------------------


def refunds_made(payment: CardPayment) -> int:
    """How many refunds this payment has had; the next one is number refunds_made + 1."""
    return Transfer.objects.filter(idempotency_key__startswith=f"{payment.ledger_key}:refund:").count()


def card_payment_refund(
    *, payment: CardPayment, amount_pence: int, acting_user, refund_number: int | None = None
) -> CardPayment:
    """Refund part or all of a received payment through Stripe and post the reverse transfer.

    Refund n of a payment is sent and posted with the key `card-payment:<id>:refund:<n>`. The form carries n, so
    a refund posted twice (a double click, a retry after a timeout) is made once; without it, n is the next
    number. The row stays locked across the Stripe call so two refunds of one payment cannot both pass the
    "no more than was paid" check."""
    if isinstance(amount_pence, bool) or not isinstance(amount_pence, int) or amount_pence < 1:
        raise CardPaymentError(REFUND_RANGE)
    with transaction.atomic():
        locked = CardPayment.objects.select_for_update().select_related("budget").get(pk=payment.pk)
        made = refunds_made(locked)
        number = made + 1 if refund_number is None else refund_number
        if number <= made:
            raise CardPaymentError(REFUND_ALREADY_MADE)
        if number != made + 1:
            raise CardPaymentError("Reload the page and try the refund again")
        if locked.status not in (CardPaymentStatus.SUCCEEDED, CardPaymentStatus.REFUNDED):
            raise CardPaymentError(REFUND_NOT_PAID)
        left = locked.amount_pence - locked.refunded_pence
        if amount_pence > left:
            raise CardPaymentError(REFUND_TOO_MUCH.format(left=format_pence(left)))
        key = f"{locked.ledger_key}:refund:{number}"
        payments.gateway().refund(intent_id=locked.intent_id, amount_pence=amount_pence, idempotency_key=key)
        budget = locked.budget
        if locked.purpose == CardPaymentPurpose.RECOVERY:  # money refunded is owed again on the notices it paid
            from budgets.ending import recovery_card_refunded

            recovery_card_refunded(locked, amount_pence=amount_pence, key=key, acting_user=acting_user)
        ledger.transfer_post(
            key=key,
            debit_account_id=card_account(budget, locked.purpose).pk,
            credit_account_id=stripe_balance_account().pk,
            amount=amount_pence,
            code=REFUND_CODE,
            effective_date=timezone.localdate(),
            reference=budget.owner_ref,
            description=f"Refund {number} of card payment {locked.pk}",
            acting_user=acting_user,
        )
        locked.refunded_pence += amount_pence
        if locked.refunded_pence == locked.amount_pence:
            locked.status = CardPaymentStatus.REFUNDED
        locked.save(update_fields=["refunded_pence", "status"])
    return locked
