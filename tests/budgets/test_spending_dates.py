"""Spending is dated within the budget's life: never before the budget started, never after today. A purchase
dated 1 November 1900 was accepted on a budget that started in 2026: the month's statement then opened with a
negative balance, the chart counted it, and the holder's quarterly return did not add up."""

import datetime
import html
import re

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.roles import Role
from budgets import services, spending
from budgets.models import DirectPaymentSpend, HolderSpend, PaymentKind, ScheduledPayment
from ledger.models import Account, Transfer
from tests.budgets.test_person_pages import PDF, budget_in_use
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)
TODAY = datetime.datetime(2026, 12, 20, 10, 0)
BEFORE_START = "The payment is dated before the budget started on 1 December 2026"
AHEAD = "The date paid must be today or in the past"


@pytest.fixture
def in_use(agreed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    budget = budget_in_use(agreed, start=START)
    patient = user_with_role(Role.PATIENT)
    person = agreed["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    tp_line = budget.lines.get(management_type="third_party")
    holder = tp_line.plan_line.third_party_holder
    agreed.update(
        budget=budget,
        patient=patient,
        dp_line=budget.lines.get(management_type="direct_payment"),
        tp_line=tp_line,
        holder=holder,
        staff=user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder),
    )
    return agreed


def transfers() -> int:
    return Transfer.objects.count()


def balances(budget) -> dict[str, int]:
    return dict(
        (account.code, account.posted_balance) for account in Account.objects.filter(owner_ref=budget.owner_ref)
    )


def dp_spend(crew, spent_on, key="p"):
    return spending.dp_spend_record(
        budget=crew["budget"],
        line=None,
        payee="Corner shop",
        spent_on=spent_on,
        amount_pence=1_000,
        key=key,
        acting_user=crew["patient"],
    )


def holder_spend(crew, spent_on, key="h"):
    return spending.holder_spend_record(
        budget=crew["budget"],
        holder=crew["holder"],
        line=crew["tp_line"],
        payee="Carers Direct Ltd",
        spent_on=spent_on,
        amount_pence=1_000,
        key=key,
        acting_user=crew["staff"],
    )


@time_machine.travel(TODAY, tick=False)
@pytest.mark.parametrize("record", [dp_spend, holder_spend], ids=["direct payment", "third-party holder"])
def test_spending_dated_before_the_budget_started_or_after_today_is_refused_and_nothing_moves(in_use, record):
    before, moved = balances(in_use["budget"]), transfers()
    for day, message in (
        (datetime.date(1900, 11, 1), BEFORE_START),
        (START - datetime.timedelta(days=1), BEFORE_START),
        (TODAY.date() + datetime.timedelta(days=1), AHEAD),
        (datetime.date(2099, 1, 1), AHEAD),
    ):
        with pytest.raises(spending.SpendDateError, match=f"^{message}$") as refused:
            record(in_use, day, key=f"k-{day}")
        assert refused.value.field == "spent_on"
        assert isinstance(refused.value, services.BudgetError)  # every caller that catches BudgetError still does
    assert not DirectPaymentSpend.objects.exists() and not HolderSpend.objects.exists()
    assert balances(in_use["budget"]) == before and transfers() == moved
    # The first day of the budget and today are both allowed.
    assert record(in_use, START, key="first-day").spent_on == START
    assert record(in_use, TODAY.date(), key="today").spent_on == TODAY.date()


def error_beside_the_date(page: str, message: str) -> bool:
    """The message is in the error summary, linked to the date boxes, and shown again as the date's own error."""
    page = re.sub(r"\s+", " ", page)
    escaped = html.escape(message)
    linked = re.search(r'<a href="#id_(spend-)?spent_on" ?> ' + re.escape(escaped) + " </a>", page)
    beside = re.search(
        r'<span class="nhsuk-error-message" id="id_(spend-)?spent_on-error" ?> '
        r'<span class="nhsuk-u-visually-hidden">Error: </span>' + re.escape(escaped),
        page,
    )
    return bool(linked and beside)


@time_machine.travel(TODAY, tick=False)
def test_the_person_cannot_record_a_purchase_dated_1900_and_is_told_beside_the_date(client, in_use):
    budget = in_use["budget"]
    client.force_login(in_use["patient"])
    url = f"/my/budgets/{budget.pk}/purchases/new/"
    body = {"payee": "Corner shop", "amount": "10.00", "line": "", "key": "k1"}
    page = client.post(
        url,
        {
            **body,
            "spent_on[day]": "1",
            "spent_on[month]": "11",
            "spent_on[year]": "1900",
            "receipt": SimpleUploadedFile("r.pdf", PDF),
        },
    )
    assert page.status_code == 200
    assert error_beside_the_date(page.content.decode(), BEFORE_START)
    assert not DirectPaymentSpend.objects.exists()
    recorded = client.post(
        url,
        {
            **body,
            "spent_on[day]": "1",
            "spent_on[month]": "12",
            "spent_on[year]": "2026",
            "receipt": SimpleUploadedFile("r.pdf", PDF),
        },
    )
    assert recorded.status_code == 302 and DirectPaymentSpend.objects.get().spent_on == START


@time_machine.travel(TODAY, tick=False)
def test_holder_staff_cannot_record_spending_dated_1900_and_the_return_adds_up(client, in_use):
    budget = in_use["budget"]
    client.force_login(in_use["staff"])
    url = f"/held/{budget.pk}/"
    body = {"action": "spend", "spend-payee": "Carers Direct", "spend-amount": "10.00", "spend-line": ""}
    page = client.post(
        url,
        {
            **body,
            "spend-spent_on[day]": "1",
            "spend-spent_on[month]": "1",
            "spend-spent_on[year]": "1900",
            "spend-key": "a",
        },
    )
    assert page.status_code == 200
    assert error_beside_the_date(page.content.decode(), BEFORE_START)
    assert not HolderSpend.objects.exists()
    ahead = client.post(url, {**body, "spend-spent_on": "2026-12-21", "spend-key": "b"}).content.decode()
    assert error_beside_the_date(ahead, AHEAD) and not HolderSpend.objects.exists()

    # Spending inside the quarter is what the return counts: received - spent = what is held at the end.
    assert client.post(url, {**body, "spend-spent_on": "2026-12-02", "spend-key": "c"}).status_code == 302
    figures = spending.holder_period_figures(
        budget=budget, holder=in_use["holder"], period_start=START, period_end=TODAY.date()
    )
    received = ScheduledPayment.objects.get(budget=budget, kind=PaymentKind.THIRD_PARTY, due_on=START).amount_pence
    assert figures == {
        "received_pence": received,
        "spent_pence": 1_000,
        "uncoded_pence": 1_000,
        "balance_pence": received - 1_000,
    }


# --- Money into the direct-payment account: the same rule as spending ------------------------------------------


def money_in(crew, received_on, key="m", source="contribution"):
    return spending.dp_money_in_record(
        budget=crew["budget"],
        received_on=received_on,
        amount_pence=2_000,
        payer="Joan Robson",
        source=source,
        key=key,
        acting_user=crew["finance"],
    )


@time_machine.travel(TODAY, tick=False)
@pytest.mark.parametrize("source", ["contribution", "other"])  # into the account, and kept apart as mixing
def test_money_in_dated_before_the_budget_started_or_after_today_is_refused_and_nothing_moves(in_use, source):
    from budgets.models import DirectPaymentMoneyIn

    before, moved = balances(in_use["budget"]), transfers()
    for day, message in (
        (datetime.date(1900, 11, 1), "The money is dated before the budget started on 1 December 2026"),
        (START - datetime.timedelta(days=1), "The money is dated before the budget started on 1 December 2026"),
        (TODAY.date() + datetime.timedelta(days=1), "The date the money arrived must be today or in the past"),
        (datetime.date(2099, 1, 1), "The date the money arrived must be today or in the past"),
    ):
        assert spending.money_in_date_problem(in_use["budget"], day) == message
        with pytest.raises(spending.MoneyInDateError, match=f"^{message}$") as refused:
            money_in(in_use, day, key=f"k-{day}", source=source)
        assert refused.value.field == "received_on"
        assert isinstance(refused.value, services.BudgetError)  # every caller that catches BudgetError still does
    assert not DirectPaymentMoneyIn.objects.exists()
    assert balances(in_use["budget"]) == before and transfers() == moved
    # The first day of the budget and today are both allowed.
    assert money_in(in_use, START, key="first-day", source=source).received_on == START
    assert money_in(in_use, TODAY.date(), key="today", source=source).received_on == TODAY.date()
    assert spending.money_in_date_problem(in_use["budget"], TODAY.date()) is None
