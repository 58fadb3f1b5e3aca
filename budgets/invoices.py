"""Provider invoices on notional lines (the ICB pays the provider): record, approve (never by the person who
recorded it), pay. Paying posts the line's open commitment (the rest of it is released) and commits the
next period, so spend, commitments and the budget stay in step in the ledger. An invoice for more than its line
has left for the year is refused when it is recorded and when it is approved, so it never reaches a payment run
the ledger would refuse."""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from brokerage.models import ManagementType, PlanStatus
from budgets.models import BudgetLine, Invoice, InvoiceStatus
from budgets.services import PERIODS_A_YEAR, BudgetError, period_dates, split
from budgets.spending import CONNECTED_REFUSED, blocked_connection
from config.formatting import format_pence
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.models import Account, Phase, Transfer

MAX_INVOICE_PENCE = 100_000_00  # £100,000: larger is a typing error, or needs a different route
INVOICE_TOO_LARGE = "The amount must be between 1p and £100,000.00"
NOT_NOTIONAL = "Invoices are paid by the ICB only for notional lines; this line is paid another way"
SAME_PERSON = "You recorded this invoice, so someone else must approve it"


INVOICE_DATED_AHEAD = "The invoice date must be today or in the past: check the date on the invoice"
MORE_THAN_LEFT = "This is more than the {left} left on {line} for the year"
WAITING_TOO = ", counting the {waiting} of invoices already waiting to be paid from it"


class InvoiceAmountRefused(BudgetError):
    """The amount is not one the line can pay: said beside the amount."""


class InvoiceDateRefused(BudgetError):
    """The invoice's date is not one the budget can pay: said beside the date."""


def _waiting_on(line: BudgetLine, excluding: Invoice | None) -> int:
    """Pence of the line's invoices recorded or approved but not paid yet (other than `excluding`)."""
    waiting = Invoice.objects.filter(budget_line=line, status__in=[InvoiceStatus.RECORDED, InvoiceStatus.APPROVED])
    if excluding is not None:
        waiting = waiting.exclude(pk=excluding.pk)
    return waiting.aggregate(total=Sum("amount_pence"))["total"] or 0


def line_money_left(line: BudgetLine, *, excluding: Invoice | None = None) -> int:
    """Pence the line can still pay invoices from this year: its planned amount, less what it has spent and the
    invoices already waiting to be paid from it. The budget page's figures in other words (`LineFigures`): its
    remaining money plus its open commitment, since an invoice is paid from the commitment first."""
    spend = Account.objects.get(pk=line.spend_account_id)  # read now: the counters move with every posting
    return line.annual_pence - spend.posted_balance - _waiting_on(line, excluding)


def lines_money_left(lines) -> dict[int, int]:
    """`line_money_left` for many lines in two queries, whatever their number (a payment run checks every approved
    invoice): line id -> pence left, counting every invoice waiting on the line. For one of those invoices, add its
    own amount back to get what `line_money_left(line, excluding=invoice)` says."""
    by_id = {line.pk: line for line in lines}
    spent = {
        account.pk: account.posted_balance
        for account in Account.objects.filter(pk__in={line.spend_account_id for line in by_id.values()})
    }
    waiting = dict(
        Invoice.objects.filter(budget_line_id__in=by_id, status__in=[InvoiceStatus.RECORDED, InvoiceStatus.APPROVED])
        .order_by()
        .values("budget_line_id")
        .annotate(total=Sum("amount_pence"))
        .values_list("budget_line_id", "total")
    )
    return {pk: line.annual_pence - spent[line.spend_account_id] - waiting.get(pk, 0) for pk, line in by_id.items()}


def more_than_left(line: BudgetLine, *, excluding: Invoice | None = None) -> str:
    """The sentence an invoice too large for its line gets, with the figure left."""
    waiting = _waiting_on(line, excluding)
    message = MORE_THAN_LEFT.format(
        left=format_pence(max(line_money_left(line, excluding=excluding), 0)), line=line.plan_line.description
    )
    return message + (WAITING_TOO.format(waiting=format_pence(waiting)) if waiting else "")


def _check_line_can_pay(line: BudgetLine, amount_pence: int, *, excluding: Invoice | None = None) -> None:
    """Inside a transaction: refuse an amount more than the line has left. The line is locked first, so two
    invoices recorded or approved at once cannot each take the same money."""
    BudgetLine.objects.select_for_update().filter(pk=line.pk).exists()
    if amount_pence > line_money_left(line, excluding=excluding):
        raise InvoiceAmountRefused(more_than_left(line, excluding=excluding))


def invoice_record(
    *, line: BudgetLine, provider, invoice_number: str, invoice_date: datetime.date, amount_pence: int, acting_user
) -> Invoice:
    if line.management_type != ManagementType.NOTIONAL:
        raise BudgetError(NOT_NOTIONAL)
    if line.budget.plan.status not in (PlanStatus.SETTING_UP, PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW):
        raise BudgetError(f"The budget's plan is {line.budget.plan.get_status_display().lower()}: no new invoices")
    if not 0 < amount_pence <= MAX_INVOICE_PENCE:
        raise InvoiceAmountRefused(INVOICE_TOO_LARGE)
    if invoice_date < line.budget.start_date:
        raise InvoiceDateRefused(
            f"The invoice is dated before the budget started on {line.budget.start_date:%-d %B %Y}"
        )
    if invoice_date > timezone.localdate():  # an invoice is dated when it is issued, even for support in advance
        raise InvoiceDateRefused(INVOICE_DATED_AHEAD)
    if blocked_connection(line.budget, provider):
        raise BudgetError(CONNECTED_REFUSED)
    try:
        with transaction.atomic():
            _check_line_can_pay(line, amount_pence)
            return Invoice.objects.create(
                budget_line=line,
                provider=provider,
                invoice_number=invoice_number.strip(),
                invoice_date=invoice_date,
                amount_pence=amount_pence,
                recorded_by=acting_user,
            )
    except IntegrityError as exc:
        raise BudgetError(f"Invoice {invoice_number} from {provider} is already recorded") from exc


def invoice_approve(*, invoice: Invoice, acting_user) -> Invoice:
    if invoice.recorded_by_id == acting_user.pk:
        raise BudgetError(SAME_PERSON)
    if blocked_connection(invoice.budget_line.budget, invoice.provider):  # the approval may have been withdrawn
        raise BudgetError(CONNECTED_REFUSED)
    with transaction.atomic():
        # Checked again: the line may have spent its money since the invoice was recorded.
        if Invoice.objects.filter(pk=invoice.pk, status=InvoiceStatus.RECORDED).exists():
            _check_line_can_pay(invoice.budget_line, invoice.amount_pence, excluding=invoice)
        updated = Invoice.objects.filter(pk=invoice.pk, status=InvoiceStatus.RECORDED).update(
            status=InvoiceStatus.APPROVED, approved_by=acting_user
        )
        if not updated:
            raise BudgetError("Only an invoice waiting for approval can be approved")
    invoice.refresh_from_db()
    return invoice


def invoice_reject(*, invoice: Invoice, acting_user, reasons: str) -> Invoice:
    """An invoice recorded by mistake, or one the checker will not approve, is rejected with the reasons, before
    any payment run takes it. It stays on record; the provider can send a corrected one."""
    if not reasons.strip():
        raise BudgetError("Enter why the invoice is rejected")
    updated = Invoice.objects.filter(
        pk=invoice.pk, status__in=[InvoiceStatus.RECORDED, InvoiceStatus.APPROVED], run_item__isnull=True
    ).update(status=InvoiceStatus.REJECTED, reasons=reasons.strip())
    if not updated:
        raise BudgetError("Only an invoice not yet in a payment run can be rejected")
    invoice.refresh_from_db()
    return invoice


def open_commitment(line: BudgetLine) -> Transfer | None:
    return (
        Transfer.objects.filter(
            debit_account_id=line.spend_account_id,
            phase=Phase.PENDING,
            resolutions__isnull=True,
            reference=f"plan-line:{line.plan_line_id}",
        )
        .order_by("id")
        .first()
    )


def invoice_pay(*, invoice: Invoice, acting_user) -> Invoice:
    """Post the invoice against the line's commitment, once. More than the commitment is paid from the rest of
    the ICB-held budget (the no-overdraft limit still applies); the next period is then committed."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("budget_line__budget__plan").get(pk=invoice.pk)
        if invoice.status == InvoiceStatus.PAID:
            return invoice
        if invoice.status != InvoiceStatus.APPROVED:
            raise BudgetError("Approve the invoice before paying it")
        line = invoice.budget_line
        budget = line.budget
        held = budget.accounts.get(purpose="held:icb").account_id
        commitment = open_commitment(line)
        remainder = invoice.amount_pence
        # Dated on the invoice, or in the first open month when finance has closed the invoice's month since.
        paid_on = ledger_selectors.first_open_day(invoice.invoice_date)
        if commitment is not None:
            covered = min(remainder, commitment.amount)
            ledger.pending_post(
                key=f"{invoice.ledger_key}:commitment",
                pending=commitment,
                amount=covered,
                acting_user=acting_user,
                effective_date=paid_on,
                description=f"Invoice {invoice.invoice_number}",
            )
            remainder -= covered
        if remainder:
            ledger.transfer_post(
                key=f"{invoice.ledger_key}:beyond-commitment",
                debit_account_id=line.spend_account_id,
                credit_account_id=held,
                amount=remainder,
                code="invoice_payment",
                effective_date=paid_on,
                reference=f"plan-line:{line.plan_line_id}",
                description=f"Invoice {invoice.invoice_number}, beyond the commitment",
                acting_user=acting_user,
            )
        _commit_next_period(line, acting_user)
        invoice.status = InvoiceStatus.PAID
        invoice.save(update_fields=["status"])
    return invoice


def _commit_next_period(line: BudgetLine, acting_user) -> None:
    periods = PERIODS_A_YEAR[line.budget.plan.payment_frequency]
    made = Transfer.objects.filter(debit_account_id=line.spend_account_id, phase=Phase.PENDING).count()
    if made >= periods or open_commitment(line) is not None:
        return
    ledger.transfer_reserve(
        key=f"{line.budget.owner_ref}:commitment:line-{line.plan_line_id}:{made + 1}",
        debit_account_id=line.spend_account_id,
        credit_account_id=line.budget.accounts.get(purpose="held:icb").account_id,
        amount=split(line.annual_pence, periods)[made],
        code="commitment",
        effective_date=period_dates(line.budget.start_date, line.budget.plan.payment_frequency)[made],
        reference=f"plan-line:{line.plan_line_id}",
        acting_user=acting_user,
        description=f"Period {made + 1} service order: {line.plan_line.description}",
    )
