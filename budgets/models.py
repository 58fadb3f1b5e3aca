"""Budgets set up from agreed plans: their accounts in the ledger, their lines and their payment schedule.

A budget is made from an agreed plan; the plan's state machine stays the single record of where the
budget is in its life (setting up, active, suspended...). Money amounts here are integer pence, like the
ledger's; plans keep django-money amounts for people to read.
"""

from __future__ import annotations

import pghistory
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Budget(models.Model):
    plan = models.OneToOneField("brokerage.CarePlan", on_delete=models.PROTECT, related_name="budget_record")
    start_date = models.DateField()
    annual_pence = models.BigIntegerField()
    set_up_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    first_paid_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(annual_pence__gt=0), name="budget_amount_positive")]

    def __str__(self) -> str:
        return f"Budget {self.pk} for {self.plan.person}"

    @property
    def owner_ref(self) -> str:
        return f"budget:{self.pk}"


class BudgetAccount(models.Model):
    """Which ledger account plays which part for this budget, e.g. `held:direct-payment`."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="accounts")
    purpose = models.CharField(max_length=80)
    account = models.OneToOneField("ledger.Account", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["budget", "purpose"]
        constraints = [models.UniqueConstraint(fields=["budget", "purpose"], name="budget_account_purpose_unique")]

    def __str__(self) -> str:
        return f"{self.budget.owner_ref}:{self.purpose}"


class BudgetLine(models.Model):
    """A plan line as funded: each is paid for in exactly one way."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="lines")
    plan_line = models.OneToOneField("brokerage.PlanLine", on_delete=models.PROTECT, related_name="budget_line")
    management_type = models.CharField(max_length=20)
    annual_pence = models.BigIntegerField()
    spend_account = models.OneToOneField("ledger.Account", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["budget", "id"]
        constraints = [models.CheckConstraint(condition=Q(annual_pence__gte=0), name="budget_line_not_negative")]

    def __str__(self) -> str:
        return self.plan_line.description


class PaymentKind(models.TextChoices):
    DIRECT_PAYMENT = "direct_payment", "Direct payment instalment"
    THIRD_PARTY = "third_party", "Transfer to the third-party holder"


class PaymentStatus(models.TextChoices):
    DUE = "due", "Due"
    PAID = "paid", "Paid"


@pghistory.track(append_only=True)
class ScheduledPayment(models.Model):
    """One payment the budget makes on a date: an instalment to the person or a transfer to a holder."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=20, choices=PaymentKind.choices)
    holder = models.ForeignKey(
        "accounts.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    due_on = models.DateField()
    amount_pence = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.DUE)
    transfer_key = models.CharField(max_length=200, unique=True, help_text="The ledger idempotency key it posts with")
    offset_pence = models.BigIntegerField(default=0, help_text="Surplus offset against this instalment (rule 15)")

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="scheduled_payment_positive"),
            models.CheckConstraint(
                condition=Q(kind="direct_payment") | Q(holder__isnull=False), name="third_party_payment_has_holder"
            ),
            models.CheckConstraint(
                condition=Q(offset_pence__gte=0, offset_pence__lte=models.F("amount_pence")),
                name="offset_at_most_the_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.amount_pence}p on {self.due_on}"


class DedicatedAccountKind(models.TextChoices):
    BANK = "bank", "Bank account"
    PREPAID_CARD = "prepaid_card", "Prepaid card"
    MANAGED = "managed", "Managed account"


@pghistory.track(append_only=True)
class DirectPaymentAccount(models.Model):
    """The account a direct payment goes into, used only for it, with named signatories (rule 8)."""

    budget = models.OneToOneField(Budget, on_delete=models.PROTECT, related_name="dedicated_account")
    kind = models.CharField(max_length=20, choices=DedicatedAccountKind.choices)
    account_name = models.CharField(max_length=18)
    sort_code = models.CharField(max_length=6)
    account_number = models.CharField(max_length=8)
    signatories = models.TextField(help_text="Who may operate the account, one a line")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sort_code__regex=r"^\d{6}$") & Q(account_number__regex=r"^\d{8}$"),
                name="dedicated_account_bank_details",
            ),
            models.CheckConstraint(condition=~Q(signatories=""), name="dedicated_account_has_signatories"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.budget}"


@pghistory.track(append_only=True)
class HolderBankAccount(models.Model):
    """Where transfers to a third-party holder are paid."""

    organisation = models.OneToOneField("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
    account_name = models.CharField(max_length=18)
    sort_code = models.CharField(max_length=6)
    account_number = models.CharField(max_length=8)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sort_code__regex=r"^\d{6}$") & Q(account_number__regex=r"^\d{8}$"),
                name="holder_account_bank_details",
            ),
        ]

    def __str__(self) -> str:
        return self.account_name


class RunStatus(models.TextChoices):
    DRAFT = "draft", "Waiting for approval"
    APPROVED = "approved", "Approved"
    POSTED = "posted", "Paid"


@pghistory.track(append_only=True)
class PaymentRun(models.Model):
    """Every payment due by a date, approved by someone other than its author, then posted once."""

    run_date = models.DateField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.DRAFT)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    approved_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Rule 4 in the database too: the approver is never the author.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=models.F("author")),
                name="payment_run_approver_not_author",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(approved_by__isnull=False), name="payment_run_approved_before_paid"
            ),
        ]

    def __str__(self) -> str:
        return f"Payment run {self.pk} for {self.run_date}"

    @property
    def total_pence(self) -> int:
        return sum(item.amount_pence for item in self.items.all())


class PaymentRunItem(models.Model):
    run = models.ForeignKey(PaymentRun, on_delete=models.PROTECT, related_name="items")
    scheduled_payment = models.OneToOneField(ScheduledPayment, on_delete=models.PROTECT, related_name="run_item")
    amount_pence = models.BigIntegerField()
    payee_name = models.CharField(max_length=18)
    sort_code = models.CharField(max_length=6)
    account_number = models.CharField(max_length=8)
    reference = models.CharField(max_length=18)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.payee_name}: {self.amount_pence}p"


class InvoiceStatus(models.TextChoices):
    RECORDED = "recorded", "Waiting for approval"
    APPROVED = "approved", "Approved"
    PAID = "paid", "Paid"
    REJECTED = "rejected", "Rejected"


@pghistory.track(append_only=True)
class Invoice(models.Model):
    """A provider's invoice against a notional line: recorded by one person, approved by another (maker and
    checker), then paid by posting the line's commitment."""

    budget_line = models.ForeignKey(BudgetLine, on_delete=models.PROTECT, related_name="invoices")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="+")
    invoice_number = models.CharField(max_length=60)
    invoice_date = models.DateField()
    amount_pence = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.RECORDED)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reasons = models.TextField(blank=True, help_text="Why it was rejected")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-recorded_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="invoice_amount_positive"),
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=models.F("recorded_by")),
                name="invoice_checker_not_maker",
            ),
            models.UniqueConstraint(fields=["provider", "invoice_number"], name="invoice_number_once_per_provider"),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.invoice_number} from {self.provider}"

    @property
    def ledger_key(self) -> str:
        return f"invoice:{self.pk}"


class SpendFlag(models.TextChoices):
    NONE = "", "None"
    UNCODED = "uncoded", "Not coded to a plan line: review"


@pghistory.track(append_only=True)
class DirectPaymentSpend(models.Model):
    """Money spent from the direct-payment account, coded to the plan line it pays for (rule 9). Spending
    with no line is still recorded, in the budget's uncoded account, and flagged for review."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="dp_spends")
    budget_line = models.ForeignKey(BudgetLine, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payee = models.CharField(max_length=200)
    spent_on = models.DateField()
    amount_pence = models.BigIntegerField()
    flag = models.CharField(max_length=20, choices=SpendFlag.choices, blank=True, default=SpendFlag.NONE)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    idempotency_key = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["-spent_on", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount_pence__gt=0), name="dp_spend_positive")]

    def __str__(self) -> str:
        return f"{self.payee}: {self.amount_pence}p"
