"""Every page, download and API endpoint of the person's side, tried with another person's ids by every role:
404 each time. Two people, each with a live budget, a purchase with a receipt, an invoice paid from the direct
payment and a card payment; every user below acts for (or works with) the first person only."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.roles import Role
from brokerage.models import Representative
from budgets import card_payments, dp_invoices, spending
from budgets.models import Budget
from providers.models import Provider
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import PDF, budget_in_use
from tests.factories import OrganisationFactory, user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 11, 1)


def person_with_money(crew, patient, fake_payments) -> dict:
    budget = budget_in_use(crew, start=START)
    person = crew["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    line = budget.lines.get(management_type="direct_payment")
    receipt = SimpleUploadedFile("r.pdf", PDF, content_type="application/pdf")
    spend = spending.dp_spend_record(
        budget=budget,
        line=line,
        payee="Harmony",
        spent_on=START,
        amount_pence=100,
        key=f"access-{budget.pk}",
        acting_user=patient,
        receipt=receipt,
    )
    Provider.objects.filter(pk=line.plan_line.provider_id).update(sort_code="112233", account_number="44556677")
    line.plan_line.provider.refresh_from_db()
    invoice = dp_invoices.dp_invoice_pay(
        budget=budget,
        line=line,
        provider=line.plan_line.provider,
        invoice_number=f"A-{budget.pk}",
        amount_pence=200,
        key=f"inv-{budget.pk}",
        acting_user=patient,
    )
    card = card_payments.card_payment_start(
        budget=budget, purpose="contribution", amount_pence=500, acting_user=patient, key=f"card-{budget.pk}"
    )
    return {"budget": budget, "spend": spend, "invoice": invoice, "card": card, "crew": crew}


def urls_for(mine: dict, theirs: dict) -> list[str]:
    """Their ids alone, and their ids under my budget."""
    b, t = mine["budget"].pk, theirs["budget"].pk
    return [
        f"/my/budgets/{t}/",
        f"/my/budgets/{t}/transactions/",
        f"/my/budgets/{t}/purchases/new/",
        f"/my/budgets/{t}/invoices/pay/",
        f"/my/budgets/{t}/invoices/{theirs['invoice'].pk}/",
        f"/my/budgets/{b}/invoices/{theirs['invoice'].pk}/",
        f"/my/budgets/{t}/returns/",
        f"/my/budgets/{t}/consent/",
        f"/my/budgets/{t}/pay-by-card/",
        f"/my/budgets/{t}/card-payments/{theirs['card'].pk}/",
        f"/my/budgets/{b}/card-payments/{theirs['card'].pk}/",
        f"/budgets/{t}/receipts/{theirs['spend'].pk}/",
        f"/budgets/{b}/receipts/{theirs['spend'].pk}/",
        f"/api/budgets/budgets/{t}/",
    ]


@pytest.fixture
def two_people(fake_payments, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    mine = person_with_money(agreed_crew(contribution_pounds=600), user_with_role(Role.PATIENT), fake_payments)
    theirs = person_with_money(agreed_crew(contribution_pounds=600), user_with_role(Role.PATIENT), fake_payments)
    return mine, theirs


def users_acting_for(mine: dict) -> dict[str, object]:
    crew, person = mine["crew"], mine["crew"]["plan"].person
    representative, nominee = user_with_role(Role.REPRESENTATIVE), user_with_role(Role.NOMINEE)
    Representative.objects.create(
        person=person,
        kind="representative",
        name="R",
        relationship="son",
        basis="adult_lacking_capacity",
        user=representative,
    )
    Representative.objects.create(
        person=person,
        kind="nominee",
        name="N",
        relationship="daughter",
        nominated_on=START,
        consent_recorded_on=START,
        user=nominee,
    )
    other_icb = OrganisationFactory(kind="icb")
    return {
        Role.PATIENT: person.user,
        Role.REPRESENTATIVE: representative,
        Role.NOMINEE: nominee,
        Role.CARE_BROKER: crew["broker"],
        Role.CARE_COORDINATOR: crew["coordinator"],
        Role.ICB_APPROVER: user_with_role(Role.ICB_APPROVER, organisation=other_icb),
        Role.THIRD_PARTY_STAFF: user_with_role(Role.THIRD_PARTY_STAFF),
    }


def test_every_person_page_with_another_persons_ids_is_not_found_for_every_role(client, two_people):
    mine, theirs = two_people
    users = users_acting_for(mine)
    for role, user in users.items():
        client.force_login(user)
        assert client.get(f"/my/budgets/{mine['budget'].pk}/").status_code == (
            200 if role in (Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE) else 404
        )
        for url in urls_for(mine, theirs):
            assert client.get(url).status_code == 404, (role, url)
            assert client.post(url, {}).status_code in (403, 404, 405), (role, url)  # never reached, never changed
    # Readers of every budget (finance, auditors) and administrators are not the person: no person's pages.
    for role in (Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.AUDITOR, Role.ADMINISTRATOR):
        client.force_login(user_with_role(role))
        for url in urls_for(mine, theirs):
            if url.startswith("/my/"):
                assert client.get(url).status_code == 404, (role, url)
    assert Budget.objects.count() == 2
