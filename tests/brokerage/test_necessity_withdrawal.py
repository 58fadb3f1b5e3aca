"""Rule 11, the other way: an ICB approver of the person's ICB (never whoever recorded the connection) withdraws the
approval to pay a connected person, with reasons. Paying them is then refused exactly as before the approval, until
an approval is recorded again; every decision is kept."""

from __future__ import annotations

import datetime
from html import unescape

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage import necessity, services
from brokerage.models import ConnectedPerson
from budgets import dp_invoices, spending
from budgets import services as budgets
from budgets.models import DirectPaymentInvoice, DirectPaymentSpend, PaymentKind, ScheduledPayment
from budgets.services import BudgetError
from config.formatting import format_date
from providers.models import Provider
from tests.brokerage.helpers import agreed_crew, make_person, team
from tests.factories import UserFactory, user_with_role

pytestmark = pytest.mark.django_db

SUMMARY = 'class="nhsuk-error-summary"'
APPROVAL = "No agency covers the village before 7am; Sam is trained in her care."
WITHDRAWAL = "Tyne Home Care now covers early mornings in the village."
START = datetime.date(2026, 12, 1)  # as in tests/budgets/test_spending.py


def url(name: str, pk: int) -> str:
    return reverse(f"brokerage:{name}", kwargs={"pk": pk})


def events(connection) -> list:
    return list(
        ConnectedPerson.pgh_event_model.objects.filter(pgh_obj=connection)
        .order_by("pgh_id")
        .select_related("pgh_context")
    )


@pytest.fixture
def crew():
    people = team()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"]])
    sam = Provider.objects.create(name="Sam Robson", kind="personal_assistant")
    people["connection"] = services.connected_person_add(
        person=people["person"],
        acting_user=people["broker"],
        provider=sam,
        relationship="spouse",
        lives_in_household=True,
    )
    services.connected_person_approve_necessity(
        connection=people["connection"], acting_user=people["approver"], reasons=APPROVAL
    )
    return people


def test_an_approver_withdraws_the_approval_with_reasons_and_it_is_kept(client, crew):
    person, connection = crew["person"], crew["connection"]
    assert not connection.blocked
    client.force_login(crew["approver2"])
    listing = client.get(url("person-acting", person.pk)).content.decode()
    assert url("connected-person-withdraw", connection.pk) in listing
    page = unescape(client.get(url("connected-person-withdraw", connection.pk)).content.decode())
    assert 'name="reasons"' in page and f"by {crew['approver'].full_name}: {APPROVAL}" in page

    empty = unescape(client.post(url("connected-person-withdraw", connection.pk), {"reasons": " "}).content.decode())
    assert SUMMARY in empty and "Enter why paying them is no longer approved" in empty
    connection.refresh_from_db()
    assert not connection.blocked

    withdrawn = client.post(url("connected-person-withdraw", connection.pk), {"reasons": WITHDRAWAL})
    assert withdrawn.status_code == 302 and withdrawn["Location"] == url("person-acting", person.pk)
    connection.refresh_from_db()
    assert connection.blocked and connection.necessity_approved_on is None
    assert (connection.necessity_withdrawn_on, connection.necessity_withdrawn_by) == (
        timezone.localdate(),
        crew["approver2"],
    )
    assert connection.necessity_withdrawal_reasons == WITHDRAWAL
    event = events(connection)[-1]
    assert event.pgh_context.metadata["user"] == crew["approver2"].pk
    assert event.pgh_context.metadata["action"] == "connected_person_withdraw_necessity"
    # The approval withdrawn stays in the history, and both decisions are shown.
    assert events(connection)[-2].necessity_reasons == APPROVAL
    assert [(d.what, d.by, d.reasons) for d in necessity.necessity_history(connection)] == [
        ("Approved", crew["approver"].full_name, APPROVAL),
        ("Withdrawn", crew["approver2"].full_name, WITHDRAWAL),
    ]

    listing = unescape(client.get(url("person-acting", person.pk)).content.decode())
    assert "The approval to pay Sam Robson is withdrawn: paying them is blocked again." in listing
    day = format_date(timezone.localdate())
    assert f"the last approval was withdrawn on {day} by {crew['approver2'].full_name}: {WITHDRAWAL}" in listing
    assert url("connected-person-withdraw", connection.pk) not in listing
    assert url("connected-person-necessity", connection.pk) in listing  # it can be approved again
    assert "Blocked: needs a necessity approval" in client.get(url("person", person.pk)).content.decode()
    again = unescape(
        client.post(url("connected-person-withdraw", connection.pk), {"reasons": "Again"}).content.decode()
    )
    assert SUMMARY in again and "Paying Sam Robson is not approved at the moment" in again

    # Approved again later, by an approver who did not record it: the page says an approval was withdrawn before.
    necessity_page = unescape(client.get(url("connected-person-necessity", connection.pk)).content.decode())
    assert f"An earlier approval was withdrawn on {day}" in necessity_page and 'name="reasons"' in necessity_page
    assert client.post(url("connected-person-necessity", connection.pk), {"reasons": "Agency gone"}).status_code == 302
    connection.refresh_from_db()
    assert not connection.blocked and connection.necessity_approved_by == crew["approver2"]
    assert [d.what for d in necessity.necessity_history(connection)] == ["Approved", "Withdrawn", "Approved"]


def test_withdrawing_is_refused_to_the_recorder_and_to_anyone_who_is_not_an_approver_of_the_icb(client, crew):
    person, connection = crew["person"], crew["connection"]
    elsewhere = user_with_role(Role.ICB_APPROVER)  # an approver of another ICB
    for user in (crew["broker"], crew["coordinator"], elsewhere, user_with_role(Role.FINANCE_OFFICER)):
        with pytest.raises(errors.RecordRefused) as refused:
            necessity.connected_person_withdraw_necessity(connection=connection, acting_user=user, reasons="No")
        assert str(refused.value) == necessity.WITHDRAW_NOT_APPROVER.format(icb=crew["icb"].name)
    with pytest.raises(errors.ReasonsRequired):
        necessity.connected_person_withdraw_necessity(connection=connection, acting_user=crew["approver"], reasons="")

    # Pages: 404 for those who may not decide, and nothing changes.
    for user in (crew["broker"], elsewhere, team()["broker"]):
        client.force_login(user)
        assert client.get(url("connected-person-withdraw", connection.pk)).status_code == 404
        assert client.post(url("connected-person-withdraw", connection.pk), {"reasons": "No"}).status_code == 404

    # Someone who is both a broker and an approver records a connection: another approver must decide about it.
    both = UserFactory(roles=[Role.CARE_BROKER, Role.ICB_APPROVER], organisation=crew["icb"])
    person.assigned_staff.add(both)
    jo = Provider.objects.create(name="Jo Robson", kind="personal_assistant")
    own = services.connected_person_add(
        person=person, acting_user=both, provider=jo, relationship="partner", lives_in_household=True
    )
    services.connected_person_approve_necessity(connection=own, acting_user=crew["approver"], reasons=APPROVAL)
    with pytest.raises(errors.RecordRefused, match="another approver must decide"):
        necessity.connected_person_withdraw_necessity(connection=own, acting_user=both, reasons="Not needed")
    client.force_login(both)
    page = unescape(client.get(url("connected-person-withdraw", own.pk)).content.decode())
    assert necessity.WITHDRAW_OWN_RECORD in page and 'name="reasons"' not in page
    assert url("connected-person-withdraw", own.pk) not in client.get(url("person-acting", person.pk)).content.decode()
    refused = unescape(client.post(url("connected-person-withdraw", own.pk), {"reasons": "No"}).content.decode())
    assert SUMMARY in refused and necessity.WITHDRAW_OWN_RECORD in refused

    connection.refresh_from_db()
    own.refresh_from_db()
    assert not connection.blocked and not own.blocked
    assert len(events(connection)) == 2  # recorded, approved: no withdrawal


def test_the_database_refuses_a_withdrawal_without_reasons_or_who(crew):
    connection = crew["connection"]
    for fields in (
        {"necessity_withdrawn_on": timezone.localdate(), "necessity_withdrawn_by": crew["approver"]},
        {"necessity_withdrawn_on": timezone.localdate(), "necessity_withdrawal_reasons": "Because"},
    ):
        with pytest.raises(IntegrityError, match="necessity_withdrawal_has_reasons"), transaction.atomic():
            ConnectedPerson.objects.filter(pk=connection.pk).update(**fields)


@pytest.fixture
def paying():
    """Journey 1's budget in use, with its direct-payment provider recorded as the person's spouse."""
    crew = agreed_crew()
    budget = budgets.budget_set_up(plan=crew["plan"], acting_user=crew["finance"], start_date=START)
    instalment = ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT).first()
    budgets.scheduled_payment_pay(payment=instalment, acting_user=crew["finance"])
    line = budget.lines.get(management_type="direct_payment")
    provider = line.plan_line.provider
    Provider.objects.filter(pk=provider.pk).update(sort_code="112233", account_number="44556677")
    provider.refresh_from_db()
    connection = services.connected_person_add(
        person=crew["person"],
        acting_user=crew["broker"],
        provider=provider,
        relationship="spouse",
        lives_in_household=False,
    )
    crew.update(budget=budget, line=line, provider=provider, connection=connection)
    return crew


@time_machine.travel(datetime.datetime(2026, 12, 10, 12, 0), tick=False)  # spending is dated after the budget's start
def test_paying_the_connected_person_is_refused_after_withdrawal_and_allowed_after_approval_again(paying):
    budget, line, provider, connection = paying["budget"], paying["line"], paying["provider"], paying["connection"]
    finance = paying["finance"]

    def pay_invoice(number: str):
        return dp_invoices.dp_invoice_pay(
            budget=budget,
            line=line,
            provider=provider,
            invoice_number=number,
            amount_pence=100,
            key=number,
            acting_user=finance,
        )

    def record_spend(key: str):
        return spending.dp_spend_record(
            budget=budget,
            line=line,
            payee=provider.name,
            spent_on=timezone.localdate(),
            amount_pence=50,
            key=key,
            acting_user=finance,
            connected_person=ConnectedPerson.objects.get(pk=connection.pk),
        )

    # Before any approval: both ways of paying them are refused.
    with pytest.raises(BudgetError, match="until the ICB has approved that it is necessary"):
        pay_invoice("HS-1")
    with pytest.raises(BudgetError, match="until the ICB has approved that it is necessary"):
        record_spend("s-1")

    services.connected_person_approve_necessity(connection=connection, acting_user=paying["approver"], reasons=APPROVAL)
    assert pay_invoice("HS-2").amount_pence == 100
    assert record_spend("s-2").amount_pence == 50

    necessity.connected_person_withdraw_necessity(
        connection=connection, acting_user=paying["approver2"], reasons=WITHDRAWAL
    )
    with pytest.raises(BudgetError, match="until the ICB has approved that it is necessary"):
        pay_invoice("HS-3")
    with pytest.raises(BudgetError, match="until the ICB has approved that it is necessary"):
        record_spend("s-3")
    assert list(DirectPaymentInvoice.objects.filter(budget=budget).values_list("invoice_number", flat=True)) == ["HS-2"]
    assert DirectPaymentSpend.objects.filter(budget=budget, connected_person=connection).count() == 1

    # Approved again (a withdrawn approval can be): paying them works again.
    services.connected_person_approve_necessity(
        connection=ConnectedPerson.objects.get(pk=connection.pk), acting_user=paying["approver"], reasons="Agency gone"
    )
    assert pay_invoice("HS-4").amount_pence == 100
    assert record_spend("s-4").amount_pence == 50
    assert DirectPaymentInvoice.objects.filter(budget=budget).count() == 2
