"""Payments from local authorities towards the recharges for the integrated budgets they co-fund.

The ICB holds the pooled money and pays for everything; each quarter it asks every local authority for its share
of the spending (budgets/reports.py). What a local authority pays is recorded here against the quarter it pays
for: into the ICB's bank in the ledger (so the bank line matches it by reference), from
`icb:recharges-received`. The recharges report then shares it between that authority's budgets.
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Organisation, OrganisationKind
from budgets.ending import icb_bank_account
from budgets.models import FunderPayment
from budgets.reports import Quarter
from budgets.services import BudgetError
from config.formatting import format_date
from ledger import services as ledger
from ledger.models import Account, AccountKind

RECEIVED_CODE = "icb:recharges-received"
RECEIVED_TRANSFER_CODE = "la_recharge_paid"
MAX_PAYMENT_PENCE = 100_000_000_00  # £100m: well above any authority's quarter, well inside the ledger's range


def recharges_received_account() -> Account:
    return ledger.account_open(
        code=RECEIVED_CODE, name="Recharges received from local authorities", kind=AccountKind.EQUITY, owner_ref="icb"
    )


def funder_payment_record(
    *,
    icb: Organisation,
    local_authority: Organisation,
    quarter: Quarter,
    amount_pence: int,
    received_on: datetime.date,
    reference: str,
    key: str,
    acting_user,
) -> FunderPayment:
    """Record a local authority's payment for a quarter, once per key (a form posted twice records it once)."""
    if icb.kind != OrganisationKind.ICB:
        raise BudgetError("Choose the ICB the payment was made to")
    if local_authority.kind != OrganisationKind.LOCAL_AUTHORITY:
        raise BudgetError("Choose the local authority that paid")
    if not 0 < amount_pence <= MAX_PAYMENT_PENCE:
        raise BudgetError("The amount must be between 1p and £100,000,000.00")
    if received_on > timezone.localdate():
        raise BudgetError("The date received must be today or in the past")
    if received_on < quarter.start:
        first_day = format_date(quarter.start)
        raise BudgetError(f"The date received must be on or after the quarter's first day, {first_day}")
    reference = reference.strip()
    if not reference:
        raise BudgetError("Enter the reference the payment came with")
    existing = FunderPayment.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        moved = ledger.transfer_post(
            key=f"funder-payment:{key}",
            debit_account_id=icb_bank_account().pk,
            credit_account_id=recharges_received_account().pk,
            amount=amount_pence,
            code=RECEIVED_TRANSFER_CODE,
            effective_date=received_on,
            reference=reference,
            description=f"{local_authority.name}: recharges for {quarter.label}"[:300],
            acting_user=acting_user,
        )
        return FunderPayment.objects.create(
            icb=icb,
            local_authority=local_authority,
            quarter=quarter.code,
            amount_pence=amount_pence,
            received_on=received_on,
            reference=reference,
            transfer=moved.transfer,
            recorded_by=acting_user,
            idempotency_key=key,
        )


def funder_payment_reverse(*, payment: FunderPayment, reason: str, acting_user) -> FunderPayment:
    """Undo a payment recorded by mistake: the ledger gets its reversal, dated today (the original may be in a
    closed month), and the payment then counts in no recharge. It stays listed, marked reversed, with the reason."""
    reason = reason.strip()
    if not reason:
        raise BudgetError("Say why the payment is being reversed")
    with transaction.atomic():
        payment = FunderPayment.objects.select_for_update().get(pk=payment.pk)
        if payment.reversal_id is not None:
            raise BudgetError("This payment has already been reversed")
        undone = ledger.transfer_reverse(
            key=f"funder-payment-reversal:{payment.pk}",
            transfer=payment.transfer,
            description=f"Reversed: {reason}"[:300],
            acting_user=acting_user,
        )
        payment.reversal = undone.transfer
        payment.reversed_by = acting_user
        payment.reversed_at = timezone.now()
        payment.reversal_reason = reason[:500]
        payment.save(update_fields=["reversal", "reversed_by", "reversed_at", "reversal_reason"])
    return payment


def payments_for(quarter: Quarter, *, icb_ids=None):
    """The quarter's payments, oldest first, with their authority and ICB."""
    payments = FunderPayment.objects.filter(quarter=quarter.code).select_related(
        "icb", "local_authority", "reversed_by"
    )
    if icb_ids is not None:
        payments = payments.filter(icb_id__in=icb_ids)
    return payments.order_by("received_on", "id")
