"""The three ways a personal health budget is managed, written as accounting exercises.

Conventions: funding from a funder is equity (credit-normal); money held is an asset (debit-normal);
commitments are liabilities; spending is an expense. Every exercise ends by checking each balance and
that the trial balance balances.
"""

import pytest

from ledger import selectors, services
from ledger.models import Account, AccountKind
from tests.ledger.helpers import DAY, balances, next_key, open_account, post, reserve

pytestmark = pytest.mark.django_db


def assert_trial_balance_balances():
    balance = selectors.trial_balance()
    assert balance.total_debit == balance.total_credit > 0


def test_notional_budget_allocation_commitment_invoice_and_payment():
    """The ICB holds £12,000 for a year of district nursing; a provider invoices £950 against a £1,000 order."""
    icb_funding = open_account("b1:funding:icb", AccountKind.EQUITY)
    held_by_icb = open_account("b1:held:icb", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend_line = open_account("b1:spend:line-1", AccountKind.EXPENSE)

    # 1. Allocation: Dr funds held by the ICB £12,000 / Cr ICB funding £12,000.
    post(held_by_icb, icb_funding, 1_200_000, "allocation")
    # 2. Commitment for the month's service order: pending Dr line spend / Cr held, £1,000.
    order = reserve(spend_line, held_by_icb, 100_000, "commitment", reference="plan-line:1")
    held = Account.objects.get(pk=held_by_icb.pk)
    assert (held.posted_balance, held.available_balance) == (1_200_000, 1_100_000)
    # 3. The provider invoices £950; paying it posts £950 of the commitment and releases the other £50.
    services.pending_post(key=next_key("invoice"), pending=order, amount=95_000)
    # 4. The same commitment cannot be paid twice.
    with pytest.raises(services.errors.PendingAlreadyResolved):
        services.pending_post(key=next_key("invoice"), pending=order, amount=5_000)

    held = Account.objects.get(pk=held_by_icb.pk)
    assert (held.posted_balance, held.pending_balance, held.available_balance) == (1_105_000, 0, 1_105_000)
    assert balances(spend_line, icb_funding) == [95_000, 1_200_000]
    assert_trial_balance_balances()


def test_third_party_budget_transfer_to_holder_and_reported_spend():
    """An Independent User Trust receives £2,400 a quarter and reports £1,850 of personal-assistant wages."""
    icb_funding = open_account("b2:funding:icb", AccountKind.EQUITY)
    la_funding = open_account("b2:funding:la", AccountKind.EQUITY)
    held_by_icb = open_account("b2:held:icb", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    held_by_trust = open_account("b2:held:third-party", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend_pa = open_account("b2:spend:line-2", AccountKind.EXPENSE)

    post(held_by_icb, icb_funding, 180_000, "allocation")  # ICB 75%
    post(held_by_icb, la_funding, 60_000, "allocation")  # local authority 25%
    post(held_by_trust, held_by_icb, 240_000, "third_party_transfer", reference="budget:2")
    post(spend_pa, held_by_trust, 185_000, "reported_spend", reference="plan-line:2")

    assert balances(held_by_icb, held_by_trust, spend_pa) == [0, 55_000, 185_000]
    assert balances(icb_funding, la_funding) == [180_000, 60_000]
    # The trust cannot report more spending than it holds.
    with pytest.raises(services.errors.InsufficientFunds):
        post(spend_pa, held_by_trust, 55_001, "reported_spend")
    assert_trial_balance_balances()


def test_direct_payment_instalment_spend_surplus_offset_and_recovery():
    """Four-weekly £800 instalments into a dedicated account; £300 spent; £500 surplus offset; £200 recovered."""
    icb_funding = open_account("b3:funding:icb", AccountKind.EQUITY)
    held_by_icb = open_account("b3:held:icb", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    dp_account = open_account("b3:held:direct-payment", AccountKind.ASSET, credits_must_not_exceed_debits=True)
    spend_line = open_account("b3:spend:line-3", AccountKind.EXPENSE)

    post(held_by_icb, icb_funding, 960_000, "allocation")  # Dr held £9,600 / Cr ICB funding
    post(dp_account, held_by_icb, 80_000, "instalment")  # Dr direct payment £800 / Cr held
    post(spend_line, dp_account, 30_000, "dp_spend", reference="plan-line:3")  # a £300 purchase
    post(dp_account, held_by_icb, 80_000, "instalment")
    assert balances(dp_account) == [130_000]

    # Rule 15: surplus offset against the next instalment, at most that instalment, as its own posting.
    post(dp_account, held_by_icb, 80_000, "instalment")
    post(held_by_icb, dp_account, 50_000, "surplus_offset")
    # Recovery of £200 back to the ICB.
    post(held_by_icb, dp_account, 20_000, "recovery")

    assert balances(dp_account, spend_line) == [140_000, 30_000]
    assert balances(held_by_icb, icb_funding) == [790_000, 960_000]
    # The person cannot spend more than the account holds.
    with pytest.raises(services.errors.InsufficientFunds):
        post(spend_line, dp_account, 140_001, "dp_spend")
    statement = selectors.account_statement(account=dp_account, start=DAY, end=DAY)
    assert [line.balance for line in statement.lines] == [80_000, 50_000, 130_000, 210_000, 160_000, 140_000]
    assert_trial_balance_balances()
