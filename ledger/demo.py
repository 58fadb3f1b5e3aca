"""Demo ledger: the ICB's personal health budget pool, funded month by month this financial year.

Budgets (a later app) open their own accounts under `budget:<id>`; this seeds only the ICB-level pool.
"""

from __future__ import annotations

import datetime
import random

from django.utils import timezone

from ledger import services
from ledger.models import AccountKind


def seed(*, rng: random.Random, people: int, context: dict) -> None:
    allocation = services.account_open(
        code="icb:phb-allocation",
        name="ICB personal health budget allocation",
        kind=AccountKind.EQUITY,
        owner_ref="organisation:icb",
    )
    pool = services.account_open(
        code="icb:phb-pool",
        name="ICB personal health budget pool",
        kind=AccountKind.ASSET,
        owner_ref="organisation:icb",
        credits_must_not_exceed_debits=True,
    )
    today = timezone.localdate()
    year_start = datetime.date(today.year if today.month >= 4 else today.year - 1, 4, 1)
    month = year_start
    monthly = people * rng.randint(1_800, 2_400) * 100  # roughly £2,000 a person a month, in pence
    while month <= today:
        services.transfer_post(
            key=f"demo:allocation:{month:%Y-%m}",
            debit_account_id=pool.pk,
            credit_account_id=allocation.pk,
            amount=monthly,
            code="allocation",
            effective_date=month,
            description=f"Monthly PHB allocation {month:%B %Y}",
            acting_user=context.get("users", {}).get("finance_officer"),
        )
        month = (month + datetime.timedelta(days=32)).replace(day=1)
