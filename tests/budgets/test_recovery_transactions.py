"""A recovery notice on the person's transactions and statement, as a patient would understand it: the notice asking
for money back is information (nothing in or out), paying it back is money out once, however it was paid (by card
the ledger takes two steps, one of them its own bookkeeping), a refund of a card repayment is money back in, and
what is written off or withdrawn is information again. The statement's figures still add up."""

from __future__ import annotations

import datetime
import html
import io
import re
import uuid

import pypdf
import pytest
import time_machine

from accounts.roles import Role
from budgets import card_payments, ending, person_selectors, statements
from budgets.models import Addressee, CardPayment, CardPaymentPurpose, CardPaymentStatus, Recovery
from config.formatting import format_pence
from ledger.models import Account, Transfer
from ledger.verification import ledger_verify
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import issued_recovery, user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)
NOW = datetime.datetime(2026, 12, 20, 10, 0)
TODAY = NOW.date()
STEPS = ["recovery_claim", "card_payment", "recovery_repayment"]


@pytest.fixture
def live(agreed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    with time_machine.travel(NOW, tick=False):
        budget = budget_in_use(agreed, start=START)
        patient = user_with_role(Role.PATIENT)
        agreed["person"].user = patient
        agreed["person"].save(update_fields=["user"])
        agreed.update(
            budget=budget,
            patient=patient,
            manager=user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"]),
        )
        yield agreed


def notice(crew, amount: int, *, from_balance: bool = True) -> Recovery:
    return issued_recovery(
        budget=crew["budget"],
        reasons="Money has built up in the account beyond what the plan needs.",
        amount_pence=amount,
        deadline=datetime.date(2027, 1, 31),
        addressee=Addressee.PERSON,
        addressee_name="Joan Robson",
        acting_user=crew["finance"],
        from_balance=from_balance,
        approved_by=crew["manager"],
    )


def paid_by_card(crew, amount: int) -> CardPayment:
    """A card payment for a recovery, confirmed by Stripe's webhook: the money reaches the ledger and the notice."""
    payment = CardPayment.objects.create(
        budget=crew["budget"],
        purpose=CardPaymentPurpose.RECOVERY,
        amount_pence=amount,
        status=CardPaymentStatus.PROCESSING,
        intent_id=f"pi_{uuid.uuid4().hex[:20]}",
        idempotency_key=uuid.uuid4().hex,
        paid_by=crew["patient"],
    )
    event = {
        "id": f"evt_{uuid.uuid4().hex[:12]}",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": payment.intent_id, "amount": amount, "currency": "gbp"}},
    }
    card_payments.stripe_event_handle(event)
    payment.refresh_from_db()
    return payment


def recovery_rows(budget) -> list[tuple[str, int, int]]:
    """The person's rows about money asked back, oldest first (instalments and spending left aside)."""
    rows = person_selectors.describe(budget, person_selectors.transactions(budget).order_by("effective_date", "id"))
    about = ("asked back", "Paid back", "Refunded", "No longer")
    return [
        (row.description, row.money_in, row.money_out) for row in rows if any(word in row.description for word in about)
    ]


def test_a_recovery_repaid_by_card_shows_the_notice_as_information_and_the_payment_once(live, client):
    budget = live["budget"]
    recovery = notice(live, 3000, from_balance=False)  # spent on something outside the plan
    paid_by_card(live, 3000)
    recovery.refresh_from_db()
    assert recovery.status == "settled"
    # The ledger took three steps (the claim, the card payment in, the repayment moving it on)...
    steps = Transfer.objects.filter(reference=budget.owner_ref, code__in=STEPS).order_by("id")
    assert list(steps.values_list("code", flat=True)) == ["recovery_claim", "card_payment", "recovery_repayment"]
    # ...the person reads two lines: what was asked back, for information, and what they paid, once.
    assert recovery_rows(budget) == [
        (f"Money asked back: £30.00 (recovery notice {recovery.pk})", 0, 0),
        ("Paid back £30.00 by card", 0, 3000),
    ]

    client.force_login(live["patient"])
    page = html.unescape(client.get(f"/my/budgets/{budget.pk}/transactions/").content.decode())
    assert page.count("Paid back £30.00 by card") == 1
    assert f"Money asked back: £30.00 (recovery notice {recovery.pk})" in page
    assert "paid back by card (card payment" not in page and "Paid by card: Money asked back" not in page
    assert re.search(r"<title>\s*Transactions \W", page)  # the page's title, not a table
    assert ledger_verify().ok


def test_paying_back_by_bank_a_write_off_and_a_withdrawal_read_as_a_person_would(live):
    budget = live["budget"]
    repaid = notice(live, 2000, from_balance=False)
    ending.recovery_repaid(recovery=repaid, amount_pence=1500, key="bank-1", acting_user=live["finance"], method="bank")
    ending.recovery_write_off(recovery=repaid, amount_pence=500, reasons="Bank charges", acting_user=live["manager"])
    withdrawn = notice(live, 1000)  # from the direct-payment account's balance
    ending.recovery_reconsider(recovery=withdrawn, evidence="I did not spend it", acting_user=live["patient"])
    ending.recovery_decide(
        recovery=withdrawn, outcome="withdraw", reasons="Receipts received", acting_user=live["manager"]
    )
    assert recovery_rows(budget) == [
        (f"Money asked back: £20.00 (recovery notice {repaid.pk})", 0, 0),
        (f"Paid back £15.00 by bank transfer (recovery notice {repaid.pk})", 0, 1500),
        (f"No longer asked back: £5.00 (recovery notice {repaid.pk}, written off)", 0, 0),
        # Asked back from the account's balance: out of it when asked for, back in when withdrawn.
        (f"Money asked back from the account: £10.00 (recovery notice {withdrawn.pk})", 0, 1000),
        (f"No longer asked back: £10.00 (recovery notice {withdrawn.pk} withdrawn after reconsideration)", 1000, 0),
    ]


def test_a_notice_from_the_balance_is_money_out_once_when_asked_for_not_again_when_paid(live):
    budget = live["budget"]
    recovery = notice(live, 1200)  # from the direct-payment account's balance
    ending.recovery_repaid(
        recovery=recovery, amount_pence=1200, key="bank-2", acting_user=live["finance"], method="bank"
    )
    assert recovery_rows(budget) == [
        (f"Money asked back from the account: £12.00 (recovery notice {recovery.pk})", 0, 1200),
        (f"Paid back £12.00 by bank transfer (recovery notice {recovery.pk})", 0, 0),
    ]


def test_a_refunded_card_repayment_is_money_back_in_and_the_ledgers_own_step_is_not_shown(live, fake_payments):
    budget = live["budget"]
    recovery = notice(live, 3000, from_balance=False)
    payment = card_payments.card_payment_start(
        budget=budget, purpose="recovery", amount_pence=3000, acting_user=live["patient"], key="repay"
    )
    card_payments.card_payment_confirm(payment=payment, token_or_payment_method="tok_visa", acting_user=live["patient"])
    [event] = fake_payments.event_of_type("payment_intent.succeeded")
    card_payments.stripe_event_handle(event)
    card_payments.card_payment_refund(
        payment=CardPayment.objects.get(pk=payment.pk), amount_pence=1000, acting_user=live["finance"]
    )
    recovery.refresh_from_db()
    assert recovery.outstanding_pence == 1000  # owed again
    assert Transfer.objects.filter(code=ending.RECOVERY_REFUND_CODE).count() == 1  # in the ledger...
    assert recovery_rows(budget) == [  # ...but not a line of its own for the person
        (f"Money asked back: £30.00 (recovery notice {recovery.pk})", 0, 0),
        ("Paid back £30.00 by card", 0, 3000),
        ("Refunded £10.00 to your card (money you paid back)", 1000, 0),
    ]
    # The page's count and its pages leave the ledger's own steps out too.
    shown = person_selectors.transactions(budget)
    assert not shown.filter(code__in=[ending.RECOVERY_REFUND_CODE, "recovery_repayment"]).exists()


def test_the_statement_shows_the_same_two_lines_and_its_figures_still_add_up(live):
    budget = live["budget"]
    recovery = notice(live, 3000, from_balance=False)
    paid_by_card(live, 3000)
    data = statements.statement_data(budget, START, TODAY)
    rows = [(row.description, row.money_in, row.money_out) for row in data.transactions]
    assert (f"Money asked back: £30.00 (recovery notice {recovery.pk})", 0, 0) in rows
    assert [row for row in rows if "by card" in row[0]] == [("Paid back £30.00 by card", 0, 3000)]
    assert data.money_in_total == sum(row.money_in for row in data.transactions)
    assert data.money_out_total == sum(row.money_out for row in data.transactions)

    # The direct-payment account, from the ledger: opening + paid in - paid out = closing, and the closing balance
    # is what the account holds today (paying by card did not touch it).
    dp = data.direct_payment
    assert dp.opening + dp.money_in - dp.money_out == dp.closing
    assert dp.closing == Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment").posted_balance

    statement = statements.statement_generate(budget=budget, period_start=START, period_end=TODAY)
    with statement.pdf.open("rb") as handle:
        reader = pypdf.PdfReader(io.BytesIO(handle.read()))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert text.count("Paid back £30.00 by card") == 1
    assert f"Money asked back: £30.00 (recovery notice {recovery.pk})" in text
    assert f"Total {format_pence(data.money_in_total)} {format_pence(data.money_out_total)}" in text
    assert f"{len(rows)} payments from" in text
    assert re.search(r"Paid back £30\.00 by card £30\.00", text)  # in the money out column, once
