"""Forms for the plan builder and decisions. Amounts are entered in pounds and stored as GBP Money."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from djmoney.money import Money

from accounts.models import Organisation, OrganisationKind, User
from accounts.roles import Role
from brokerage.models import (
    NHS_NUMBER_INVALID,
    PERIODS_A_YEAR,
    ActorKind,
    Capacity,
    CarePlan,
    Cohort,
    ManagementType,
    PaymentFrequency,
    Person,
    PlanStatus,
    ReconsiderationDecision,
    Relationship,
    RepresentativeBasis,
    normalise_nhs_number,
    validate_nhs_number,
)
from brokerage.services import (
    SERVICE_KEEPS_CATEGORY,
    agreement_date_problem,
    line_holder_problem,
    line_version,
    representative_problems,
)
from config.formatting import format_pence
from config.forms import DateField, PoundsField
from providers.models import Provider, Service, ServiceCategory

MONEY_INVALID = "Enter an amount in pounds and pence, like 1250.00"


def in_a_sentence(label: str) -> str:
    """A label as it reads inside a sentence: "Budget a year" -> "budget a year", but "ICB share" keeps its
    abbreviation in capitals."""
    return " ".join(word if len(word) > 1 and word.isupper() else word.lower() for word in label.split(" "))


class FirstProblemPoundsField(PoundsField):
    """One message at a time: an amount both too big and with too many digits says only that it is too big."""

    def run_validators(self, value):
        try:
            super().run_validators(value)
        except ValidationError as exc:
            raise ValidationError(exc.error_list[:1]) from exc


def pounds(label: str, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    named = in_a_sentence(label)
    return FirstProblemPoundsField(
        label=label,
        required=required,
        min_value=Decimal("0"),
        max_value=Decimal("10000000"),
        decimal_places=2,
        max_digits=12,
        help_text=help_text,
        error_messages={
            "required": f"Enter the {named}",
            "invalid": MONEY_INVALID,
            "min_value": f"The {named} cannot be negative",
            "max_value": f"The {named} must be less than £10,000,000",
            "max_decimal_places": MONEY_INVALID,
            "max_digits": MONEY_INVALID,
        },
    )


def as_money(value: Decimal | None) -> Money:
    return Money(value or Decimal("0"), "GBP")


class AboutForm(forms.Form):
    about_me = forms.CharField(
        label="What matters to the person",
        widget=forms.Textarea,
        max_length=5000,
        help_text="In their own words where possible: their life, what a good day looks like, what they want to change",
        error_messages={"required": "Describe what matters to the person"},
    )


class NeedForm(forms.Form):
    description = forms.CharField(
        label="Need",
        max_length=500,
        error_messages={"required": "Enter the need"},
        help_text="For example, help with washing and dressing each morning",
    )


class OutcomeForm(forms.Form):
    description = forms.CharField(
        label="Outcome",
        max_length=500,
        error_messages={"required": "Enter the outcome"},
        help_text="What the person wants to achieve, for example to stay living at home",
    )
    needs = forms.ModelMultipleChoiceField(
        label="Which needs does it meet?",
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Select the needs this outcome meets"},
    )

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["needs"].queryset = plan.needs.all()


class LineForm(forms.Form):
    service = forms.ModelChoiceField(
        label="Service from the directory",
        queryset=None,
        required=False,
        help_text="Leave empty for an item that is not in the directory",
    )
    description = forms.CharField(
        label="What the support is",
        max_length=300,
        required=False,
        help_text="Leave empty to use the name of the service chosen from the directory",
    )
    category = forms.ModelChoiceField(
        label="Category", queryset=None, required=False, help_text="Needed when no service is chosen"
    )
    provider = forms.ModelChoiceField(label="Provider or payee", queryset=None, required=False)
    outcome = forms.ModelChoiceField(
        label="Outcome it serves", queryset=None, error_messages={"required": "Select the outcome this support serves"}
    )
    management_type = forms.ChoiceField(
        label="How is the money managed for this line?",
        choices=ManagementType.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Select how the money is managed"},
    )
    third_party_holder = forms.ModelChoiceField(
        label="Third-party holder", queryset=None, required=False, help_text="Only for third-party lines"
    )
    frequency = forms.CharField(
        label="How often",
        max_length=120,
        help_text="For example, 3 visits a week",
        error_messages={"required": "Enter how often"},
    )
    quantity = forms.DecimalField(
        label="Units a year",
        min_value=Decimal("0.01"),
        max_value=Decimal("100000"),
        decimal_places=2,
        error_messages={
            "required": "Enter how many units a year",
            "invalid": "Enter a number, like 104",
            "min_value": "Units a year must be more than 0",
            "max_value": "Units a year must be 100,000 or fewer",
        },
    )
    unit_cost = pounds("Cost per unit", required=False, help_text="Leave empty to use the service's rate")

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = Service.objects.filter(
            active=True, category__is_prohibited=False
        ).select_related("provider")
        self.fields["category"].queryset = ServiceCategory.objects.filter(active=True)
        self.fields["provider"].queryset = Provider.objects.filter(active=True)
        self.fields["outcome"].queryset = plan.outcomes.all()
        self.fields["third_party_holder"].queryset = Organisation.objects.filter(
            kind=OrganisationKind.THIRD_PARTY_HOLDER
        )

    def clean(self):
        data = super().clean()
        service = data.get("service")
        if not data.get("description") and "description" not in self.errors:
            if service is not None:
                data["description"] = service.name
            else:
                self.add_error("description", "Enter what the support is")
        if service is None and data.get("category") is None:
            self.add_error("category", "Select a category, or choose a service from the directory")
        if service is not None and data.get("category") not in (None, service.category):
            self.add_error("category", SERVICE_KEEPS_CATEGORY.format(category=service.category.name))
        if service is None and data.get("unit_cost") is None:
            self.add_error("unit_cost", "Enter the cost per unit")
        if data.get("management_type") and "third_party_holder" not in self.errors:
            problem = line_holder_problem(
                management_type=data["management_type"], third_party_holder=data.get("third_party_holder")
            )
            if problem:
                self.add_error("third_party_holder", problem)
        return data


class LineChangeForm(LineForm):
    """Adding a line's form, filled in with the line as it is, and the fingerprint of what the page was shown."""

    seen = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, line, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "service": line.service_id,
                "description": line.description,
                # A directory service keeps its own category: asked for only when there is no service.
                "category": None if line.service_id else line.category_id,
                "provider": line.provider_id,
                "outcome": line.outcome_id,
                "management_type": line.management_type,
                "third_party_holder": line.third_party_holder_id,
                "frequency": line.frequency,
                "quantity": line.quantity,
                "unit_cost": line.unit_cost.amount,
                "seen": line_version(line),
            },
        )
        super().__init__(*args, plan=line.plan, **kwargs)


class BudgetForm(forms.Form):
    indicative_budget = pounds("Indicative budget", required=False, help_text="The estimate used to build the plan")
    budget = pounds("Budget a year")
    funding_icb = pounds("ICB share")
    funding_local_authority = pounds("Local authority share", help_text="0 unless this is an integrated budget")
    funding_contribution = pounds("Person's assessed contribution", help_text="0 if they do not contribute")

    def clean(self):
        data = super().clean()
        parts = [data.get(name) for name in ("funding_icb", "funding_local_authority", "funding_contribution")]
        if data.get("budget") is not None and None not in parts and sum(parts) != data["budget"]:
            self.add_error(
                "funding_icb", "The ICB share, local authority share and contribution must add up to the budget"
            )
        return data


class PaymentsForm(forms.Form):
    payment_frequency = forms.ChoiceField(
        label="How often is it paid?",
        choices=PaymentFrequency.choices,
        widget=forms.RadioSelect,
        initial=PaymentFrequency.FOUR_WEEKLY,
        help_text="Each payment is worked out from the support lines paid as a direct payment or by a third party",
    )
    contingency_amount = pounds("Contingency amount", help_text="Set aside for emergencies; kept in its own account")
    contingency_description = forms.CharField(
        label="Contingency plan",
        widget=forms.Textarea,
        max_length=3000,
        help_text="What happens if support breaks down, for example a carer is ill",
        error_messages={"required": "Describe the contingency plan"},
    )

    def __init__(self, *args, plan: CarePlan, **kwargs):
        super().__init__(*args, **kwargs)
        # Each choice says what it would pay, so the broker sees the instalment before choosing (rule 2).
        yearly = [total for _, total in plan.paid_out_a_year()]
        self.fields["payment_frequency"].choices = [
            (value, f"{label}: {format_pence(sum(total // PERIODS_A_YEAR[value] for total in yearly))} each payment")
            for value, label in PaymentFrequency.choices
        ]


class RiskForm(forms.Form):
    risk = forms.CharField(label="Risk", max_length=500, error_messages={"required": "Enter the risk"})
    mitigation = forms.CharField(
        label="How it is managed", max_length=500, error_messages={"required": "Enter how the risk is managed"}
    )


class CoordinationForm(forms.Form):
    care_coordinator = forms.ModelChoiceField(
        label="Care coordinator", queryset=None, error_messages={"required": "Select the care coordinator"}
    )
    health_monitor = forms.CharField(
        label="Who monitors the person's health",
        max_length=200,
        help_text="For example their GP or specialist nurse",
        error_messages={"required": "Enter who monitors the person's health"},
    )
    first_review_date = DateField(
        label="First review date",
        help_text="For example, 15 2 2027",
        error_messages={"required": "Enter the first review date", "invalid": "Enter a real date, like 15 2 2027"},
    )
    notice_period_days = forms.IntegerField(
        label="Notice period in days",
        min_value=1,
        max_value=365,
        error_messages={
            "required": "Enter the notice period",
            "invalid": "Enter a whole number of days, like 28",
            "min_value": "The notice period must be at least 1 day",
            "max_value": "The notice period must be 365 days or fewer",
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["care_coordinator"].queryset = User.objects.filter(
            is_active=True, role_memberships__role__in=[Role.CARE_COORDINATOR, Role.CARE_BROKER]
        ).distinct()

    def clean_first_review_date(self):
        # The plan's anticipated first review: a plan being written cannot have it in the past.
        day = self.cleaned_data["first_review_date"]
        if day < timezone.localdate():
            raise forms.ValidationError("The first review date must be today or in the future")
        return day


class ReturnForm(forms.Form):
    reasons = forms.CharField(
        label="Why are you returning the plan?",
        widget=forms.Textarea,
        max_length=3000,
        error_messages={"required": "Enter why you are returning the plan"},
    )


class SubmitForm(forms.Form):
    """Submitting a plan. One that costs more than its budget asks an approver for an exception, with reasons
    (rule 3); a plan within its budget asks nothing."""

    exception_request_reasons = forms.CharField(
        label="Why should an approver allow an exception to the budget?",
        widget=forms.Textarea,
        max_length=3000,
        help_text="For example, what the extra support is for and why it cannot be paid for within the budget",
        error_messages={"required": "Enter why you are asking for an exception to the budget"},
    )

    def __init__(self, *args, plan: CarePlan, **kwargs):
        super().__init__(*args, **kwargs)
        if plan.over_budget_by.amount <= 0:
            del self.fields["exception_request_reasons"]
        elif not self.is_bound:
            self.fields["exception_request_reasons"].initial = plan.exception_request_reasons  # resubmitting


class ApproveForm(forms.Form):
    """Approving a plan. One that costs more than its budget is approved only with an exception and the approver's
    reasons (rule 3); a plan within its budget needs none."""

    exception_reasons = forms.CharField(
        label="Your reasons for allowing an exception to the budget",
        widget=forms.Textarea,
        max_length=3000,
        help_text="Approving the plan records the exception, with your reasons and your name",
        error_messages={"required": "Enter your reasons for allowing an exception to the budget, or return the plan"},
    )

    def __init__(self, *args, plan: CarePlan, **kwargs):
        super().__init__(*args, **kwargs)
        # Asked only while the plan waits for a decision: approving again (the browser's back button) is answered
        # by the service, "This plan has already been approved".
        if plan.status != PlanStatus.SUBMITTED or plan.over_budget_by.amount <= 0:
            del self.fields["exception_reasons"]


class AgreementForm(forms.Form):
    agreed_by_name = forms.CharField(
        label="Who agreed the plan",
        max_length=200,
        help_text="The person, or their representative",
        error_messages={"required": "Enter who agreed the plan"},
    )
    agreed_on = DateField(
        label="Date they agreed",
        error_messages={"required": "Enter the date they agreed", "invalid": "Enter a real date, like 24 11 2026"},
    )
    icb_signatory = forms.ModelChoiceField(
        label="ICB signatory", queryset=None, error_messages={"required": "Select the ICB signatory"}
    )

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.fields["icb_signatory"].queryset = User.objects.filter(
            is_active=True, organisation=plan.person.icb, role_memberships__role=Role.ICB_APPROVER
        ).exclude(pk=plan.author_id)

    def clean_agreed_on(self):
        agreed_on = self.cleaned_data["agreed_on"]
        problem = agreement_date_problem(self.plan, agreed_on)
        if problem:
            raise forms.ValidationError(problem)
        return agreed_on


class ReconsiderationForm(forms.Form):
    requested_by_name = forms.CharField(
        label="Who is asking", max_length=200, error_messages={"required": "Enter who is asking"}
    )
    reasons = forms.CharField(
        label="Their reasons",
        widget=forms.Textarea,
        max_length=3000,
        error_messages={"required": "Enter their reasons"},
    )


class ReconsiderationDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label="Decision",
        choices=ReconsiderationDecision.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Select a decision"},
    )
    reasons = forms.CharField(
        label="Reasons",
        widget=forms.Textarea,
        max_length=3000,
        error_messages={"required": "Enter the reasons for the decision"},
    )


EARLIEST_DATE_OF_BIRTH = datetime.date(1900, 1, 1)
DATE_OF_BIRTH_IN_FUTURE = "The date of birth must be in the past"
DATE_OF_BIRTH_TOO_EARLY = "The date of birth must be on or after 1 January 1900"

# The outward code (area, district) and the inward code (sector, unit), without the space.
UK_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}")
POSTCODE_INVALID = "Enter a real postcode, like NE1 4LP"


class PersonForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number",
        max_length=14,
        help_text="10 digits, for example 943 476 5919",
        error_messages={"required": "Enter the NHS number"},
    )
    given_name = forms.CharField(
        label="First name", max_length=100, error_messages={"required": "Enter the first name"}
    )
    family_name = forms.CharField(label="Last name", max_length=100, error_messages={"required": "Enter the last name"})
    date_of_birth = DateField(
        label="Date of birth",
        help_text="For example, 17 5 1960",
        error_messages={
            "required": "Enter the date of birth",
            "invalid": "Enter a real date of birth, like 17 5 1960",
        },
    )
    address = forms.CharField(
        label="Address", widget=forms.Textarea, max_length=500, error_messages={"required": "Enter the address"}
    )
    postcode = forms.CharField(
        label="Postcode",
        max_length=10,
        help_text="For example NE1 4LP",
        error_messages={"required": "Enter the postcode", "max_length": POSTCODE_INVALID},
    )
    communication_needs = forms.CharField(
        label="Communication needs",
        required=False,
        max_length=1000,
        help_text="For example large print or a BSL interpreter",
    )
    capacity = forms.ChoiceField(
        label="Can they make decisions about their budget?",
        widget=forms.RadioSelect,
        choices=Capacity.choices,
        error_messages={"required": "Select whether they have capacity"},
    )
    cohort = forms.ChoiceField(
        label="Cohort",
        widget=forms.RadioSelect,
        choices=Cohort.choices,
        error_messages={"required": "Select the cohort"},
    )
    icb = forms.ModelChoiceField(
        label="Accountable ICB",
        queryset=Organisation.objects.filter(kind=OrganisationKind.ICB),
        error_messages={"required": "Select the accountable ICB"},
    )
    local_authority = forms.ModelChoiceField(
        label="Local authority (integrated budgets only)",
        required=False,
        queryset=Organisation.objects.filter(kind=OrganisationKind.LOCAL_AUTHORITY),
    )
    health_monitor = forms.CharField(
        label="Who monitors their health",
        max_length=200,
        error_messages={"required": "Enter who monitors their health"},
    )

    def clean_nhs_number(self) -> str:
        value = normalise_nhs_number(self.cleaned_data["nhs_number"])
        try:
            validate_nhs_number(value)
        except ValidationError as exc:
            raise forms.ValidationError(NHS_NUMBER_INVALID) from exc
        if Person.objects.filter(nhs_number=value).exists():
            raise forms.ValidationError("A person with this NHS number is already recorded")
        return value

    def clean_postcode(self) -> str:
        """A UK postcode, written the standard way (upper case, one space before the last three characters)."""
        compact = re.sub(r"\s+", "", self.cleaned_data["postcode"]).upper()
        if not UK_POSTCODE.fullmatch(compact):
            raise forms.ValidationError(POSTCODE_INVALID)
        return f"{compact[:-3]} {compact[-3:]}"

    def clean_date_of_birth(self):
        born = self.cleaned_data["date_of_birth"]
        if born > timezone.localdate():
            raise forms.ValidationError(DATE_OF_BIRTH_IN_FUTURE)
        if born < EARLIEST_DATE_OF_BIRTH:
            raise forms.ValidationError(DATE_OF_BIRTH_TOO_EARLY)
        return born


# --- People who act for the person, or are paid by them (rules 7 and 11) ------------------------------------

DATE_INVALID = "Enter a real date, like 24 11 2026"


class RepresentativeForm(forms.Form):
    kind = forms.ChoiceField(
        label="Do they act as a representative or a nominee?",
        widget=forms.RadioSelect,
        choices=[
            (ActorKind.REPRESENTATIVE, "Representative: acts for a child under 16 or an adult who lacks capacity"),
            (ActorKind.NOMINEE, "Nominee: chosen by the person, who has capacity, to receive the payments"),
        ],
        error_messages={
            "required": "Select representative or nominee",
            "invalid_choice": "Select representative or nominee",
        },
    )
    name = forms.CharField(
        label="Their full name", max_length=200, error_messages={"required": "Enter their full name"}
    )
    relationship = forms.CharField(
        label="Relationship to the person",
        max_length=100,
        help_text="For example mother, son, friend",
        error_messages={"required": "Enter their relationship to the person"},
    )
    basis = forms.ChoiceField(
        label="Why does a representative act for them? (representatives only)",
        widget=forms.RadioSelect,
        choices=RepresentativeBasis.choices,
        required=False,
        error_messages={"invalid_choice": "Select why a representative acts for them"},
    )
    nominated_on = DateField(
        label="Date the person nominated them (nominees only)",
        required=False,
        error_messages={"invalid": DATE_INVALID},
    )
    consent_recorded_on = DateField(
        label="Date the nominee consented (nominees only)",
        required=False,
        error_messages={"invalid": DATE_INVALID},
    )

    def __init__(self, *args, person: Person, **kwargs):
        super().__init__(*args, **kwargs)
        self.person = person

    def clean(self):
        data = super().clean()
        if data.get("kind") and not ({"basis", "nominated_on", "consent_recorded_on"} & set(self.errors)):
            problems = representative_problems(
                person=self.person,
                kind=data["kind"],
                basis=data.get("basis") or "",
                nominated_on=data.get("nominated_on"),
                consent_recorded_on=data.get("consent_recorded_on"),
            )
            for field, message in problems.items():
                self.add_error(field, message)
        return data


class ConnectedPersonForm(forms.Form):
    provider = forms.ModelChoiceField(
        label="Who is paid: the provider or payee in the directory",
        queryset=Provider.objects.filter(active=True).order_by("name"),
        error_messages={"required": "Select who is paid", "invalid_choice": "Select who is paid from the list"},
    )
    relationship = forms.ChoiceField(
        label="How are they connected to the person?",
        widget=forms.RadioSelect,
        choices=Relationship.choices,
        error_messages={"required": "Select how they are connected", "invalid_choice": "Select how they are connected"},
    )
    lives_in_household = forms.ChoiceField(
        label="Do they live in the same household as the person?",
        widget=forms.RadioSelect,
        choices=[("yes", "Yes"), ("no", "No")],
        error_messages={
            "required": "Select whether they live in the same household",
            "invalid_choice": "Select whether they live in the same household",
        },
    )

    def clean_lives_in_household(self) -> bool:
        return self.cleaned_data["lives_in_household"] == "yes"


class NecessityForm(forms.Form):
    reasons = forms.CharField(
        label="Why is paying them necessary?",
        widget=forms.Textarea,
        max_length=3000,
        help_text="For example, no agency covers the area at the times the person needs support",
        error_messages={"required": "Enter why paying them is necessary"},
    )
