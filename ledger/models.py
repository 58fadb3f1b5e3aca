"""The double-entry ledger, shaped like TigerBeetle and enforced by PostgreSQL.

Amounts are integer pence. A transfer moves an amount from one account (debited) to another (credited);
it is never changed or deleted (triggers refuse it): corrections are new transfers. Balances are counters
on the account, updated by a statement-level trigger in the same transaction as the transfers, so even a
raw INSERT keeps them right; CHECK constraints on the counters enforce the no-overdraft flags.

This app is a leaf: it refers to budgets, plan lines and people only through opaque strings
(`owner_ref="budget:42"`, `reference="plan-line:7"`). Accounts whose owner_ref starts `budget:` are moved only by
the budgets app's services; the ledger's own tools that post by hand refuse them (`MOVED_BY_OWNER_PREFIX`).
"""

from __future__ import annotations

import pghistory
import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone


class AccountKind(models.TextChoices):
    ASSET = "asset", "Asset"
    LIABILITY = "liability", "Liability"
    INCOME = "income", "Income"
    EXPENSE = "expense", "Expense"
    EQUITY = "equity", "Equity"


# Assets and expenses grow with debits; the rest grow with credits.
DEBIT_NORMAL_KINDS = frozenset({AccountKind.ASSET, AccountKind.EXPENSE})


# Accounts that only their owner's app moves. A budget's services code every penny to a plan line, check what may be
# paid and that the money is there, and flag money in from other sources ("mixing"); the ledger sees none of that,
# so its tools that post by hand (the API, recording a statement line's missing transfer) refuse these accounts.
# Other owners' accounts (the ICB's bank, Stripe and charges accounts, owner "icb") stay open to those tools.
MOVED_BY_OWNER_PREFIX = "budget:"


class Phase(models.TextChoices):
    POSTED = "posted", "Posted"
    PENDING = "pending", "Pending"
    POST_PENDING = "post_pending", "Pending posted"
    VOID_PENDING = "void_pending", "Pending voided"
    EXPIRE_PENDING = "expire_pending", "Pending expired"


RESOLVING_PHASES = (Phase.POST_PENDING, Phase.VOID_PENDING, Phase.EXPIRE_PENDING)


class Account(models.Model):
    code = models.CharField(max_length=120, unique=True, help_text="Stable, unique, e.g. budget:42:dp-cash")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=AccountKind.choices)
    currency = models.CharField(max_length=3, default="GBP")
    owner_ref = models.CharField(max_length=120, blank=True, db_index=True, help_text="Opaque owner, e.g. budget:42")
    debits_must_not_exceed_credits = models.BooleanField(default=False)
    credits_must_not_exceed_debits = models.BooleanField(default=False)
    closed = models.BooleanField(default=False, help_text="A closed account accepts no new transfers")
    # Balance counters, in pence; only the transfer trigger may change them.
    debits_pending = models.BigIntegerField(default=0, editable=False)
    debits_posted = models.BigIntegerField(default=0, editable=False)
    credits_pending = models.BigIntegerField(default=0, editable=False)
    credits_posted = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="account_currency_iso"),
            models.CheckConstraint(
                condition=Q(debits_pending__gte=0, debits_posted__gte=0, credits_pending__gte=0, credits_posted__gte=0),
                name="account_counters_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True),
                name="account_one_limit_flag",
            ),
            models.CheckConstraint(
                condition=Q(debits_must_not_exceed_credits=False)
                | Q(debits_posted__lte=F("credits_posted") - F("debits_pending")),
                name="account_debits_within_credits",
            ),
            models.CheckConstraint(
                condition=Q(credits_must_not_exceed_debits=False)
                | Q(credits_posted__lte=F("debits_posted") - F("credits_pending")),
                name="account_credits_within_debits",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="account_no_delete", operation=pgtrigger.Delete),
            pgtrigger.ReadOnly(name="account_identity_fixed", fields=["code", "kind", "currency"]),
        ]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"

    @property
    def debit_normal(self) -> bool:
        return self.kind in DEBIT_NORMAL_KINDS

    @property
    def moved_by_owner(self) -> bool:
        """Only its owner's app may move this account's money: no posting by hand."""
        return self.owner_ref.startswith(MOVED_BY_OWNER_PREFIX)

    @property
    def posted_balance(self) -> int:
        """Signed so that the account's normal side is positive (assets: debits - credits)."""
        net = self.debits_posted - self.credits_posted
        return net if self.debit_normal else -net

    @property
    def pending_balance(self) -> int:
        net = self.debits_pending - self.credits_pending
        return net if self.debit_normal else -net

    @property
    def available_balance(self) -> int:
        """What can still be spent: posted, less pending movements away from the normal side."""
        if self.debit_normal:
            return self.debits_posted - self.credits_posted - self.credits_pending
        return self.credits_posted - self.debits_posted - self.debits_pending


class Transfer(models.Model):
    idempotency_key = models.CharField(max_length=200, unique=True, help_text="Client-supplied; unique forever")
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.POSTED)
    # These foreign keys carry no index and no constraint of their own: the composite and partial indexes
    # below cover every lookup, and the apply trigger checks that accounts and transfers exist (neither can
    # ever be deleted). A constraint would add two lookups per row at commit for nothing.
    debit_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="debit_transfers", db_index=False, db_constraint=False
    )
    credit_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="credit_transfers", db_index=False, db_constraint=False
    )
    amount = models.BigIntegerField(help_text="Pence, > 0")
    currency = models.CharField(max_length=3, default="GBP")
    code = models.CharField(max_length=40, help_text="What kind of movement, e.g. instalment, invoice_payment")
    reference = models.CharField(max_length=200, blank=True, help_text="Opaque, e.g. plan-line:7")
    description = models.CharField(max_length=300, blank=True)
    pending = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="resolutions",
        help_text="For post, void and expire: the pending transfer resolved",
    )
    reverses = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversals",
        help_text="The posted transfer this one reverses",
    )
    group_key = models.UUIDField(null=True, blank=True, help_text="Linked transfers share this")
    timeout_at = models.DateTimeField(null=True, blank=True, help_text="When an unresolved pending transfer expires")
    effective_date = models.DateField()
    # The ORM stamps the time (so tests can move the clock); raw SQL inserts get the database's.
    recorded_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, db_index=False
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(debit_account=F("credit_account")), name="transfer_distinct_accounts"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="transfer_currency_iso"),
            models.CheckConstraint(
                condition=Q(phase__in=RESOLVING_PHASES, pending__isnull=False)
                | (~Q(phase__in=RESOLVING_PHASES) & Q(pending__isnull=True)),
                name="transfer_pending_only_when_resolving",
            ),
            models.CheckConstraint(
                condition=Q(phase=Phase.PENDING) | Q(timeout_at__isnull=True), name="transfer_timeout_only_pending"
            ),
            models.CheckConstraint(
                condition=Q(reverses__isnull=True) | Q(phase=Phase.POSTED), name="transfer_reversal_is_posted"
            ),
            # A pending transfer resolves exactly once; a transfer is reversed at most once.
            models.UniqueConstraint(
                fields=["pending"], condition=Q(pending__isnull=False), name="transfer_pending_resolved_once"
            ),
            models.UniqueConstraint(
                fields=["reverses"], condition=Q(reverses__isnull=False), name="transfer_reversed_once"
            ),
        ]
        indexes = [
            models.Index(fields=["debit_account", "effective_date", "id"], name="transfer_debit_date"),
            models.Index(fields=["credit_account", "effective_date", "id"], name="transfer_credit_date"),
            models.Index(fields=["timeout_at"], condition=Q(phase=Phase.PENDING), name="transfer_pending_timeout"),
            models.Index(fields=["reference"], condition=~Q(reference=""), name="transfer_reference"),
            models.Index(fields=["group_key"], condition=Q(group_key__isnull=False), name="transfer_group"),
        ]
        triggers = [
            pgtrigger.Protect(name="transfer_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key}: {self.amount}p {self.debit_account_id}→{self.credit_account_id}"

    @property
    def posted_amount(self) -> int:
        """What this row adds to posted balances (pending, void and expire add nothing)."""
        return self.amount if self.phase in (Phase.POSTED, Phase.POST_PENDING) else 0


class ClosedPeriod(models.Model):
    """A closed month: transfers dated inside it are refused (by trigger). Closing is permanent."""

    month = models.DateField(unique=True, help_text="First day of the month")
    closed_at = models.DateTimeField(default=timezone.now, editable=False)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)

    class Meta:
        ordering = ["month"]
        constraints = [models.CheckConstraint(condition=Q(month__day=1), name="closed_period_first_of_month")]
        triggers = [pgtrigger.Protect(name="closed_period_permanent", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.month:%B %Y}"


# --- Reconciliation (issue 8): bank and Stripe statements matched to transfers on a cash account ----------------------
# Amounts on statement lines are signed pence from the bank's side: money in is positive and debits the cash account.


class StatementSource(models.TextChoices):
    OFX = "ofx", "OFX file"
    CSV = "csv", "CSV file"
    STRIPE = "stripe", "Stripe payouts"


@pghistory.track(append_only=True)
class CsvMapping(models.Model):
    """How one bank lays out its CSV statements: which column holds what (saved once, reused per import)."""

    name = models.CharField(max_length=100, unique=True, help_text="The bank, e.g. Lloyds")
    date_column = models.CharField(max_length=100)
    date_format = models.CharField(max_length=40, default="%d/%m/%Y", help_text="strftime codes, e.g. %d/%m/%Y")
    description_column = models.CharField(max_length=100)
    amount_column = models.CharField(max_length=100, blank=True, help_text="A signed amount; or use debit and credit")
    debit_column = models.CharField(max_length=100, blank=True, help_text="Money out")
    credit_column = models.CharField(max_length=100, blank=True, help_text="Money in")
    reference_column = models.CharField(max_length=100, blank=True)
    balance_column = models.CharField(max_length=100, blank=True)
    id_column = models.CharField(max_length=100, blank=True, help_text="The bank's transaction id, if it gives one")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount_column="") | (~Q(debit_column="") & ~Q(credit_column="")),
                name="csv_mapping_has_amounts",
            )
        ]

    def __str__(self) -> str:
        return self.name


@pghistory.track(append_only=True)
class CashAccount(models.Model):
    """A ledger asset account that a real bank or Stripe account mirrors, so it is reconciled."""

    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="cash")
    name = models.CharField(max_length=200, help_text="As the bank names it")
    source = models.CharField(max_length=10, choices=StatementSource.choices, default=StatementSource.CSV)
    csv_mapping = models.ForeignKey(CsvMapping, on_delete=models.PROTECT, null=True, blank=True)
    reconcile_from = models.DateField(help_text="Transfers before this date are outside reconciliation")
    opening_balance = models.BigIntegerField(default=0, help_text="Statement balance at the start of reconcile_from")
    date_window_days = models.PositiveSmallIntegerField(default=3, help_text="How far apart dates may be to match")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@pghistory.track(append_only=True)
class StatementImport(models.Model):
    cash_account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="imports")
    source = models.CharField(max_length=10, choices=StatementSource.choices)
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    lines_added = models.PositiveIntegerField(default=0)
    lines_already_imported = models.PositiveIntegerField(default=0)
    bad_lines = models.JSONField(default=list, blank=True, help_text="[[line number, reason], …] left out")
    imported_at = models.DateTimeField(default=timezone.now, editable=False)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False)

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.lines_added} lines)"


class StatementLine(models.Model):
    """One line of a bank or Stripe statement. Never edited: matching is recorded in Match."""

    cash_account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="lines", db_index=False)
    statement_import = models.ForeignKey(StatementImport, on_delete=models.PROTECT, related_name="lines")
    date = models.DateField()
    amount = models.BigIntegerField(help_text="Signed pence; money in is positive")
    description = models.CharField(max_length=300, blank=True)
    reference = models.CharField(max_length=200, blank=True)
    bank_id = models.CharField(max_length=255, blank=True, help_text="FITID or the bank's transaction id")
    running_balance = models.BigIntegerField(null=True, blank=True)
    dedupe_key = models.CharField(max_length=300)
    line_number = models.PositiveIntegerField(help_text="Where it was in the file")

    class Meta:
        ordering = ["date", "id"]
        constraints = [
            models.UniqueConstraint(fields=["cash_account", "dedupe_key"], name="statement_line_once"),
            models.CheckConstraint(condition=~Q(amount=0), name="statement_line_not_zero"),
        ]
        indexes = [models.Index(fields=["cash_account", "date", "id"], name="statement_line_date")]
        triggers = [pgtrigger.Protect(name="statement_line_append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.date} {self.amount}p {self.description}"


# Statement-level history triggers: an auto-match writes tens of thousands of rows in one INSERT, and row-level
# triggers made that the slowest part of reconciling (bench/reconcile.py).
@pghistory.track(append_only=True, level=pgtrigger.Statement)
class Match(models.Model):
    """One statement line matched to one or more transfers (a BACS run is many transfers, one bank line)."""

    line = models.ForeignKey(StatementLine, on_delete=models.PROTECT, related_name="matches")
    transfers = models.ManyToManyField(Transfer, through="MatchedTransfer", related_name="+")
    automatic = models.BooleanField(default=False)
    rule = models.CharField(max_length=40, blank=True, help_text="Which auto-match rule, e.g. reference")
    matched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    matched_at = models.DateTimeField(default=timezone.now)
    active = models.BooleanField(default=True)
    unmatched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    unmatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["line"], condition=Q(active=True), name="match_line_once"),
            models.CheckConstraint(condition=Q(automatic=True) | Q(matched_by__isnull=False), name="match_who"),
        ]
        triggers = [pgtrigger.Protect(name="match_no_delete", operation=pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"line {self.line_id} ({'automatic' if self.automatic else 'by hand'})"


@pghistory.track(append_only=True, level=pgtrigger.Statement)
class MatchedTransfer(models.Model):
    match = models.ForeignKey(Match, on_delete=models.PROTECT, related_name="links")
    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    # A transfer between two cash accounts (a Stripe payout to the bank) is matched once on each statement.
    cash_account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="+", db_index=False)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cash_account", "transfer"], condition=Q(active=True), name="matched_transfer_once"
            ),
        ]
        triggers = [pgtrigger.Protect(name="matched_transfer_no_delete", operation=pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"match {self.match_id} → transfer {self.transfer_id}"


# --- end reconciliation --------------------------------------------------------------------------------------------
