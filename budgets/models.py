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


@pghistory.track(append_only=True)
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


@pghistory.track(append_only=True)
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


@pghistory.track(append_only=True)
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
    SKIPPED = "skipped", "Not paid: the budget was suspended"


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
    recipient = models.ForeignKey(
        "brokerage.Representative",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The representative or nominee who receives the direct payment; empty when the person does (rule 7)",
    )

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
    stripe_account_id = models.CharField(
        max_length=40, blank=True, help_text="A Stripe connected account: transfers go there instead of by BACS"
    )

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
    DISCARDED = "discarded", "Discarded before approval"


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
                condition=Q(status__in=["draft", "discarded"]) | Q(approved_by__isnull=False),
                name="payment_run_approved_before_paid",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment run {self.pk} for {self.run_date}"

    @property
    def total_pence(self) -> int:
        return sum(item.amount_pence for item in self.items.all())


class PayoutMethod(models.TextChoices):
    BACS = "bacs", "BACS"
    CONNECT = "connect", "Stripe transfer"


@pghistory.track(append_only=True)
class PaymentRunItem(models.Model):
    """One payment in a run: a scheduled payment or an approved invoice, sent by BACS file or, to a payee with
    a connected Stripe account, as a Connect transfer carrying our own idempotency key."""

    run = models.ForeignKey(PaymentRun, on_delete=models.PROTECT, related_name="items")
    scheduled_payment = models.OneToOneField(
        ScheduledPayment, on_delete=models.PROTECT, null=True, blank=True, related_name="run_item"
    )
    invoice = models.OneToOneField("Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="run_item")
    dp_invoice = models.OneToOneField(
        "DirectPaymentInvoice", on_delete=models.PROTECT, null=True, blank=True, related_name="run_item"
    )
    amount_pence = models.BigIntegerField()
    payee_name = models.CharField(max_length=18)
    method = models.CharField(max_length=10, choices=PayoutMethod.choices, default=PayoutMethod.BACS)
    sort_code = models.CharField(max_length=6, blank=True)
    account_number = models.CharField(max_length=8, blank=True)
    connect_account = models.CharField(max_length=40, blank=True)
    reference = models.CharField(max_length=18)
    gateway_transfer_id = models.CharField(max_length=60, blank=True)
    failure = models.TextField(blank=True, help_text="Why the gateway refused it; paying the run again retries")
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scheduled_payment__isnull=False, invoice__isnull=True, dp_invoice__isnull=True)
                | Q(scheduled_payment__isnull=True, invoice__isnull=False, dp_invoice__isnull=True)
                | Q(scheduled_payment__isnull=True, invoice__isnull=True, dp_invoice__isnull=False),
                name="run_item_pays_one_thing",
            ),
            models.CheckConstraint(
                condition=Q(method="bacs", sort_code__regex=r"^\d{6}$", account_number__regex=r"^\d{8}$")
                | Q(method="connect", connect_account__startswith="acct_"),
                name="run_item_has_payee_details",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.payee_name}: {self.amount_pence}p"

    @property
    def idempotency_key(self) -> str:
        """Sent with the Connect transfer: the same item never pays twice, even if the run is retried."""
        return f"payment-run-item:{self.pk}"

    @property
    def paying_for(self) -> str:
        if self.invoice_id:
            return f"Invoice {self.invoice.invoice_number}"
        if self.dp_invoice_id:
            return f"Invoice {self.dp_invoice.invoice_number} (direct payment)"
        return self.scheduled_payment.get_kind_display()

    @property
    def due_on(self):
        if self.invoice_id:
            return self.invoice.invoice_date
        if self.dp_invoice_id:
            return timezone.localdate(self.dp_invoice.recorded_at)
        return self.scheduled_payment.due_on

    @property
    def budget(self):
        if self.invoice_id:
            return self.invoice.budget_line.budget
        if self.dp_invoice_id:
            return self.dp_invoice.budget
        return self.scheduled_payment.budget


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
            # Once per provider, unless rejected: an invoice recorded by mistake can be recorded again correctly.
            models.UniqueConstraint(
                fields=["provider", "invoice_number"],
                condition=~Q(status="rejected"),
                name="invoice_number_once_per_provider",
            ),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.invoice_number} from {self.provider}"

    @property
    def ledger_key(self) -> str:
        return f"invoice:{self.pk}"


class SpendFlag(models.TextChoices):
    NONE = "", "None"
    UNCODED = "uncoded", "Not coded to a plan line: review"
    PROHIBITED = "prohibited", "A category the budget cannot pay for: review"


class SpendCheck(models.TextChoices):
    """What the care coordinator or broker decided about flagged spending (rules 9 and 10)."""

    CODED = "coded", "Coded to a plan line"
    ACCEPTED = "accepted", "Accepted as checked"
    RECOVERY = "recovery", "Referred for recovery"


class FlaggedSpendCheck(models.Model):
    """The check of spending flagged for review: what was decided, why, by whom and when. Blank until checked; the
    change is kept in the spend's history (pghistory), so the row shows the decision and its history what was
    recorded before it. Coding moves `budget_line` to the chosen line (the ledger gets a correcting transfer)."""

    check_decision = models.CharField(max_length=20, choices=SpendCheck.choices, blank=True, default="")
    check_reasons = models.TextField(blank=True)
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def needs_check(self) -> bool:
        return bool(self.flag) and not self.check_decision


def flagged_spend_check_constraints(prefix: str) -> list[models.BaseConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(check_decision="", checked_by__isnull=True, checked_at__isnull=True)
            | (~Q(check_decision="") & Q(checked_by__isnull=False, checked_at__isnull=False)),
            name=f"{prefix}_check_says_who_and_when",
        ),
        models.CheckConstraint(condition=Q(check_decision="") | ~Q(flag=""), name=f"{prefix}_check_only_if_flagged"),
        models.CheckConstraint(
            condition=Q(check_decision__in=["", "coded"]) | ~Q(check_reasons=""), name=f"{prefix}_check_has_reasons"
        ),
        models.CheckConstraint(
            condition=~Q(check_decision="coded") | Q(budget_line__isnull=False), name=f"{prefix}_coded_has_line"
        ),
    ]


@pghistory.track(append_only=True)
class DirectPaymentSpend(FlaggedSpendCheck):
    """Money spent from the direct-payment account, coded to the plan line it pays for (rule 9). Spending
    with no line is still recorded, in the budget's uncoded account, and flagged for review."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="dp_spends")
    budget_line = models.ForeignKey(BudgetLine, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payee = models.CharField(max_length=200)
    spent_on = models.DateField()
    amount_pence = models.BigIntegerField()
    flag = models.CharField(max_length=20, choices=SpendFlag.choices, blank=True, default=SpendFlag.NONE)
    category = models.ForeignKey(
        "providers.ServiceCategory", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    connected_person = models.ForeignKey(
        "brokerage.ConnectedPerson", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    receipt = models.FileField(upload_to="receipts/%Y/%m/", blank=True, help_text="Kept outside the web root")
    receipt_type = models.CharField(max_length=40, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    idempotency_key = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["-spent_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="dp_spend_positive"),
            *flagged_spend_check_constraints("dp_spend"),
        ]

    def __str__(self) -> str:
        return f"{self.payee}: {self.amount_pence}p"


@pghistory.track(append_only=True)
class HolderSpend(FlaggedSpendCheck):
    """Money a third-party holder spent from what it holds for the budget, coded to the plan line it pays for,
    or recorded as uncoded and flagged for review (rule 9)."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="holder_spends")
    holder = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
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
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="holder_spend_positive"),
            *flagged_spend_check_constraints("holder_spend"),
        ]

    def __str__(self) -> str:
        return f"{self.payee}: {self.amount_pence}p"


@pghistory.track(append_only=True)
class HolderReturn(models.Model):
    """A third-party holder's periodic return (rule 20): what it received and spent for the budget in a period,
    taken from the ledger when submitted, with the holder's own note."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="holder_returns")
    holder = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    received_pence = models.BigIntegerField()
    spent_pence = models.BigIntegerField()
    uncoded_pence = models.BigIntegerField()
    balance_pence = models.BigIntegerField(help_text="What the holder held for the budget at the end of the period")
    note = models.TextField(blank=True)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-period_end", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(period_end__gte=models.F("period_start")), name="return_period_order"),
            models.UniqueConstraint(fields=["budget", "holder", "period_start"], name="return_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"Return {self.period_start} to {self.period_end} for {self.budget}"


class MoneyInSource(models.TextChoices):
    FUNDER = "funder", "One of the budget's funders"
    CONTRIBUTION = "contribution", "The person's assessed contribution"
    OTHER = "other", "Anyone else"


@pghistory.track(append_only=True)
class DirectPaymentMoneyIn(models.Model):
    """Money paid into the dedicated account other than by a payment run. Anything not from the budget's funders
    or the person's recorded contribution is kept apart and flagged as mixing (rule 8)."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="dp_money_in")
    received_on = models.DateField()
    amount_pence = models.BigIntegerField()
    payer = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=MoneyInSource.choices)
    mixing = models.BooleanField(default=False)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    idempotency_key = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="dp_money_in_positive"),
            models.CheckConstraint(
                condition=Q(source="other", mixing=True) | (~Q(source="other") & Q(mixing=False)),
                name="dp_money_in_mixing_is_other",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.payer}: {self.amount_pence}p"


class DirectPaymentInvoiceStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for the next payment run"
    SENDING = "sending", "Being sent"
    PAID = "paid", "Paid"
    FAILED = "failed", "Not paid"


@pghistory.track(append_only=True)
class DirectPaymentInvoice(models.Model):
    """A provider's invoice the person pays from their direct payment: by a Stripe Connect transfer when the
    provider has a connected account, otherwise queued for the next payment run. The money is reserved in the
    ledger (a pending transfer) as soon as the person confirms, so it cannot be spent twice."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="dp_invoices")
    budget_line = models.ForeignKey(BudgetLine, on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="+")
    invoice_number = models.CharField(max_length=60)
    amount_pence = models.BigIntegerField()
    status = models.CharField(
        max_length=10, choices=DirectPaymentInvoiceStatus.choices, default=DirectPaymentInvoiceStatus.QUEUED
    )
    method = models.CharField(max_length=10, choices=PayoutMethod.choices)
    gateway_transfer_id = models.CharField(max_length=60, blank=True)
    failure = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True, help_text="The one-time key of the form")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-recorded_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_pence__gt=0), name="dp_invoice_positive"),
            models.UniqueConstraint(fields=["provider", "invoice_number"], name="dp_invoice_once_per_provider"),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.invoice_number} from {self.provider}"

    @property
    def ledger_key(self) -> str:
        return f"dp-invoice:{self.pk}"


class CardPaymentPurpose(models.TextChoices):
    CONTRIBUTION = "contribution", "My assessed contribution"
    TOP_UP = "top_up", "A top-up to my budget"
    SURPLUS = "surplus", "Paying back surplus"
    RECOVERY = "recovery", "Paying back money asked for (a recovery)"


class CardPaymentStatus(models.TextChoices):
    STARTED = "started", "Started"
    PROCESSING = "processing", "Waiting for the card payment to be confirmed"
    SUCCEEDED = "succeeded", "Paid"
    FAILED = "failed", "Not paid"
    REFUNDED = "refunded", "Refunded"


@pghistory.track(append_only=True)
class CardPayment(models.Model):
    """A payment by card from the person (Stripe PaymentIntent). Credited to the ledger only when the signed
    `payment_intent.succeeded` webhook arrives, never on the browser's word."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="card_payments")
    purpose = models.CharField(max_length=20, choices=CardPaymentPurpose.choices)
    amount_pence = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=CardPaymentStatus.choices, default=CardPaymentStatus.STARTED)
    intent_id = models.CharField(max_length=80, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True, help_text="Sent with the PaymentIntent")
    failure = models.TextField(blank=True)
    refunded_pence = models.BigIntegerField(default=0)
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_pence__gt=0, amount_pence__lte=1_000_000), name="card_payment_amount"
            ),
            models.CheckConstraint(
                condition=Q(refunded_pence__gte=0, refunded_pence__lte=models.F("amount_pence")),
                name="card_refund_at_most_paid",
            ),
            models.UniqueConstraint(fields=["intent_id"], condition=~Q(intent_id=""), name="card_payment_intent_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()}: {self.amount_pence}p"

    @property
    def ledger_key(self) -> str:
        return f"card-payment:{self.pk}"


class StripeEvent(models.Model):
    """Each webhook event once: stored in the same transaction as its effect, so a duplicate delivery finds it
    and is answered with the first result."""

    event_id = models.CharField(max_length=80, unique=True)
    type = models.CharField(max_length=80)
    result = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


@pghistory.track(append_only=True)
class Statement(models.Model):
    """A budget's statement for a period, rendered once to PDF (WeasyPrint) and kept: a batch that is run again
    skips what exists, so each statement is stored exactly once."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="statements")
    period_start = models.DateField()
    period_end = models.DateField()
    large_print = models.BooleanField(default=False)
    pdf = models.FileField(upload_to="statements/%Y/%m/", help_text="Kept outside the web root")
    sha256 = models.CharField(max_length=64)
    pages = models.PositiveIntegerField()
    generated_at = models.DateTimeField(default=timezone.now, editable=False)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "budget"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "period_end", "large_print"], name="statement_once_per_period"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=models.F("period_start")), name="statement_period_order"
            ),
        ]

    def __str__(self) -> str:
        return f"Statement {self.period_start} to {self.period_end} for {self.budget}"


class StatementDownload(models.Model):
    """Every download of a statement, PDF or HTML, by whom and when."""

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, null=True, blank=True, related_name="downloads")
    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    format = models.CharField(max_length=10, choices=[("pdf", "PDF"), ("html", "Web page")])
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    downloaded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-downloaded_at"]

    def __str__(self) -> str:
        return f"{self.user} downloaded {self.format} for {self.budget}"


# --- Monitoring and the rest of a budget's life (reviews, returns, surplus, suspension, stopping, recovery,
# closing, letters). Periods and thresholds are settings (config/settings.py "Monitoring").


class ReviewReason(models.TextChoices):
    FIRST = "first", "First review after the first payment"
    ANNUAL = "annual", "Yearly review"
    CONCERN = "concern", "A concern was raised"
    HEALTH_CHANGE = "health_change", "A change in health"
    SURPLUS = "surplus", "Money building up in the account"
    LATE_RETURNS = "late_returns", "Returns are late"


class ReviewDecision(models.TextChoices):
    NO_CHANGE = "no_change", "No change"
    VARY = "vary", "Vary the plan"
    SUSPEND = "suspend", "Suspend the budget"
    STOP = "stop", "Stop the budget"


@pghistory.track(append_only=True)
class Review(models.Model):
    """A review of the budget and plan: scheduled (rule 13) or triggered by a concern, a health change, a
    surplus or late returns. Completing it records who took part, the outcomes achieved and the decision."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="reviews")
    reason = models.CharField(max_length=20, choices=ReviewReason.choices)
    due_on = models.DateField()
    raised_note = models.TextField(blank=True)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    completed_on = models.DateField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    participants = models.TextField(blank=True, help_text="Who took part, one a line")
    decision = models.CharField(max_length=20, choices=ReviewDecision.choices, blank=True)
    decision_reasons = models.TextField(blank=True)

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "reason", "due_on"], name="review_once_per_reason_and_date"),
            models.CheckConstraint(
                condition=Q(completed_on__isnull=True) | (~Q(decision="") & ~Q(participants="")),
                name="completed_review_has_decision_and_participants",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} due {self.due_on}"


class OutcomeProgress(models.TextChoices):
    ACHIEVED = "achieved", "Achieved"
    PARTLY = "partly", "Partly achieved"
    NOT_YET = "not_yet", "Not yet achieved"


@pghistory.track(append_only=True)
class ReviewOutcome(models.Model):
    review = models.ForeignKey(Review, on_delete=models.PROTECT, related_name="outcomes")
    outcome = models.ForeignKey("brokerage.Outcome", on_delete=models.PROTECT, related_name="+")
    progress = models.CharField(max_length=10, choices=OutcomeProgress.choices)
    notes = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["review", "outcome"], name="review_outcome_once")]

    def __str__(self) -> str:
        return f"{self.outcome}: {self.get_progress_display()}"


@pghistory.track(append_only=True)
class DirectPaymentReturn(models.Model):
    """A periodic return due (rule 20) from the direct-payment holder (statements, timesheets, invoices and a
    declaration) or, with `holder` set, from a third-party holder (its figures are in HolderReturn). Late returns
    escalate step by step and, at the last step, trigger a review."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="dp_returns")
    holder = models.ForeignKey(
        "accounts.Organisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Set for a third-party holder's return; empty for the direct-payment holder's",
    )
    period_start = models.DateField()
    period_end = models.DateField()
    due_on = models.DateField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    declaration = models.BooleanField(default=False)
    notes = models.TextField(blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start"], condition=Q(holder__isnull=True), name="dp_return_once_per_period"
            ),
            models.UniqueConstraint(
                fields=["budget", "holder", "period_start"],
                condition=Q(holder__isnull=False),
                name="holder_return_once_per_period",
            ),
            models.CheckConstraint(
                condition=Q(submitted_at__isnull=True) | Q(declaration=True), name="submitted_return_is_declared"
            ),
        ]

    def __str__(self) -> str:
        return f"Return {self.period_start} to {self.period_end} for {self.budget}"


class EvidenceKind(models.TextChoices):
    BANK_STATEMENT = "bank_statement", "Bank statement"
    TIMESHEET = "timesheet", "Timesheet"
    INVOICE = "invoice", "Invoice or receipt"
    INSURANCE = "insurance", "Insurance certificate"
    OTHER = "other", "Something else"


@pghistory.track(append_only=True)
class ReturnEvidence(models.Model):
    dp_return = models.ForeignKey(DirectPaymentReturn, on_delete=models.PROTECT, related_name="evidence")
    kind = models.CharField(max_length=20, choices=EvidenceKind.choices)
    file = models.FileField(upload_to="returns/%Y/%m/", help_text="Kept outside the web root")
    content_type = models.CharField(max_length=40)
    uploaded_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.dp_return}"


class SurplusStatus(models.TextChoices):
    OPEN = "open", "To decide"
    OFFSET = "offset", "Offset against the next instalment"
    RECOVERY = "recovery", "Recovery opened"
    DISMISSED = "dismissed", "No action"


@pghistory.track(append_only=True)
class SurplusAlert(models.Model):
    """More than N weeks of scheduled spend in the direct-payment account, the contingency not counted (rule 14)."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="surplus_alerts")
    raised_on = models.DateField()
    surplus_pence = models.BigIntegerField()
    weeks = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=SurplusStatus.choices, default=SurplusStatus.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_on"]
        constraints = [
            models.UniqueConstraint(fields=["budget"], condition=Q(status="open"), name="one_open_surplus_alert"),
            models.CheckConstraint(condition=Q(surplus_pence__gt=0), name="surplus_positive"),
        ]

    def __str__(self) -> str:
        return f"Surplus of {self.surplus_pence}p on {self.raised_on}"


class SuspensionReason(models.TextChoices):
    HOSPITAL = "hospital", "A hospital stay or long time away from home"
    SAFEGUARDING = "safeguarding", "A safeguarding concern"
    BREACH = "breach", "The agreement was not kept"
    CAPACITY = "capacity", "A change in capacity"
    LATE_RETURNS = "late_returns", "Returns are late"
    REQUESTED = "requested", "The person asked"


@pghistory.track(append_only=True)
class Suspension(models.Model):
    """Payments stop while suspended; the plan is not cancelled (rule 16). Instalments that fall due meanwhile
    are skipped, not paid later; resuming recalculates what is due, offsetting any surplus first."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="suspensions")
    reason = models.CharField(max_length=20, choices=SuspensionReason.choices)
    reasons = models.TextField()
    started_on = models.DateField()
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    ended_on = models.DateField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-started_on"]
        constraints = [
            models.UniqueConstraint(fields=["budget"], condition=Q(ended_on__isnull=True), name="one_open_suspension"),
            models.CheckConstraint(condition=~Q(reasons=""), name="suspension_has_reasons"),
        ]

    def __str__(self) -> str:
        return f"Suspended from {self.started_on}"


class StopGround(models.TextChoices):
    CONSENT_WITHDRAWN = "consent_withdrawn", "The person withdrew their consent"
    NOT_ELIGIBLE = "not_eligible", "No longer eligible"
    REPRESENTATIVE = "representative", "The representative or nominee is unsuitable or withdrew"
    MISUSE = "misuse", "Money used outside the plan"
    FRAUD = "fraud", "Suspected theft or fraud"
    NEEDS_NOT_MET = "needs_not_met", "Needs are not being met"
    DEATH = "death", "The person died"


class StopReconsideration(models.TextChoices):
    UPHELD = "upheld", "The decision to stop stands"
    OVERTURNED = "overturned", "The decision to stop is overturned"


@pghistory.track(append_only=True)
class StopDecision(models.Model):
    """Why a budget is stopping (rule 17): withdrawal of consent stops it at once; other grounds need a decision
    with reasons. The notice period runs from the decision."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="stop_decisions")
    ground = models.CharField(max_length=20, choices=StopGround.choices)
    reasons = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_on = models.DateField()
    ends_on = models.DateField(help_text="When the notice period ends")
    # Rule 5: the person may ask for a discretionary stop to be reconsidered; the final audit waits for the outcome.
    reconsideration_asked_by = models.CharField(max_length=200, blank=True)
    reconsideration_reasons = models.TextField(blank=True)
    reconsideration_asked_on = models.DateField(null=True, blank=True)
    reconsideration_recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reconsideration_outcome = models.CharField(max_length=20, choices=StopReconsideration.choices, blank=True)
    reconsideration_decision_reasons = models.TextField(blank=True)
    reconsideration_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reconsideration_decided_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ground="consent_withdrawn") | ~Q(reasons=""), name="discretionary_stop_has_reasons"
            ),
            models.CheckConstraint(
                condition=Q(reconsideration_asked_on__isnull=True)
                | (~Q(reconsideration_asked_by="") & ~Q(reconsideration_reasons="")),
                name="stop_reconsideration_has_reasons",
            ),
            models.CheckConstraint(
                condition=Q(reconsideration_outcome="")
                | (
                    Q(reconsideration_asked_on__isnull=False)
                    & ~Q(reconsideration_decision_reasons="")
                    & Q(reconsideration_decided_by__isnull=False)
                ),
                name="stop_reconsideration_decided_with_reasons",
            ),
        ]

    def __str__(self) -> str:
        return f"Stopping: {self.get_ground_display()}"

    @property
    def reconsidering(self) -> bool:
        return self.reconsideration_asked_on is not None and not self.reconsideration_outcome

    @property
    def can_be_reconsidered(self) -> bool:
        """A decision the ICB made: not the person's own withdrawal of consent, and not a death."""
        return self.ground not in (StopGround.CONSENT_WITHDRAWN, StopGround.DEATH)


@pghistory.track(append_only=True)
class ReductionNotice(models.Model):
    """Written notice of a reduction (rule 6): reasons and an effective date no earlier than the notice period.
    The new plan's payments change from that date and not before."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="reduction_notices")
    new_plan = models.ForeignKey("brokerage.CarePlan", on_delete=models.PROTECT, related_name="+")
    old_annual_pence = models.BigIntegerField()
    new_annual_pence = models.BigIntegerField()
    reasons = models.TextField()
    issued_on = models.DateField()
    effective_on = models.DateField()
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-issued_on"]
        constraints = [
            models.CheckConstraint(condition=~Q(reasons=""), name="reduction_has_reasons"),
            models.CheckConstraint(
                condition=Q(new_annual_pence__lt=models.F("old_annual_pence")), name="reduction_reduces"
            ),
        ]

    def __str__(self) -> str:
        return f"Reduction from {self.effective_on}"


class RecoveryStatus(models.TextChoices):
    PROPOSED = "proposed", "Waiting for approval"
    NOT_APPROVED = "not_approved", "Not approved"
    ISSUED = "issued", "Notice sent"
    RECONSIDERING = "reconsidering", "Reconsideration asked for: paused"
    SETTLED = "settled", "Settled"
    WITHDRAWN = "withdrawn", "Withdrawn"


class Addressee(models.TextChoices):
    PERSON = "person", "The person"
    REPRESENTATIVE = "representative", "Their representative"
    NOMINEE = "nominee", "Their nominee"
    PERSONAL_REPRESENTATIVES = "personal_representatives", "The personal representatives (after death)"


@pghistory.track(append_only=True)
class Recovery(models.Model):
    """A notice asking for money back (rule 18): never without reasons, amount, deadline and who must repay.
    Written by one person and approved by another (rule 4) before anything is booked or sent; asking for
    reconsideration pauses it; repayments (card or bank) and write-offs (a finance manager) are posted to the
    ledger; it is settled when recovered + written off = the amount."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="recoveries")
    reasons = models.TextField()
    amount_pence = models.BigIntegerField()
    deadline = models.DateField()
    addressee = models.CharField(max_length=30, choices=Addressee.choices)
    addressee_name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=RecoveryStatus.choices, default=RecoveryStatus.PROPOSED)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", help_text="Who wrote the notice"
    )
    proposed_on = models.DateField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    issued_on = models.DateField(null=True, blank=True, help_text="When it was approved and sent")
    from_balance = models.BooleanField(default=False, help_text="The money is still in the direct-payment account")
    surplus_alert = models.ForeignKey(
        "SurplusAlert", on_delete=models.PROTECT, null=True, blank=True, related_name="recoveries"
    )
    not_approved_reasons = models.TextField(blank=True)
    recovered_pence = models.BigIntegerField(default=0)
    written_off_pence = models.BigIntegerField(default=0)
    reconsideration_evidence = models.TextField(blank=True)
    reconsideration_outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["-issued_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(reasons="") & ~Q(addressee_name="") & Q(amount_pence__gt=0),
                name="recovery_notice_complete",
            ),
            models.CheckConstraint(
                condition=Q(recovered_pence__gte=0, written_off_pence__gte=0)
                & Q(amount_pence__gte=models.F("recovered_pence") + models.F("written_off_pence")),
                name="recovery_not_over_settled",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["proposed", "not_approved"]) | Q(issued_on__isnull=False),
                name="recovery_sent_once_approved",
            ),
            # Rule 4: the approver of a recovery is never its author.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=models.F("issued_by")),
                name="recovery_approved_by_another",
            ),
            models.CheckConstraint(
                condition=~Q(status="not_approved") | ~Q(not_approved_reasons=""),
                name="recovery_not_approved_has_reasons",
            ),
        ]

    def __str__(self) -> str:
        return f"Recovery of {self.amount_pence}p by {self.deadline}"

    @property
    def outstanding_pence(self) -> int:
        return self.amount_pence - self.recovered_pence - self.written_off_pence


class LiabilityKind(models.TextChoices):
    WAGES = "wages", "Staff wages"
    NOTICE = "notice", "Notice pay"
    HOLIDAY_PAY = "holiday_pay", "Holiday pay"
    HMRC = "hmrc", "HMRC (tax and National Insurance)"
    AGENCY = "agency", "Agency invoice"
    OTHER = "other", "Something else"


@pghistory.track(append_only=True)
class Liability(models.Model):
    """What the budget still owes when it ends (rule 19): paid before anything is recovered."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="liabilities")
    kind = models.CharField(max_length=20, choices=LiabilityKind.choices)
    payee = models.CharField(max_length=200)
    amount_pence = models.BigIntegerField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    paid_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(amount_pence__gt=0), name="liability_positive")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.payee}"


class LetterKind(models.TextChoices):
    REDUCTION = "reduction", "Notice of a reduction"
    SUSPENSION = "suspension", "Notice of suspension"
    STOPPING = "stopping", "Notice that the budget is stopping"
    RECOVERY = "recovery", "Notice asking for money back"


@pghistory.track(append_only=True)
class Letter(models.Model):
    """A notice sent to the person, kept as part of the record in HTML and as an accessible PDF."""

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="letters")
    kind = models.CharField(max_length=20, choices=LetterKind.choices)
    subject_ref = models.CharField(max_length=80, help_text="What it is about, e.g. recovery:12")
    html = models.TextField()
    pdf = models.FileField(upload_to="letters/%Y/%m/", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "subject_ref"], name="letter_once_per_subject")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.subject_ref})"


@pghistory.track(append_only=True)
class FunderPayment(models.Model):
    """Money a local authority paid the ICB towards a quarter's recharges for the integrated budgets it co-funds
    (budgets/reports.py). Posted to the ICB's bank in the ledger, so it is reconciled like any receipt."""

    icb = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
    local_authority = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
    quarter = models.CharField(max_length=7, help_text="The quarter it pays for, as 2026-Q2")
    amount_pence = models.BigIntegerField()
    received_on = models.DateField()
    reference = models.CharField(max_length=35, help_text="As it will show on the bank statement")
    transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, related_name="+")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    idempotency_key = models.CharField(max_length=200, unique=True)
    # A payment recorded by mistake is reversed in the ledger, with who, when and why; it then counts nowhere.
    reversal = models.OneToOneField(
        "ledger.Transfer", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    reversed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversal_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["quarter", "received_on", "id"]
        constraints = [models.CheckConstraint(condition=Q(amount_pence__gt=0), name="funder_payment_positive")]
        indexes = [models.Index(fields=["quarter", "icb", "local_authority"])]

    def __str__(self) -> str:
        return f"{self.quarter}: {self.amount_pence}p"
