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

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="scheduled_payment_positive"),
            models.CheckConstraint(
                condition=Q(kind="direct_payment") | Q(holder__isnull=False), name="third_party_payment_has_holder"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.amount_pence}p on {self.due_on}"
