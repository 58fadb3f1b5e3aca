"""The provider directory: reference data, bank-detail validation, search and who may see it."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from djmoney.money import Money

from accounts.roles import Role
from providers import selectors
from providers.models import Provider, ProviderKind, RegistrationKind, Service, ServiceCategory
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def make_service(name, category_name, provider_name="Tyne Care", area="Newcastle", rate="20.00"):
    provider, _ = Provider.objects.get_or_create(
        name=provider_name, defaults={"kind": ProviderKind.AGENCY, "area": area}
    )
    return Service.objects.create(
        provider=provider,
        category=ServiceCategory.objects.get(name=category_name),
        name=name,
        unit="hour",
        unit_rate=Money(Decimal(rate), "GBP"),
    )


def test_prohibited_categories_are_reference_data_with_reasons():
    prohibited = set(ServiceCategory.objects.filter(is_prohibited=True).values_list("name", flat=True))
    assert {
        "Alcohol",
        "Tobacco",
        "Gambling",
        "Debt repayment",
        "Anything illegal",
        "Emergency care",
        "GP services",
        "Services the NHS already provides",
    } <= prohibited
    assert not ServiceCategory.objects.filter(is_prohibited=True, prohibited_reason="").exists()
    assert ServiceCategory.objects.get(name="Personal care").requires_registration == RegistrationKind.CQC


def test_an_administrator_can_change_the_list_without_code(client):
    admin = user_with_role(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(
        reverse("admin:providers_servicecategory_add"),
        {
            "name": "Fireworks",
            "description": "",
            "is_prohibited": "on",
            "prohibited_reason": "Local policy",
            "requires_registration": "",
            "active": "on",
        },
    )
    assert response.status_code == 302
    assert ServiceCategory.objects.get(name="Fireworks").is_prohibited


@pytest.mark.parametrize(
    ("sort_code", "account", "ok"),
    [
        ("30-99-50", "00733445", True),
        ("309950", "00733445", True),
        ("30-99", "00733445", False),
        ("30-99-50", "733445", False),
        ("", "00733445", False),
        ("ab-cd-ef", "00733445", False),
    ],
)
def test_bank_details_are_validated(sort_code, account, ok):
    provider = Provider(name="PA", kind=ProviderKind.PERSONAL_ASSISTANT, sort_code=sort_code, account_number=account)
    if ok:
        provider.full_clean()
        assert provider.sort_code_display == "30-99-50"
    else:
        with pytest.raises(ValidationError):
            provider.full_clean()


def test_search_by_name_category_and_area_hides_prohibited_and_inactive():
    care = make_service("Personal care visit", "Personal care")
    gym = make_service("Gym membership", "Leisure and wellbeing", provider_name="Leisure Trust", area="Sunderland")
    make_service("Beer", "Alcohol", provider_name="Pub")
    gone = make_service("Old service", "Personal care")
    gone.active = False
    gone.save()
    assert list(selectors.directory_search()) == [gym, care]
    assert list(selectors.directory_search(text="gym")) == [gym]
    assert list(selectors.directory_search(area="sunder")) == [gym]
    personal_care = ServiceCategory.objects.get(name="Personal care")
    assert list(selectors.directory_search(category_id=personal_care.pk)) == [care]


@pytest.mark.parametrize("role", [Role.CARE_BROKER, Role.CARE_COORDINATOR, Role.ICB_APPROVER])
def test_brokers_search_the_directory_page(client, role):
    make_service("Personal care visit", "Personal care")
    client.force_login(user_with_role(role))
    page = client.get(reverse("providers:directory"), {"q": "personal", "area": "Newcastle"}).content.decode()
    assert "Personal care visit" in page and "£20.00 per hour" in page


@pytest.mark.parametrize("role", [Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE, Role.THIRD_PARTY_STAFF])
def test_people_and_holders_do_not_see_the_directory(client, role):
    service = make_service("Personal care visit", "Personal care")
    client.force_login(user_with_role(role))
    assert client.get(reverse("providers:directory")).status_code == 404
    assert client.get(reverse("providers:provider", kwargs={"pk": service.provider_id})).status_code == 404


def test_directory_pages_results(client):
    for index in range(30):
        make_service(f"Visit {index:02d}", "Personal care")
    client.force_login(user_with_role(Role.CARE_BROKER))
    first = client.get(reverse("providers:directory")).content.decode()
    second = client.get(reverse("providers:directory"), {"page": 2}).content.decode()
    assert "Visit 00" in first and "Visit 29" not in first
    assert "Visit 29" in second and "Page 2 of 2" in second
