"""Direct-payment spending as an accounting exercise: coded to the plan line, or flagged as uncoded."""

import datetime

import pytest

from budgets import services, spending
from budgets.models import DirectPaymentSpend, PaymentKind, ScheduledPayment, SpendFlag
from ledger.models import Account

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


@pytest.fixture(autouse=True)
def _in_the_budgets_first_month(time_machine):
    """Spending is recorded on or after the budget's start and never ahead of today: these purchases are dated in
    December 2026, so the tests run on 20 December 2026."""
    time_machine.move_to(datetime.datetime(2026, 12, 20, 12, 0), tick=False)


@pytest.fixture
def paid(agreed):
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    instalment = ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT).first()
    services.scheduled_payment_pay(payment=instalment, acting_user=agreed["finance"])  # £23.07 in, plan active
    agreed["budget"] = budget
    agreed["dp_line"] = budget.lines.get(management_type="direct_payment")
    return agreed


def balance(code) -> int:
    return Account.objects.get(code=code).posted_balance


def test_coded_spend_moves_money_from_the_account_to_the_line(paid):
    budget, line = paid["budget"], paid["dp_line"]
    spend = spending.dp_spend_record(
        budget=budget,
        line=line,
        payee="Harmony Singers",
        spent_on=START,
        amount_pence=600,
        key="receipt-1",
        acting_user=paid["finance"],
    )
    assert spend.flag == SpendFlag.NONE
    assert balance(f"{budget.owner_ref}:held:direct-payment") == 2307 - 600
    assert Account.objects.get(pk=line.spend_account_id).posted_balance == 600
    again = spending.dp_spend_record(
        budget=budget,
        line=line,
        payee="Harmony Singers",
        spent_on=START,
        amount_pence=600,
        key="receipt-1",
        acting_user=paid["finance"],
    )
    assert again.pk == spend.pk and balance(f"{budget.owner_ref}:held:direct-payment") == 1707


def test_uncoded_spend_is_recorded_and_flagged_for_review(paid):
    budget = paid["budget"]
    spend = spending.dp_spend_record(
        budget=budget,
        line=None,
        payee="Corner shop",
        spent_on=START,
        amount_pence=250,
        key="receipt-2",
        acting_user=paid["finance"],
    )
    assert spend.flag == SpendFlag.UNCODED
    assert balance(f"{budget.owner_ref}:spend:uncoded") == 250
    assert DirectPaymentSpend.objects.filter(budget=budget, flag=SpendFlag.UNCODED).count() == 1


def test_spending_more_than_the_account_holds_is_refused_and_nothing_is_kept(paid):
    with pytest.raises(services.BudgetError, match="does not hold enough"):
        spending.dp_spend_record(
            budget=paid["budget"],
            line=paid["dp_line"],
            payee="Big purchase",
            spent_on=START,
            amount_pence=2308,
            key="receipt-3",
            acting_user=paid["finance"],
        )
    assert not DirectPaymentSpend.objects.filter(idempotency_key="receipt-3").exists()


def test_other_lines_and_absurd_amounts_are_refused(paid):
    nursing = paid["budget"].lines.get(management_type="notional")
    with pytest.raises(services.BudgetError, match="direct-payment lines"):
        spending.dp_spend_record(
            budget=paid["budget"],
            line=nursing,
            payee="X",
            spent_on=START,
            amount_pence=10,
            key="r4",
            acting_user=paid["finance"],
        )
    for amount in (0, -5, 50_000_01):
        with pytest.raises(services.BudgetError, match="between 1p"):
            spending.dp_spend_record(
                budget=paid["budget"],
                line=paid["dp_line"],
                payee="X",
                spent_on=START,
                amount_pence=amount,
                key=f"r-{amount}",
                acting_user=paid["finance"],
            )


def test_a_purchase_dated_in_a_month_finance_has_closed_is_posted_in_the_next_open_month(paid, time_machine):
    """The person keeps receipts and records one late: their purchase keeps its date, the ledger posts it on the
    first open day, saying why, and nothing is refused."""
    from ledger import services as ledger
    from ledger.models import ClosedPeriod, Transfer

    budget, line = paid["budget"], paid["dp_line"]
    time_machine.move_to(datetime.datetime(2027, 1, 10, 12, 0), tick=False)
    ledger.period_close(month=START, acting_user=paid["finance"])  # December 2026
    spend = spending.dp_spend_record(
        budget=budget,
        line=line,
        payee="Harmony Singers",
        spent_on=datetime.date(2026, 12, 20),
        amount_pence=600,
        key="receipt-late",
        acting_user=paid["finance"],
    )
    posted = Transfer.objects.get(idempotency_key="dp-spend:receipt-late")
    assert spend.spent_on == datetime.date(2026, 12, 20) and posted.effective_date == datetime.date(2027, 1, 1)
    assert posted.description == "Paid to Harmony Singers on 20 December 2026 (recorded after that month was closed)"
    assert Account.objects.get(pk=line.spend_account_id).posted_balance == 600
    assert ClosedPeriod.objects.filter(month=START).exists()


def test_a_direct_payment_invoice_is_refused_for_a_provider_the_line_may_not_use(paid):
    """Rule 12 when paying: a line whose kind of service needs a CQC registration is paid only to a registered
    provider, and a provider taken out of the directory is not paid at all."""
    from brokerage.models import PlanLine
    from budgets import dp_invoices
    from providers.models import Provider, ServiceCategory

    budget, line = paid["budget"], paid["dp_line"]
    provider = line.plan_line.provider
    Provider.objects.filter(pk=provider.pk).update(sort_code="112233", account_number="44556677", cqc_registration="")
    provider.refresh_from_db()
    personal_care = ServiceCategory.objects.get(name="Personal care")
    PlanLine.objects.filter(pk=line.plan_line_id).update(category=personal_care)
    line.plan_line.refresh_from_db()

    def pay(key):
        return dp_invoices.dp_invoice_pay(
            budget=budget,
            line=line,
            provider=provider,
            invoice_number=key,
            amount_pence=100,
            key=key,
            acting_user=paid["finance"],
        )

    with pytest.raises(services.BudgetError, match="needs a provider with a Care Quality Commission registration"):
        pay("unregistered")
    provider.cqc_registration = "1-2223334445"
    provider.active = False
    provider.save()
    with pytest.raises(services.BudgetError, match="no longer in the directory"):
        pay("inactive")
    provider.active = True
    provider.save()
    assert pay("registered").amount_pence == 100
