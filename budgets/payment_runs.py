"""Payment runs: collect what is due, approve (never by the author), post each payment exactly once, and
produce the BACS Standard 18 file and bank CSV. Posting uses each scheduled payment's own ledger key, so a run
killed halfway and started again pays nothing twice."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokerage.models import PlanStatus
from budgets import bacs
from budgets.models import (
    DirectPaymentAccount,
    HolderBankAccount,
    PaymentKind,
    PaymentRun,
    PaymentRunItem,
    PaymentStatus,
    RunStatus,
    ScheduledPayment,
)
from budgets.services import BudgetError, scheduled_payment_pay

NOT_THE_AUTHOR = "You created this payment run, so someone else must approve it"


def _payee(payment: ScheduledPayment):
    if payment.kind == PaymentKind.DIRECT_PAYMENT:
        return DirectPaymentAccount.objects.filter(budget_id=payment.budget_id).first()
    return HolderBankAccount.objects.filter(organisation_id=payment.holder_id).first()


def payment_run_create(*, run_date: datetime.date, acting_user) -> tuple[PaymentRun, list[ScheduledPayment]]:
    """Gather every due payment of a live budget not yet in a run. Returns the run and what was left out
    because the payee has no bank details yet."""
    with transaction.atomic():
        # Locked, and skipped if another run is gathering them right now: a payment joins one run only.
        due = (
            ScheduledPayment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status=PaymentStatus.DUE,
                due_on__lte=run_date,
                budget__plan__status__in=[PlanStatus.SETTING_UP, PlanStatus.ACTIVE],
            )
            .exclude(pk__in=PaymentRunItem.objects.values("scheduled_payment_id"))
            .order_by("due_on", "id")
        )
        run = PaymentRun.objects.create(run_date=run_date, author=acting_user)
        left_out = []
        for payment in due:
            net = payment.amount_pence - payment.offset_pence
            if net == 0:  # wholly offset by surplus: nothing to send, but the instalment is still recorded
                scheduled_payment_pay(payment=payment, acting_user=acting_user)
                continue
            payee = _payee(payment)
            if payee is None:
                left_out.append(payment)
                continue
            PaymentRunItem.objects.create(
                run=run,
                scheduled_payment=payment,
                amount_pence=net,
                payee_name=payee.account_name,
                sort_code=payee.sort_code,
                account_number=payee.account_number,
                reference=f"PHB {payment.budget_id} {payment.due_on:%d%m%y}",
            )
    return run, left_out


def payment_run_approve(*, run: PaymentRun, acting_user) -> PaymentRun:
    if run.author_id == acting_user.pk:
        raise BudgetError(NOT_THE_AUTHOR)
    if not acting_user.has_role("finance_manager", "finance_officer"):
        raise BudgetError("Only finance staff can approve a payment run")
    with transaction.atomic():
        updated = PaymentRun.objects.filter(pk=run.pk, status=RunStatus.DRAFT).update(
            status=RunStatus.APPROVED, approved_by=acting_user, approved_at=timezone.now()
        )
        if not updated:
            raise BudgetError("This payment run has already been approved")
    run.refresh_from_db()
    return run


def payment_run_post(*, run: PaymentRun, acting_user) -> PaymentRun:
    """Post every item; each is its own transaction, keyed by its scheduled payment, so re-running is safe."""
    run.refresh_from_db()
    if run.status == RunStatus.DRAFT:
        raise BudgetError("Approve the payment run before paying it")
    for item in run.items.select_related("scheduled_payment"):
        scheduled_payment_pay(payment=item.scheduled_payment, acting_user=acting_user)
    PaymentRun.objects.filter(pk=run.pk, status=RunStatus.APPROVED).update(
        status=RunStatus.POSTED, posted_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def _credits(run: PaymentRun) -> list[bacs.Credit]:
    return [
        bacs.Credit(
            sort_code=item.sort_code,
            account_number=item.account_number,
            account_name=item.payee_name,
            amount_pence=item.amount_pence,
            reference=item.reference,
        )
        for item in run.items.order_by("id")
    ]


def payment_run_bacs_file(run: PaymentRun) -> bytes:
    originator = bacs.Originator(**settings.BACS_ORIGINATOR)
    return bacs.standard18(
        originator=originator, credits=_credits(run), processing_day=run.run_date, serial=f"{run.pk % 1_000_000:06d}"
    )


def payment_run_csv(run: PaymentRun) -> bytes:
    return bacs.bulk_payment_csv(_credits(run), payment_date=run.run_date)
