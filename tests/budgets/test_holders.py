"""Third-party holders record spending coded to the lines they hold and submit returns; money into the
dedicated account from anyone but the funders or the person's contribution is kept apart and flagged (rule 8)."""

import datetime

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import OrganisationKind
from accounts.roles import Role
from budgets import monitoring, services, spending
from budgets.models import DirectPaymentMoneyIn, HolderReturn, HolderSpend, PaymentKind, ScheduledPayment, SpendFlag
from ledger.models import Account
from ledger.verification import ledger_verify
from tests.factories import OrganisationFactory, user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)


@pytest.fixture
def held(agreed):
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    for payment in ScheduledPayment.objects.filter(budget=budget, due_on=START):
        services.scheduled_payment_pay(payment=payment, acting_user=agreed["finance"])
    line = budget.lines.get(management_type="third_party")
    holder = line.plan_line.third_party_holder
    agreed.update(
        budget=budget,
        tp_line=line,
        holder=holder,
        staff=user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder),
        received=ScheduledPayment.objects.get(budget=budget, kind=PaymentKind.THIRD_PARTY, due_on=START).amount_pence,
    )
    return agreed


def held_balance(crew) -> int:
    return Account.objects.get(code=f"{crew['budget'].owner_ref}:held:third-party:{crew['holder'].pk}").posted_balance


def record(crew, amount, *, line="tp", key="h-1", spent_on=START):
    return spending.holder_spend_record(
        budget=crew["budget"],
        holder=crew["holder"],
        line=crew["tp_line"] if line == "tp" else line,
        payee="Carers Direct Ltd",
        spent_on=spent_on,
        amount_pence=amount,
        key=key,
        acting_user=crew["staff"],
    )


@time_machine.travel(datetime.datetime(2026, 12, 3, 9, 0), tick=False)
def test_holder_spend_is_coded_to_its_line_once_and_cannot_overspend(held):
    spend = record(held, 10_000)
    record(held, 10_000)  # the same form posted twice records it once
    assert spend.flag == SpendFlag.NONE and HolderSpend.objects.count() == 1
    assert held_balance(held) == held["received"] - 10_000
    assert Account.objects.get(pk=held["tp_line"].spend_account_id).posted_balance == 10_000
    with pytest.raises(services.BudgetError, match="does not hold enough"):
        record(held, held["received"], key="h-2")
    uncoded = record(held, 500, line=None, key="h-3")
    assert uncoded.flag == SpendFlag.UNCODED
    assert Account.objects.get(code=f"{held['budget'].owner_ref}:spend:uncoded").posted_balance == 500
    assert ledger_verify().ok


@time_machine.travel(datetime.datetime(2026, 12, 3, 9, 0), tick=False)
def test_a_holder_cannot_code_spending_to_a_line_it_does_not_hold(held):
    dp_line = held["budget"].lines.get(management_type="direct_payment")
    with pytest.raises(services.BudgetError, match="lines your organisation holds"):
        record(held, 100, line=dp_line)
    assert HolderSpend.objects.count() == 0


@time_machine.travel(datetime.datetime(2027, 1, 5, 9, 0), tick=False)
def test_a_return_takes_its_figures_from_the_ledger_and_is_submitted_once(held):
    record(held, 10_000, spent_on=datetime.date(2026, 12, 10))
    record(held, 700, line=None, key="h-2", spent_on=datetime.date(2026, 12, 11))
    period = {"period_start": START, "period_end": datetime.date(2026, 12, 31)}
    submitted = spending.holder_return_submit(
        budget=held["budget"], holder=held["holder"], note="All receipts attached", acting_user=held["staff"], **period
    )
    assert (submitted.received_pence, submitted.spent_pence, submitted.uncoded_pence) == (held["received"], 10_700, 700)
    assert submitted.balance_pence == held_balance(held) == held["received"] - 10_700
    with pytest.raises(services.BudgetError, match="already been submitted"):
        spending.holder_return_submit(
            budget=held["budget"], holder=held["holder"], note="", acting_user=held["staff"], **period
        )
    with pytest.raises(services.BudgetError, match="period that has ended"):
        spending.holder_return_submit(
            budget=held["budget"],
            holder=held["holder"],
            period_start=datetime.date(2027, 1, 1),
            period_end=datetime.date(2027, 3, 31),
            note="",
            acting_user=held["staff"],
        )
    assert HolderReturn.objects.count() == 1


def test_the_holders_dashboard_leads_to_its_budgets_and_lists_its_returns_due(client, held):
    client.force_login(held["staff"])
    empty = client.get("/dashboard/third_party_staff/").content.decode()
    assert "holds money for 1 budget." in empty and "No returns due in the next 30 days." in empty
    assert 'href="/held/"' in empty
    first_quarter_ended = datetime.date(2027, 3, 5)
    held["budget"].refresh_from_db()  # its first payment has been made since the fixture read it
    [holder_return] = [r for r in monitoring.returns_schedule(held["budget"], first_quarter_ended) if r.holder_id]
    with time_machine.travel(datetime.datetime(2027, 3, 5, 9, 0), tick=False):
        client.force_login(held["staff"])  # a new sign-in: the earlier session has long timed out
        due = client.get("/dashboard/third_party_staff/").content.decode()
    assert f'href="/held/{held["budget"].pk}/"' in due
    assert "28 February 2027" in due  # the quarter's end, the return's period
    assert holder_return.due_on.strftime("%-d %B %Y") in due
    another_holder = OrganisationFactory(kind=OrganisationKind.THIRD_PARTY_HOLDER)
    other_holder_staff = user_with_role(Role.THIRD_PARTY_STAFF, organisation=another_holder)
    client.force_login(other_holder_staff)
    assert "No returns due" in client.get("/dashboard/third_party_staff/").content.decode()


def test_holder_pages_record_spending_and_returns_and_hide_other_budgets(client, held, agreed):
    client.force_login(held["staff"])
    listing = client.get("/held/").content.decode()
    assert held["plan"].person.full_name in listing
    url = f"/held/{held['budget'].pk}/"
    page = client.get(url).content.decode()
    assert "Record spending" in page and "Your organisation" not in page
    bad = client.post(
        url,
        {"action": "spend", "spend-payee": "", "spend-spent_on": "2026-12-02", "spend-amount": "-1", "spend-key": "k1"},
    ).content.decode()
    assert "nhsuk-error-summary" in bad and "Enter who was paid" in bad and "more than £0" in bad
    with time_machine.travel(datetime.datetime(2026, 12, 3, 9, 0), tick=False):
        client.force_login(held["staff"])  # signed in again: the idle timeout counts the jump in time
        body = {
            "action": "spend",
            "spend-payee": "Carers Direct",
            "spend-spent_on": "2026-12-02",
            "spend-amount": "45.50",
        }
        first = client.post(url, {**body, "spend-line": held["tp_line"].pk, "spend-key": "k2"})
        assert first.status_code == 302 and first["Location"] == url
        client.post(url, {**body, "spend-line": held["tp_line"].pk, "spend-key": "k2"})  # a double click
        assert HolderSpend.objects.get().amount_pence == 4550
        returned = client.post(
            url, {"action": "return", "return-period_start": "2026-12-01", "return-period_end": "2026-12-02"}
        )
        assert returned.status_code == 302 and HolderReturn.objects.get().spent_pence == 4550

    other_staff = user_with_role(Role.THIRD_PARTY_STAFF)  # works for another holder
    client.force_login(other_staff)
    assert client.get(url).status_code == 404
    assert held["plan"].person.full_name not in client.get("/held/").content.decode()
    for role in (Role.PATIENT, Role.FINANCE_OFFICER, Role.CARE_BROKER):
        client.force_login(user_with_role(role))
        assert client.get(url).status_code == 404 and client.get("/held/").status_code == 404


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    payee=st.text(max_size=250),
    spent_on=st.one_of(st.text(max_size=12), st.dates().map(str)),
    amount=st.one_of(st.text(max_size=12), st.decimals(allow_nan=True).map(str)),
    line=st.one_of(st.none(), st.text(max_size=6), st.integers().map(str)),
    period=st.tuples(st.text(max_size=12), st.dates().map(str)),
)
def test_holder_forms_never_fail_with_random_input(client, held, payee, spent_on, amount, line, period):
    client.force_login(held["staff"])
    url = f"/held/{held['budget'].pk}/"
    body = {"action": "spend", "spend-payee": payee, "spend-spent_on": spent_on, "spend-amount": amount}
    if line is not None:
        body["spend-line"] = line
    assert client.post(url, {**body, "spend-key": "fuzz"}).status_code in (200, 302)
    returned = client.post(url, {"action": "return", "return-period_start": period[0], "return-period_end": period[1]})
    assert returned.status_code in (200, 302)


@time_machine.travel(datetime.datetime(2026, 12, 3, 9, 0), tick=False)  # money in is dated today or earlier
def test_money_in_from_anyone_else_is_kept_apart_and_flagged_as_mixing(held):
    budget, finance = held["budget"], held["finance"]
    dp_code = f"{budget.owner_ref}:held:direct-payment"
    before = Account.objects.get(code=dp_code).posted_balance
    contribution = spending.dp_money_in_record(
        budget=budget,
        received_on=START,
        amount_pence=2_000,
        payer="Joan Robson",
        source="contribution",
        key="bank-line-1",
        acting_user=finance,
    )
    gift = spending.dp_money_in_record(
        budget=budget,
        received_on=START,
        amount_pence=5_000,
        payer="Aunt Mary",
        source="other",
        key="bank-line-2",
        acting_user=finance,
    )
    spending.dp_money_in_record(
        budget=budget,
        received_on=START,
        amount_pence=5_000,
        payer="Aunt Mary",
        source="other",
        key="bank-line-2",
        acting_user=finance,
    )
    assert not contribution.mixing and gift.mixing
    assert DirectPaymentMoneyIn.objects.filter(mixing=True).count() == 1
    assert Account.objects.get(code=dp_code).posted_balance == before + 7_000
    assert (
        Account.objects.get(code=f"{budget.owner_ref}:mixed-funds").posted_balance == 5_000
    )  # owed back, not budget money
    assert services.dp_surplus(budget, weeks=0) == before + 2_000  # the gift is not the budget's surplus
    with pytest.raises(services.BudgetError, match="where the money came from"):
        spending.dp_money_in_record(
            budget=budget,
            received_on=START,
            amount_pence=1,
            payer="?",
            source="lottery",
            key="bank-line-3",
            acting_user=finance,
        )
    assert ledger_verify().ok
