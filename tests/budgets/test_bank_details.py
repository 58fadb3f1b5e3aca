"""Entering where money goes: the dedicated direct-payment account with its recipient (rules 7 and 8) and a
holder's bank details or connected account; bad details get clear errors; only those allowed see the pages."""

import datetime

import pytest

from accounts.roles import Role
from brokerage.models import Representative
from budgets import services
from budgets.models import DirectPaymentAccount, HolderBankAccount
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def budget(agreed):
    return services.budget_set_up(
        plan=agreed["plan"], acting_user=agreed["finance"], start_date=datetime.date(2026, 12, 1)
    )


def test_finance_records_the_dedicated_account_and_a_nominee_as_recipient(client, agreed, budget):
    person = agreed["plan"].person
    nominee = Representative.objects.create(
        person=person,
        kind="nominee",
        name="Michael Robson",
        relationship="son",
        nominated_on=datetime.date(2026, 11, 1),
        consent_recorded_on=datetime.date(2026, 11, 2),
    )
    client.force_login(agreed["finance"])
    url = f"/budgets/{budget.pk}/dedicated-account/"
    page = client.get(url).content.decode()
    assert "Michael Robson (nominee, son)" in page and f"{person.full_name} (the person)" in page
    bad = client.post(
        url, {"recipient": "99999", "kind": "bank", "account_name": "", "sort_code": "12-34", "account_number": "1"}
    ).content.decode()
    for message in (
        "Select who receives it",
        "Enter the name on the account",
        "Enter a sort code in the correct format, like 30-99-50",
        "Enter an account number in the correct format, like 00733445",
        "Enter who can use the account",
    ):
        assert message in bad
    assert not DirectPaymentAccount.objects.exists()
    body = {
        "recipient": nominee.pk,
        "kind": "bank",
        "account_name": "Joan Robson PHB",
        "sort_code": "20-00-00",
        "account_number": "55779911",
        "signatories": "Michael Robson",
    }
    beyond_bacs = client.post(url, {**body, "account_name": "E WALKER <PHB>"}).content.decode()
    assert "The name on the account can only have letters, numbers, spaces and . &amp; / -" in beyond_bacs
    assert not DirectPaymentAccount.objects.exists()
    saved = client.post(url, body, follow=True).content.decode()
    assert f"The direct-payment account for {person.full_name} is saved" in saved
    account = DirectPaymentAccount.objects.get()
    assert (account.recipient, account.sort_code, account.account_name) == (nominee, "200000", "JOAN ROBSON PHB")
    assert "Received by Michael Robson (nominee)" in client.get(f"/budgets/{budget.pk}/").content.decode()
    client.post(url, {**body, "recipient": 0, "account_number": "11223344"})
    account.refresh_from_db()
    assert account.recipient is None and account.account_number == "11223344"
    assert DirectPaymentAccount.pgh_event_model.objects.count() == 2  # the change is kept in its history


def test_a_representative_of_someone_else_is_refused_by_the_service(agreed, budget):
    from tests.brokerage.helpers import make_person

    stranger = make_person(icb_org=agreed["icb"], staff=[])
    other = Representative.objects.create(
        person=stranger, kind="representative", name="X", relationship="aunt", basis="child_under_16"
    )
    with pytest.raises(services.BudgetError, match="current representatives"):
        services.dedicated_account_save(
            budget=budget,
            acting_user=agreed["finance"],
            recipient=other,
            kind="bank",
            account_name="X",
            sort_code="200000",
            account_number="55779911",
            signatories="X",
        )


def test_holder_bank_details_and_connected_account(client, agreed, budget):
    holder = budget.lines.get(management_type="third_party").plan_line.third_party_holder
    client.force_login(agreed["finance"])
    assert "No bank details" in client.get("/finance/holders/").content.decode()
    url = f"/finance/holders/{holder.pk}/bank/"
    bad = client.post(
        url, {"account_name": "T", "sort_code": "401162", "account_number": "12345678", "stripe_account_id": "ac_1"}
    ).content.decode()
    assert "Enter a Stripe account ID that starts with acct_" in bad
    good = {"account_name": "Tyneside IUT", "sort_code": "40 11 62", "account_number": "12345678"}
    saved = client.post(url, {**good, "stripe_account_id": "acct_1TynesideIUT"}, follow=True).content.decode()
    assert f"{holder.name}&#39;s bank details are saved" in saved
    account = HolderBankAccount.objects.get(organisation=holder)
    assert (account.sort_code, account.stripe_account_id) == ("401162", "acct_1TynesideIUT")
    assert "Stripe: acct_1TynesideIUT" in client.get("/finance/holders/").content.decode()
    assert client.get(f"/finance/holders/{agreed['icb'].pk}/bank/").status_code == 404  # not a holder


@pytest.mark.parametrize("role", [Role.PATIENT, Role.THIRD_PARTY_STAFF, Role.AUDITOR, Role.ICB_APPROVER])
def test_others_cannot_reach_the_bank_detail_pages(client, agreed, budget, role):
    holder = budget.lines.get(management_type="third_party").plan_line.third_party_holder
    client.force_login(user_with_role(role, organisation=agreed["icb"]))
    for url in (f"/budgets/{budget.pk}/dedicated-account/", "/finance/holders/", f"/finance/holders/{holder.pk}/bank/"):
        assert client.get(url).status_code == 404
