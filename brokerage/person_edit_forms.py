"""Forms for changing a person's details, and for withdrawing a necessity approval (rule 11).

The person's form is the adding form (`brokerage.forms.PersonForm`) with the same checks (NHS number, postcode,
date of birth), less the accountable ICB and the local authority, plus contact details, the staff who work with
the person, and the reason for changing what identifies them.
"""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from accounts.models import User
from brokerage.forms import PersonForm
from brokerage.models import NHS_NUMBER_INVALID, Person, normalise_nhs_number, validate_nhs_number
from brokerage.person_edit import IDENTITY_REASON_REQUIRED, NHS_NUMBER_TAKEN, STAFF_ROLES, person_version

PHONE_INVALID = "Enter a phone number, like 0191 498 0000 or +44 191 498 0000"
EMAIL_INVALID = "Enter an email address in the correct format, like name@example.com"

FIELD_ORDER = [
    "given_name",
    "family_name",
    "nhs_number",
    "date_of_birth",
    "identity_reason",
    "address",
    "postcode",
    "phone",
    "email",
    "communication_needs",
    "capacity",
    "cohort",
    "care_coordinator",
    "health_monitor",
    "assigned_staff",
    "seen",
]


class StaffChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.full_name or obj.email


class StaffMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.full_name or obj.email


class PersonChangeForm(PersonForm):
    phone = forms.CharField(label="Phone number", required=False, max_length=30, help_text="For example 0191 498 0000")
    email = forms.EmailField(
        label="Email address",
        required=False,
        max_length=254,
        error_messages={"invalid": EMAIL_INVALID, "max_length": EMAIL_INVALID},
    )
    care_coordinator = StaffChoiceField(
        label="Care coordinator", queryset=User.objects.none(), required=False, empty_label="Not named"
    )
    assigned_staff = StaffMultipleChoiceField(
        label="Staff who work with them",
        queryset=User.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Care brokers and coordinators who may open and change their record",
        error_messages={
            "required": "Select at least one care broker or coordinator who works with them",
            "invalid_choice": "Select staff from the list",
            "invalid_pk_value": "Select staff from the list",
        },
    )
    identity_reason = forms.CharField(
        label="Why are you changing the NHS number or date of birth?",
        widget=forms.Textarea,
        required=False,
        max_length=1000,
        help_text="Only if you change either: they identify the person. Your reason is kept with the change.",
    )
    seen = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, person: Person, **kwargs):
        kwargs.setdefault("initial", _initial(person))
        super().__init__(*args, **kwargs)
        self.person = person
        # The accountable ICB and the local authority decide who funds the budget: not changed here.
        del self.fields["icb"]
        del self.fields["local_authority"]
        staff = _staff_for(person)
        self.fields["care_coordinator"].queryset = staff
        self.fields["assigned_staff"].queryset = staff
        self.order_fields(FIELD_ORDER)

    def clean_nhs_number(self) -> str:
        value = normalise_nhs_number(self.cleaned_data["nhs_number"])
        try:
            validate_nhs_number(value)
        except ValidationError as exc:
            raise forms.ValidationError(NHS_NUMBER_INVALID) from exc
        if Person.objects.filter(nhs_number=value).exclude(pk=self.person.pk).exists():
            raise forms.ValidationError(NHS_NUMBER_TAKEN)
        return value

    def clean_phone(self) -> str:
        value = " ".join(self.cleaned_data["phone"].split())
        digits = re.sub(r"\D", "", value)
        if value and (not re.fullmatch(r"\+?[0-9 ()-]+", value) or not 10 <= len(digits) <= 15):
            raise forms.ValidationError(PHONE_INVALID)
        return value

    def clean(self):
        data = super().clean()
        identifying_changed = ("nhs_number" in data and data["nhs_number"] != self.person.nhs_number) or (
            "date_of_birth" in data and data["date_of_birth"] != self.person.date_of_birth
        )
        if identifying_changed and not (data.get("identity_reason") or "").strip():
            self.add_error("identity_reason", IDENTITY_REASON_REQUIRED)
        return data


def _initial(person: Person) -> dict:
    return {
        "nhs_number": person.nhs_number_display,
        "given_name": person.given_name,
        "family_name": person.family_name,
        "date_of_birth": person.date_of_birth,
        "address": person.address,
        "postcode": person.postcode,
        "phone": person.phone,
        "email": person.email,
        "communication_needs": person.communication_needs,
        "capacity": person.capacity,
        "cohort": person.cohort,
        "care_coordinator": person.care_coordinator_id,
        "health_monitor": person.health_monitor,
        "assigned_staff": list(person.assigned_staff.values_list("pk", flat=True)),
        "seen": person_version(person),
    }


def _staff_for(person: Person):
    """Active care brokers and coordinators of the person's ICB (or local authority), and whoever works with them
    already: the directory of every broker in the country is not a list to choose from."""
    organisations = [pk for pk in (person.icb_id, person.local_authority_id) if pk]
    current = [*person.assigned_staff.values_list("pk", flat=True), person.care_coordinator_id]
    return (
        User.objects.filter(is_active=True, role_memberships__role__in=STAFF_ROLES)
        .filter(Q(organisation_id__in=organisations) | Q(pk__in=[pk for pk in current if pk]))
        .distinct()
        .order_by("full_name", "email")
    )


class WithdrawNecessityForm(forms.Form):
    reasons = forms.CharField(
        label="Why is paying them no longer approved?",
        widget=forms.Textarea,
        max_length=3000,
        help_text="For example, an agency now covers the area at the times the person needs support",
        error_messages={"required": "Enter why paying them is no longer approved"},
    )
