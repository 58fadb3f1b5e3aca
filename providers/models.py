"""The provider directory: who can be paid for care and support, what they offer and at what rate.

A leaf app: it knows nothing of people, plans or money movements.
"""

from __future__ import annotations

import pghistory
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField
from djmoney.models.validators import MinMoneyValidator

SORT_CODE_INVALID = "Enter a sort code in the correct format, like 30-99-50"
ACCOUNT_NUMBER_INVALID = "Enter an account number in the correct format, like 00733445"

sort_code_validator = RegexValidator(r"^\d{2}-?\d{2}-?\d{2}$", SORT_CODE_INVALID)
account_number_validator = RegexValidator(r"^\d{8}$", ACCOUNT_NUMBER_INVALID)


class RegistrationKind(models.TextChoices):
    NONE = "", "No registration needed"
    CQC = "cqc", "Care Quality Commission"
    PROFESSIONAL = "professional", "Professional body (for example HCPC or NMC)"


@pghistory.track(append_only=True)
class ServiceCategory(models.Model):
    """Reference data an administrator maintains: what money may (or may not) be spent on."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    is_prohibited = models.BooleanField(
        default=False, help_text="Cannot be planned or bought with a personal health budget"
    )
    prohibited_reason = models.CharField(max_length=300, blank=True)
    requires_registration = models.CharField(
        max_length=20,
        choices=RegistrationKind.choices,
        blank=True,
        default=RegistrationKind.NONE,
        help_text="Providers of this category must hold this registration before it can be planned",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "service categories"
        constraints = [
            models.CheckConstraint(
                condition=Q(is_prohibited=False) | ~Q(prohibited_reason=""), name="category_prohibited_has_reason"
            )
        ]

    def __str__(self) -> str:
        return self.name


class ProviderKind(models.TextChoices):
    AGENCY = "agency", "Home care agency"
    CARE_HOME = "care_home", "Care home"
    COMMUNITY_SERVICE = "community_service", "Community service"
    VOLUNTARY_ORGANISATION = "voluntary_organisation", "Voluntary organisation"
    PERSONAL_ASSISTANT = "personal_assistant", "Personal assistant"
    OTHER = "other", "Other supplier"


@pghistory.track(append_only=True)
class Provider(models.Model):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    ods_code = models.CharField("ODS code", max_length=10, blank=True)
    cqc_registration = models.CharField("CQC registration number", max_length=20, blank=True)
    professional_registration = models.CharField(max_length=40, blank=True, help_text="For example HCPC or NMC PIN")
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    address = models.TextField(blank=True)
    area = models.CharField(max_length=100, blank=True, help_text="Town or district the provider covers")
    postcode = models.CharField(max_length=10, blank=True)
    sort_code = models.CharField(max_length=8, blank=True, validators=[sort_code_validator])
    account_number = models.CharField(max_length=8, blank=True, validators=[account_number_validator])
    account_name = models.CharField(max_length=18, blank=True, help_text="As the bank holds it (BACS: 18 characters)")
    stripe_account_id = models.CharField(
        max_length=40,
        blank=True,
        validators=[RegexValidator(r"^acct_[A-Za-z0-9]+$", "Enter a Stripe id like acct_1A2b")],
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["area"]), models.Index(fields=["kind"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.sort_code = self.sort_code.replace("-", "").replace(" ", "")
        if self.sort_code and len(self.sort_code) != 6:
            raise ValidationError({"sort_code": SORT_CODE_INVALID})
        if bool(self.sort_code) != bool(self.account_number):
            raise ValidationError("Enter both the sort code and the account number, or neither")

    @property
    def sort_code_display(self) -> str:
        code = self.sort_code.replace("-", "")
        return f"{code[:2]}-{code[2:4]}-{code[4:]}" if len(code) == 6 else ""

    def holds_registration(self, kind: str) -> bool:
        if kind == RegistrationKind.CQC:
            return bool(self.cqc_registration)
        if kind == RegistrationKind.PROFESSIONAL:
            return bool(self.professional_registration or self.cqc_registration)
        return True


class Unit(models.TextChoices):
    HOUR = "hour", "hour"
    VISIT = "visit", "visit"
    WEEK = "week", "week"
    ITEM = "item", "item"


@pghistory.track(append_only=True)
class Service(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="services")
    category = models.ForeignKey(ServiceCategory, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    unit = models.CharField(max_length=10, choices=Unit.choices)
    unit_rate = MoneyField(
        max_digits=10,
        decimal_places=2,
        default_currency="GBP",
        currency_choices=[("GBP", "Pound sterling")],
        validators=[MinMoneyValidator(0)],
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [models.CheckConstraint(condition=Q(unit_rate__gte=0), name="service_rate_not_negative")]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"
