"""Rule 15 as an accounting exercise: £300 a year of direct payment (£23.07 every four weeks); eight weeks of
scheduled spend is £46.15. Four instalments paid and nothing spent leave £92.28: £46.13 surplus."""

import datetime

import pytest

from budgets import payment_runs, services
from budgets.models import PaymentKind, ScheduledPayment
from ledger.models import Account, Transfer
from tests.budgets.test_payment_runs import set_up

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


def instalments(crew):
    return ScheduledPayment.objects.filter(budget=crew["budget"], kind=PaymentKind.DIRECT_PAYMENT).order_by("due_on")


def pay(crew, count):
    for payment in instalments(crew).filter(status="due")[:count]:
        services.scheduled_payment_pay(payment=payment, acting_user=crew["finance"])


def dp_balance(budget) -> int:
    return Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment").posted_balance


def test_surplus_is_offset_against_the_next_instalment_at_most_its_amount_once(agreed):
    agreed["budget"] = set_up(agreed)
    pay(agreed, 4)
    assert services.dp_surplus(agreed["budget"]) == 4 * 2307 - 30_000 * 8 // 52 == 4613
    payment = services.surplus_offset(budget=agreed["budget"])
    assert payment == instalments(agreed)[4] and payment.offset_pence == 2307  # capped at the instalment
    assert services.surplus_offset(budget=agreed["budget"]) is None  # once, and only the next instalment
    # The run sends nothing for a wholly offset instalment, but records it: Dr DP £23.07 / Cr ICB, then the
    # offset as its own posting, Dr ICB £23.07 / Cr DP.
    run, _ = payment_runs.payment_run_create(run_date=payment.due_on, acting_user=agreed["finance"])
    assert not run.items.filter(scheduled_payment__kind=PaymentKind.DIRECT_PAYMENT).exists()
    payment.refresh_from_db()
    assert payment.status == "paid"
    assert Transfer.objects.get(idempotency_key=f"{payment.transfer_key}:offset").amount == 2307
    assert dp_balance(agreed["budget"]) == 4 * 2307


def test_a_partial_offset_makes_the_run_pay_the_net_amount(agreed):
    agreed["budget"] = set_up(agreed)
    pay(agreed, 3)  # £69.21: £23.06 above eight weeks
    payment = services.surplus_offset(budget=agreed["budget"])
    assert payment.offset_pence == 3 * 2307 - 4615 == 2306
    run, _ = payment_runs.payment_run_create(run_date=payment.due_on, acting_user=agreed["finance"])
    item = run.items.get(scheduled_payment=payment)
    assert item.amount_pence == 2307 - 2306 == 1


def test_no_offset_at_or_below_the_threshold(agreed):
    agreed["budget"] = set_up(agreed)
    pay(agreed, 2)  # £46.14, below eight weeks (£46.15)
    assert services.dp_surplus(agreed["budget"]) == 0
    assert services.surplus_offset(budget=agreed["budget"]) is None
    assert not Transfer.objects.filter(code="surplus_offset").exists()
