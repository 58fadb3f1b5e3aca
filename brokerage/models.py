"""People with personal health budgets, those who act for them, and their care and support plans.

The plan's life is a django-fsm-2 state machine on `CarePlan.status`. The transitions here only change
state and check who may make them and when; the services in `brokerage.services` call them, record the
audit event and any reasons, and save. The money-side transitions (setting up onwards) are called by the
budgets app.
"""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal

import pghistory
import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from djmoney.models.fields import MoneyField
from djmoney.money import Money
from stdnum.gb import nhs

NHS_NUMBER_INVALID = "Enter a valid NHS number, like 943 476 5919"


def normalise_nhs_number(value: str) -> str:
    return "".join(ch for ch in str(value) if not ch.isspace())


def validate_nhs_number(value: str) -> None:
    if not nhs.is_valid(normalise_nhs_number(value)):
        raise ValidationError(NHS_NUMBER_INVALID)


def format_nhs_number(value: str) -> str:
    digits = normalise_nhs_number(value)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 else value


class Cohort(models.TextChoices):
    CONTINUING_HEALTHCARE = "continuing_healthcare", "NHS continuing healthcare"
    CHILDRENS_CONTINUING_CARE = "childrens_continuing_care", "Children's continuing care"
    S117_AFTERCARE = "s117_aftercare", "Section 117 aftercare"
    WHEELCHAIR = "wheelchair", "Wheelchair"
    OTHER = "other", "Other"


class Capacity(models.TextChoices):
    HAS_CAPACITY = "has_capacity", "Has capacity to make decisions about their budget"
    LACKS_CAPACITY = "lacks_capacity", "Lacks capacity to make decisions about their budget"


def money_field(**kwargs) -> MoneyField:
    kwargs.setdefault("default", Decimal("0"))
    return MoneyField(
        max_digits=12, decimal_places=2, default_currency="GBP", currency_choices=[("GBP", "Pound sterling")], **kwargs
    )


@pghistory.track(append_only=True)
class Person(models.Model):
    nhs_number = models.CharField("NHS number", max_length=10, unique=True, validators=[validate_nhs_number])
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    date_of_birth = models.DateField()
    address = models.TextField()
    postcode = models.CharField(max_length=10)
    phone = models.CharField(max_length=30, blank=True)
    email = models.EmailField(blank=True)
    communication_needs = models.TextField(blank=True, help_text="For example: large print, BSL interpreter")
    capacity = models.CharField(max_length=20, choices=Capacity.choices, default=Capacity.HAS_CAPACITY)
    cohort = models.CharField(max_length=32, choices=Cohort.choices)
    icb = models.ForeignKey(
        "accounts.Organisation", on_delete=models.PROTECT, related_name="icb_people", verbose_name="accountable ICB"
    )
    local_authority = models.ForeignKey(
        "accounts.Organisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="la_people",
        help_text="For integrated budgets",
    )
    care_coordinator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="coordinated_people"
    )
    health_monitor = models.CharField(
        "who monitors their health", max_length=200, blank=True, help_text="For example their GP or specialist nurse"
    )
    assigned_staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="assigned_people",
        help_text="Care brokers and coordinators who work with this person",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="person",
        help_text="The person's own sign-in, if they have one",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["family_name", "given_name"]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.full_name

    def save(self, *args, **kwargs):
        self.nhs_number = normalise_nhs_number(self.nhs_number)
        super().save(*args, **kwargs)

    def clean_fields(self, exclude=None):
        # Accept "943 476 5919": spaces go before the length and checksum checks.
        self.nhs_number = normalise_nhs_number(self.nhs_number)
        super().clean_fields(exclude=exclude)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def nhs_number_display(self) -> str:
        return format_nhs_number(self.nhs_number)

    @property
    def address_on_one_line(self) -> str:
        """The address's lines and the postcode joined by commas: "1 High Street, Leeds, LS1 4AP"."""
        parts = [line.strip().strip(",").strip() for line in self.address.splitlines()] + [self.postcode.strip()]
        return ", ".join(part for part in parts if part)

    def age_on(self, day: datetime.date) -> int:
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    @property
    def is_child(self) -> bool:
        """Under 16: a representative acts for them."""
        return self.age_on(timezone.localdate()) < 16

    @property
    def own_sign_in_refusal(self) -> str:
        """Why the person is not given a sign-in of their own ("" if they may be): a child under 16 or an adult who
        lacks capacity has a representative, who signs in and manages the budget for them (rule 7)."""
        if self.is_child:
            return "is under 16"
        if self.capacity == Capacity.LACKS_CAPACITY:
            return "lacks capacity to make decisions about their budget"
        return ""


class ActorKind(models.TextChoices):
    REPRESENTATIVE = "representative", "Representative"
    NOMINEE = "nominee", "Nominee"


class RepresentativeBasis(models.TextChoices):
    CHILD_UNDER_16 = "child_under_16", "The person is a child under 16"
    ADULT_LACKING_CAPACITY = "adult_lacking_capacity", "The person is an adult who lacks capacity"


@pghistory.track(append_only=True)
class Representative(models.Model):
    """Someone who receives or manages a direct payment for the person (DESIGN.md rule 7)."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="representatives")
    kind = models.CharField(max_length=20, choices=ActorKind.choices)
    name = models.CharField(max_length=200)
    relationship = models.CharField(max_length=100, help_text="For example mother, son, friend")
    basis = models.CharField(
        max_length=30,
        choices=RepresentativeBasis.choices,
        blank=True,
        help_text="Why a representative acts (representatives only)",
    )
    nominated_on = models.DateField(null=True, blank=True, help_text="When the person nominated them (nominees only)")
    consent_recorded_on = models.DateField(null=True, blank=True, help_text="When the nominee consented")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="represents"
    )
    active = models.BooleanField(default=True)
    ended_on = models.DateField(null=True, blank=True, help_text="When they stopped acting (the record is kept)")

    class Meta:
        ordering = ["person", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="nominee", consent_recorded_on__isnull=False, nominated_on__isnull=False)
                | Q(kind="representative") & ~Q(basis=""),
                name="representative_has_basis_nominee_has_consent",
            ),
            # Access follows `active` (the rules and selectors): a record with an end date must not still be active.
            models.CheckConstraint(
                condition=Q(active=False) | Q(ended_on__isnull=True), name="representative_ended_inactive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display().lower()} for {self.person})"

    def clean(self) -> None:
        if self.kind == ActorKind.NOMINEE:
            if self.person.capacity != Capacity.HAS_CAPACITY:
                raise ValidationError("Only a person who has capacity can nominate someone")
            if not self.consent_recorded_on or not self.nominated_on:
                raise ValidationError("Record when the person nominated them and when the nominee consented")
        elif self.kind == ActorKind.REPRESENTATIVE:
            if self.basis == RepresentativeBasis.CHILD_UNDER_16 and not self.person.is_child:
                raise ValidationError("The person is 16 or over, so a representative needs another basis")
            if (
                self.basis == RepresentativeBasis.ADULT_LACKING_CAPACITY
                and self.person.capacity != Capacity.LACKS_CAPACITY
            ):
                raise ValidationError("The person has capacity, so they cannot have a representative on that basis")


class Relationship(models.TextChoices):
    SPOUSE = "spouse", "Spouse or civil partner"
    PARTNER = "partner", "Partner"
    FAMILY = "family", "Family member"
    FRIEND = "friend", "Friend"


@pghistory.track(append_only=True)
class ConnectedPerson(models.Model):
    """A payee close to the person (rule 11): paying them needs a dated necessity approval."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="connected_people")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="+")
    relationship = models.CharField(max_length=20, choices=Relationship.choices)
    lives_in_household = models.BooleanField(default=False)
    necessity_approved_on = models.DateField(null=True, blank=True)
    necessity_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    necessity_reasons = models.TextField(blank=True)
    # The last withdrawal of an approval (an ICB approver, with reasons). Withdrawing clears the approval above, so
    # paying them is blocked again exactly as before it; the approval withdrawn is kept in this model's history
    # (pghistory), and a later approval keeps these fields as the record of the last withdrawal.
    necessity_withdrawn_on = models.DateField(null=True, blank=True)
    necessity_withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    necessity_withdrawal_reasons = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who recorded the connection: never the one who approves its necessity",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["person", "provider"], name="connected_person_once"),
            models.CheckConstraint(
                condition=Q(necessity_approved_on__isnull=True) | ~Q(necessity_reasons=""),
                name="necessity_approval_has_reasons",
            ),
            models.CheckConstraint(
                condition=Q(necessity_withdrawn_on__isnull=True)
                | (~Q(necessity_withdrawal_reasons="") & Q(necessity_withdrawn_by__isnull=False)),
                name="necessity_withdrawal_has_reasons",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} ({self.get_relationship_display().lower()} of {self.person})"

    @property
    def needs_necessity_approval(self) -> bool:
        return self.relationship in (Relationship.SPOUSE, Relationship.PARTNER) or self.lives_in_household

    @property
    def blocked(self) -> bool:
        return self.needs_necessity_approval and self.necessity_approved_on is None


class PlanStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted for approval"
    RETURNED = "returned", "Returned to broker"
    APPROVED = "approved", "Approved"
    AGREED = "agreed", "Agreed"
    SETTING_UP = "setting_up", "Setting up"
    ACTIVE = "active", "Active"
    UNDER_REVIEW = "under_review", "Under review"
    VARIED = "varied", "Replaced by a new version"
    SUSPENDED = "suspended", "Suspended"
    STOPPING = "stopping", "Stopping"
    FINAL_AUDIT = "final_audit", "Final audit"
    CLOSED = "closed", "Closed"


class PaymentFrequency(models.TextChoices):
    FOUR_WEEKLY = "four_weekly", "Every 4 weeks, in advance"
    MONTHLY = "monthly", "Monthly, in advance"
    QUARTERLY = "quarterly", "Quarterly, in advance"
    ANNUAL = "annual", "Once a year"


PERIODS_A_YEAR = {
    PaymentFrequency.FOUR_WEEKLY: 13,
    PaymentFrequency.MONTHLY: 12,
    PaymentFrequency.QUARTERLY: 4,
    PaymentFrequency.ANNUAL: 1,
}


class ManagementType(models.TextChoices):
    NOTIONAL = "notional", "Notional budget (the ICB holds the money)"
    THIRD_PARTY = "third_party", "Third-party budget (an independent organisation holds it)"
    DIRECT_PAYMENT = "direct_payment", "Direct payment (paid to the person)"


def can_edit(plan: CarePlan, user) -> bool:
    return user.has_perm("brokerage.change_careplan", plan)


def can_decide(plan: CarePlan, user) -> bool:
    return user.has_perm("brokerage.approve_careplan", plan)


def can_run_budget(plan: CarePlan, user) -> bool:
    return user.has_perm("brokerage.run_budget", plan)


def can_withdraw_consent(plan: CarePlan, user) -> bool:
    """The person, their active representative or nominee, or staff who run the budget recording it for them."""
    person = plan.person
    return (
        (person.user_id is not None and person.user_id == user.pk)
        or person.representatives.filter(user=user, active=True).exists()
        or can_run_budget(plan, user)
    )


def plan_is_ready(plan: CarePlan) -> bool:
    """Nothing stops approval: an over-budget plan needs the approver's exception (rule 3)."""
    from brokerage.validation import plan_problems

    return not plan_problems(plan)


def plan_is_ready_to_submit(plan: CarePlan) -> bool:
    """Nothing stops submitting but, perhaps, the lines costing more than the budget: the broker may then submit the
    plan to ask an approver for an exception, giving reasons (the service asks for them)."""
    from brokerage.validation import submit_problems

    return not submit_problems(plan)


@pghistory.track(append_only=True, exclude=["status"])
class CarePlan(ConcurrentTransitionMixin, models.Model):
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="plans")
    version = models.PositiveIntegerField(default=1)
    previous = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="next")
    status = FSMField(default=PlanStatus.DRAFT, choices=PlanStatus.choices, protected=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="authored_plans")

    about_me = models.TextField(blank=True, help_text="What matters to the person, in their words")
    indicative_budget = money_field(help_text="The estimate the plan was built against")
    budget = money_field(help_text="The budget this plan asks for, a year")
    funding_icb = money_field(verbose_name="ICB share")
    funding_local_authority = money_field(verbose_name="local authority share")
    funding_contribution = money_field(verbose_name="person's assessed contribution")
    payment_amount = money_field()
    payment_frequency = models.CharField(
        max_length=20, choices=PaymentFrequency.choices, default=PaymentFrequency.FOUR_WEEKLY
    )
    contingency_amount = money_field()
    contingency_description = models.TextField(blank=True)
    care_coordinator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="coordinated_plans"
    )
    health_monitor = models.CharField(max_length=200, blank=True)
    first_review_date = models.DateField(null=True, blank=True)
    notice_period_days = models.PositiveIntegerField(default=28)

    exception_request_reasons = models.TextField(
        blank=True,
        help_text="Why the broker asks for an exception: the lines and contingency cost more than the budget (rule 3)",
    )
    exception_reasons = models.TextField(
        blank=True, help_text="Why the lines may cost more than the budget (an approver records this)"
    )
    exception_amount = money_field(
        help_text="What the approver's exception added to the budget, and the ICB's share, so the budget covers the "
        "full cost of every line (rule 3)"
    )
    exception_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="approved_plans"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    agreed_by_name = models.CharField(max_length=200, blank=True, help_text="The person or their representative")
    agreed_on = models.DateField(null=True, blank=True)
    icb_signatory = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="signed_plans"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["person", "-version"]
        constraints = [models.UniqueConstraint(fields=["person", "version"], name="plan_version_unique")]
        permissions = [("run_budget", "Can move a plan through its budget stages")]

    def __str__(self) -> str:
        return f"Care and support plan {self.version} for {self.person}"

    # --- Reads ---------------------------------------------------------------------------------------

    @property
    def lines_total(self) -> Money:
        return sum((line.annual_cost for line in self.lines.all()), Money(0, "GBP"))

    @property
    def over_budget_by(self) -> Money:
        """How much the lines and the contingency cost beyond the budget (rule 3); nothing while no budget is set."""
        if self.budget.amount <= 0:
            return Money(0, "GBP")
        return max(self.lines_total + self.contingency_amount - self.budget, Money(0, "GBP"))

    def paid_out_a_year(self) -> list[tuple[str, int]]:
        """Pence a year paid out in instalments, by payee: the direct-payment lines together, and each third-party
        holder's lines together. Notional lines are paid by the ICB to providers and are not instalments."""
        annual: dict[int | None, list] = {}  # by holder (None: the direct payment): [payee, pence a year]
        for line in self.lines.select_related("third_party_holder"):
            if line.management_type == ManagementType.DIRECT_PAYMENT:
                payee = annual.setdefault(None, ["the direct-payment account", 0])
            elif line.management_type == ManagementType.THIRD_PARTY and line.third_party_holder_id:
                payee = annual.setdefault(line.third_party_holder_id, [line.third_party_holder.name, 0])
            else:
                continue
            payee[1] += int(line.annual_cost.amount * 100)
        return [(name, total) for name, total in annual.values()]

    def payments_per_period(self, frequency: str = "") -> list[tuple[str, Money]]:
        """Each instalment by payee, as the budget's schedule will pay it: the year in equal instalments, the
        year's last one taking the rounding."""
        periods = PERIODS_A_YEAR.get(frequency or self.payment_frequency)
        if not periods:
            return []
        return [(name, Money(Decimal(total // periods) / 100, "GBP")) for name, total in self.paid_out_a_year()]

    @property
    def payment_per_period(self) -> Money:
        """The plan's payment amount (rule 2): worked out from its lines, so it is what will be paid."""
        return sum((amount for _, amount in self.payments_per_period()), Money(0, "GBP"))

    @property
    def funding_total(self) -> Money:
        return self.funding_icb + self.funding_local_authority + self.funding_contribution

    @property
    def is_editable(self) -> bool:
        return self.status == PlanStatus.DRAFT

    # --- Transitions: state only; services record events and save ---------------------------------

    @transition(
        field=status,
        source=PlanStatus.DRAFT,
        target=PlanStatus.SUBMITTED,
        permission=can_edit,
        conditions=[plan_is_ready_to_submit],
    )
    def submit(self):
        pass

    @transition(field=status, source=PlanStatus.SUBMITTED, target=PlanStatus.RETURNED, permission=can_decide)
    def return_to_broker(self):
        pass

    @transition(field=status, source=PlanStatus.RETURNED, target=PlanStatus.DRAFT, permission=can_edit)
    def reopen(self):
        pass

    @transition(
        field=status,
        source=PlanStatus.SUBMITTED,
        target=PlanStatus.APPROVED,
        permission=can_decide,
        conditions=[plan_is_ready],
    )
    def approve(self):
        pass

    @transition(field=status, source=PlanStatus.APPROVED, target=PlanStatus.AGREED, permission=can_edit)
    def record_agreement(self):
        pass

    @transition(field=status, source=PlanStatus.AGREED, target=PlanStatus.SETTING_UP, permission=can_run_budget)
    def start_setting_up(self):
        pass

    @transition(field=status, source=PlanStatus.SETTING_UP, target=PlanStatus.ACTIVE, permission=can_run_budget)
    def activate(self):
        pass

    @transition(field=status, source=PlanStatus.ACTIVE, target=PlanStatus.UNDER_REVIEW, permission=can_edit)
    def start_review(self):
        pass

    @transition(field=status, source=PlanStatus.UNDER_REVIEW, target=PlanStatus.ACTIVE, permission=can_edit)
    def finish_review(self):
        pass

    @transition(
        field=status,
        source=[PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW],
        target=PlanStatus.VARIED,
        permission=can_run_budget,  # when the new version's budget is set up (finance or the assigned staff)
    )
    def vary(self):
        pass

    @transition(field=status, source=PlanStatus.ACTIVE, target=PlanStatus.SUSPENDED, permission=can_run_budget)
    def suspend(self):
        pass

    @transition(field=status, source=PlanStatus.SUSPENDED, target=PlanStatus.ACTIVE, permission=can_run_budget)
    def resume(self):
        pass

    @transition(
        field=status,
        source=[PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.SUSPENDED],
        target=PlanStatus.STOPPING,
        permission=can_run_budget,
    )
    def stop(self):
        pass

    @transition(
        field=status,
        source=[PlanStatus.SETTING_UP, PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW, PlanStatus.SUSPENDED],
        target=PlanStatus.STOPPING,
        permission=can_withdraw_consent,
    )
    def withdraw_consent(self):
        """Rule 17: withdrawing consent stops the budget at once, with no decision needed."""

    # A decision to stop overturned on reconsideration (rule 5): the budget goes back to what it was before.
    @transition(field=status, source=PlanStatus.STOPPING, target=PlanStatus.ACTIVE, permission=can_decide)
    def reinstate(self):
        pass

    @transition(field=status, source=PlanStatus.STOPPING, target=PlanStatus.SUSPENDED, permission=can_decide)
    def reinstate_suspended(self):
        pass

    @transition(field=status, source=PlanStatus.STOPPING, target=PlanStatus.FINAL_AUDIT, permission=can_run_budget)
    def begin_final_audit(self):
        pass

    @transition(field=status, source=PlanStatus.FINAL_AUDIT, target=PlanStatus.CLOSED, permission=can_run_budget)
    def close(self):
        pass


# Draft items change and are removed while a plan is built: their history says who (R9).
@pghistory.track(pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent(), append_only=True)
class Need(models.Model):
    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="needs")
    description = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description


# Draft items change and are removed while a plan is built: their history says who (R9).
@pghistory.track(pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent(), append_only=True)
class Outcome(models.Model):
    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="outcomes")
    description = models.CharField(max_length=500)
    needs = models.ManyToManyField(Need, related_name="outcomes")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description


# Draft items change and are removed while a plan is built: their history says who (R9).
@pghistory.track(pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent(), append_only=True)
class PlanLine(models.Model):
    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="lines")
    service = models.ForeignKey("providers.Service", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    description = models.CharField(max_length=300, help_text="What the support is")
    category = models.ForeignKey("providers.ServiceCategory", on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey(
        "providers.Provider",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who provides it, or who is paid",
    )
    frequency = models.CharField(max_length=120, help_text="How often, for example 3 visits a week")
    quantity = models.DecimalField(max_digits=10, decimal_places=2, help_text="Units a year")
    unit_cost = money_field()
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="lines")
    management_type = models.CharField(max_length=20, choices=ManagementType.choices)
    third_party_holder = models.ForeignKey(
        "accounts.Organisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Third-party lines: who holds the money",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="plan_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_cost__gte=0), name="plan_line_unit_cost_not_negative"),
        ]

    def __str__(self) -> str:
        return self.description

    @property
    def annual_cost(self) -> Money:
        amount = (self.quantity * self.unit_cost.amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return Money(amount, "GBP")


# Draft items change and are removed while a plan is built: their history says who (R9).
@pghistory.track(pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent(), append_only=True)
class Risk(models.Model):
    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="risks")
    risk = models.CharField(max_length=500)
    mitigation = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.risk


class PlanEvent(models.Model):
    """Every transition of a plan: who, when, from, to and why. Never changed or deleted."""

    plan = models.ForeignKey(CarePlan, on_delete=models.PROTECT, related_name="transitions")
    transition = models.CharField(max_length=40)
    from_status = models.CharField(max_length=20, choices=PlanStatus.choices)
    to_status = models.CharField(max_length=20, choices=PlanStatus.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    reasons = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        triggers = [pgtrigger.Protect(name="plan_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.transition}: {self.from_status} → {self.to_status}"


class ReconsiderationDecision(models.TextChoices):
    UPHELD = "upheld", "Original decision upheld"
    CHANGED = "changed", "Decision changed"


@pghistory.track(append_only=True)
class Reconsideration(models.Model):
    """The person asks for a decision to be looked at again (rule 5); enforcement pauses until decided."""

    plan = models.ForeignKey(CarePlan, on_delete=models.PROTECT, related_name="reconsiderations")
    requested_by_name = models.CharField(max_length=200)
    reasons = models.TextField()
    requested_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=20, choices=ReconsiderationDecision.choices, blank=True)
    decision_reasons = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decision="") | (~Q(decision_reasons="") & Q(decided_by__isnull=False)),
                name="reconsideration_decision_has_reasons",
            )
        ]

    def __str__(self) -> str:
        return f"Reconsideration requested by {self.requested_by_name}"

    @property
    def pending(self) -> bool:
        return not self.decision


class InvitationKind(models.TextChoices):
    NEW = "new", "A new sign-in was made"
    LINKED = "linked", "An existing sign-in was linked"
    RESENT = "resent", "The invitation was sent again"


class SignInInvitation(models.Model):
    """An invitation to sign in, for the person or for one of their representatives or nominees: who invited whom,
    to which sign-in and email address, and when (brokerage.sign_ins). Never changed or deleted."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="sign_in_invitations")
    representative = models.ForeignKey(
        Representative,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sign_in_invitations",
        help_text="Empty when the person themself was invited",
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    email = models.EmailField(help_text="Where the invitation was sent")
    kind = models.CharField(max_length=10, choices=InvitationKind.choices)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["person", "-at"], name="sign_in_invitation_person_at")]
        triggers = [
            pgtrigger.Protect(name="sign_in_invitation_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

    def __str__(self) -> str:
        return f"{self.invited_by} invited {self.email} ({self.get_kind_display().lower()}) at {self.at:%Y-%m-%d %H:%M}"


class RecordView(models.Model):
    """One look at a person's record (R9): who opened which page or download about whom, and when. Written by
    brokerage.view_audit for every successful GET of a page that identifies a person; never changed or deleted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # No database constraint: the view is recorded even while the person row is locked by a concurrent change.
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    what = models.CharField(max_length=100, help_text="The page's URL name, e.g. budgets:my-budget")
    path = models.CharField(max_length=500)
    method = models.CharField(max_length=8)
    at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["person", "-at"], name="record_view_person_at")]
        triggers = [pgtrigger.Protect(name="record_view_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.user} viewed {self.what} for person {self.person_id} at {self.at:%Y-%m-%d %H:%M}"


# Who is assigned to a person decides who may open their record, and which needs an outcome meets is part of the
# plan: the link tables get history too (R9), through proxies, since pgtrigger's migrations cannot reach Django's
# auto-created link models directly. Deletes are kept as events, since removing a link is the change.
@pghistory.track(
    pghistory.InsertEvent("add"),
    pghistory.DeleteEvent("remove"),
    obj_field=None,
    model_name="PersonAssignedStaffEvent",
    append_only=True,
)
class PersonAssignedStaff(Person.assigned_staff.through):
    class Meta:
        proxy = True


@pghistory.track(
    pghistory.InsertEvent("add"),
    pghistory.DeleteEvent("remove"),
    obj_field=None,
    model_name="OutcomeNeedEvent",
    append_only=True,
)
class OutcomeNeed(Outcome.needs.through):
    class Meta:
        proxy = True
