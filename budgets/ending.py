"""The end of a budget's life and the notices on the way there: reductions with notice (rule 6), asking for money
back (rule 18), the final audit and closing (rule 19). Each notice is also a letter (budgets/letters.py).

Recovery in the ledger, per budget (accounts opened on first use):
- approving a notice (never by its author, rule 4) books what is owed: debit `recovery:owed` (no overdraft:
  nothing can be repaid or written off beyond what is owed), credit either `held:direct-payment` when the money
  is still in the dedicated account (a surplus, the closing balance) or `recovery:claimed` when it was spent (for
  example outside the plan);
- a repayment by bank transfer debits the ICB's `icb:bank`; by card, the card code has already credited
  `card:recovery` from Stripe's balance and the repayment moves it on from there; both credit `recovery:owed`;
- a write-off (a finance manager, never the issuer) debits `recovery:written-off`, credit `recovery:owed`;
- a notice reduced or withdrawn after reconsideration mirrors its claim for the part released (the money goes
  back to the account it came from), except at closing, where the budget can no longer spend it: it is waived
  (`recovery:waived`).

Closing: liabilities are paid from the direct-payment account first (what it cannot cover, the ICB pays from its
bank), then what is left is asked for back with a closing notice; the budget closes when nothing is owed to
anyone, nothing is left unclaimed and every closing notice is settled (recoverable = recovered + written off).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

import pghistory
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from accounts.tasks import send_email
from brokerage import services as plans
from brokerage.models import CarePlan, PlanStatus
from budgets import letters
from budgets.models import (
    Addressee,
    Budget,
    BudgetAccount,
    CardPayment,
    CardPaymentPurpose,
    Letter,
    Liability,
    LiabilityKind,
    PaymentKind,
    PaymentStatus,
    Recovery,
    RecoveryStatus,
    ReductionNotice,
    ScheduledPayment,
    StopDecision,
    StopGround,
    SurplusAlert,
    SurplusStatus,
    Suspension,
)
from budgets.services import BudgetError, budget_account, dp_surplus, pence
from config.formatting import format_date, format_pence
from ledger import selectors as ledger_selectors
from ledger import services as ledger
from ledger.exceptions import InsufficientFunds
from ledger.models import Account, AccountKind, Transfer

logger = logging.getLogger(__name__)

# Where a surplus can still be offset against the next instalment (rule 15); a closing budget's balance cannot.
LIVE_FOR_OFFSET = (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW)
MAX_RECOVERY_PENCE = 1_000_000_00  # £1m: anything larger is a typing error, not a budget

REASONS_REQUIRED = "Give the reasons"
AMOUNT_REQUIRED = "Enter the amount, more than £0"
DEADLINE_REQUIRED = "Enter the date by which the money must be paid back, after today"
ADDRESSEE_REQUIRED = "Say who must pay the money back"
AFTER_DEATH = "The person has died: the notice must be addressed to their personal representatives"
NOT_DECEASED = "Only a notice after the person's death is addressed to their personal representatives"
NOTICE_TOO_SHORT = (
    "The reduction can take effect on {earliest} at the earliest: the plan's notice period is {days} days"
)
NOT_A_REDUCTION = "This version does not reduce the budget, so no notice of a reduction is needed"
NOT_A_NEW_VERSION = "Choose a new version of this person's plan that has not been set up yet"
NOTICE_EXISTS = "A notice of this reduction has already been issued"
PAUSED = "The person has asked for reconsideration: nothing can be repaid or written off until it is decided"
NOT_OPEN = "This notice is {status}: nothing more can be done with it"
OVER_OUTSTANDING = "That is more than is still owed ({outstanding})"
NOT_THE_ISSUER = "You issued this notice, so someone else must decide it or write money off"
NOT_A_MANAGER = "Only a finance manager can write money off or close a budget"
CANNOT_DECIDE = "Only a finance manager or an ICB approver can decide a reconsideration"
ALREADY_RECONSIDERED = "This notice has already been reconsidered"
NOT_RECONSIDERING = "Nobody has asked for this notice to be reconsidered"
EVIDENCE_REQUIRED = "Enter what the person said and the evidence they gave"
NOT_ENOUGH_BALANCE = "The direct-payment account holds {balance} that can be asked for back; ask for that or less"
NO_DIRECT_PAYMENT = "This budget has no direct-payment account, so there is no balance to ask for back"
LIABILITIES_FIRST = "Pay the outstanding liabilities before asking for the balance back (rule 19)"
NOT_IN_FINAL_AUDIT = "The budget is {status}: this can only be done during its final audit"
NOT_ENDING = "The budget is {status}: liabilities are recorded while it is stopping or in its final audit"
NOTICE_PERIOD_RUNS = "The notice period runs until {ends_on}: the final audit starts after that"
NO_STOP_DECISION = "Record why the budget is stopping first"
STOP_BEING_RECONSIDERED = (
    "{name} asked for the decision to stop to be reconsidered: the final audit waits until an ICB approver decides"
)
PLAN_BEING_RECONSIDERED = "A decision about this plan is being reconsidered: the final audit waits until it is decided"
CHOOSE_KIND = "Choose what the liability is for"
BUDGET_CLOSED = "The budget is closed: nothing more can be asked back"
PAYEE_REQUIRED = "Enter who is owed the money"
OFFSET_FIRST = (
    "Offset the surplus against the next instalment first (rule 15): {amount} can come off the payment due on "
    "{due_on}. Offset it from the surplus alert on the budget's monitoring page, then ask for money back only if "
    "some is still left"
)
NO_REPRESENTATIVE = "{person} has no representative acting for them: say who else must pay the money back"
BALANCE_NOTICE_WAITING = "A notice asking for this account's balance back is already waiting for approval"
NOT_PROPOSED = "This notice is {status}: it is not waiting for approval"
NOT_YOUR_OWN = "You wrote this notice, so someone else must approve it (rule 4)"
CANNOT_APPROVE = "Only a finance manager or an ICB approver for this person can approve a notice"
DEADLINE_PASSED = "The date to pay by has passed: do not approve this notice, and write a new one with a later date"
REPAYMENT_METHODS = ("bank", "card")


class EndingError(BudgetError):
    """A reduction, recovery, liability or closing step was refused as asked; nothing changed."""


def _today(today: datetime.date | None) -> datetime.date:
    return today or timezone.localdate()


def _context(action: str, acting_user):
    """Audit rows (pghistory) name who did it even when a service runs outside a web request."""
    return pghistory.context(user=getattr(acting_user, "pk", None), action=action)


def _plan_status(budget: Budget) -> str:
    return CarePlan.objects.filter(pk=budget.plan_id).values_list("status", flat=True).get()  # never a stale copy


RECOVERY_REFUND_CODE = "recovery_refund"


def _owed_account(budget: Budget) -> Account:
    return budget_account(
        budget,
        "recovery:owed",
        "Owed back under recovery notices",
        AccountKind.ASSET,
        credits_must_not_exceed_debits=True,
    )


def icb_bank_account() -> Account:
    """The ICB's own bank account: bank repayments arrive in it, and it pays what a budget cannot."""
    return ledger.account_open(code="icb:bank", name="ICB bank account", kind=AccountKind.ASSET, owner_ref="icb")


def _held_account(budget: Budget, purpose: str = "held:direct-payment") -> Account | None:
    row = BudgetAccount.objects.filter(budget=budget, purpose=purpose).select_related("account").first()
    return row.account if row else None


def dp_balance(budget: Budget) -> int:
    """What the direct-payment account holds for the budget, not yet asked for back: mixed-in money from other
    sources is not the budget's and is not counted (it goes back to whoever paid it)."""
    held, mixed = _held_account(budget), _held_account(budget, "mixed-funds")
    if held is None:
        return 0
    return max(0, held.available_balance - (mixed.posted_balance if mixed else 0))


def is_deceased(budget: Budget) -> bool:
    return StopDecision.objects.filter(budget__plan__person_id=budget.plan.person_id, ground=StopGround.DEATH).exists()


# --- Reductions (rule 6) ----------------------------------------------------------------------------------------


def reduction_earliest(budget: Budget, issued_on: datetime.date) -> datetime.date:
    return issued_on + datetime.timedelta(days=budget.plan.notice_period_days)


def reduction_candidates(budget: Budget):
    """Later versions of the person's plan, not yet set up, that ask for less than this budget."""
    return [
        plan
        for plan in CarePlan.objects.filter(person_id=budget.plan.person_id, version__gt=budget.plan.version)
        .filter(budget_record__isnull=True)
        .exclude(status__in=[PlanStatus.RETURNED])
        .order_by("-version")
        if pence(plan.budget) < budget.annual_pence
    ]


def reduction_notice_issue(
    *,
    budget: Budget,
    new_plan: CarePlan,
    reasons: str,
    effective_on: datetime.date,
    acting_user,
    today: datetime.date | None = None,
) -> ReductionNotice:
    """Written notice of a reduction, with reasons, taking effect no earlier than the notice period after today.
    The new version's budget, when set up, pays the old amounts until `effective_on` (budgets.services)."""
    today = _today(today)
    if not (reasons or "").strip():
        raise EndingError(REASONS_REQUIRED)
    if (
        new_plan.person_id != budget.plan.person_id
        or new_plan.version <= budget.plan.version
        or Budget.objects.filter(plan=new_plan).exists()
    ):
        raise EndingError(NOT_A_NEW_VERSION)
    new_annual = pence(new_plan.budget)
    if new_annual >= budget.annual_pence:
        raise EndingError(NOT_A_REDUCTION)
    earliest = reduction_earliest(budget, today)
    if effective_on is None or effective_on < earliest:
        raise EndingError(NOTICE_TOO_SHORT.format(earliest=format_date(earliest), days=budget.plan.notice_period_days))
    with transaction.atomic(), _context("reduction_notice_issue", acting_user):
        if ReductionNotice.objects.select_for_update().filter(budget=budget, new_plan=new_plan).exists():
            raise EndingError(NOTICE_EXISTS)
        notice = ReductionNotice.objects.create(
            budget=budget,
            new_plan=new_plan,
            old_annual_pence=budget.annual_pence,
            new_annual_pence=new_annual,
            reasons=reasons.strip(),
            issued_on=today,
            effective_on=effective_on,
            issued_by=acting_user,
        )
        letters.letter_for_reduction(notice)
    return notice


# --- Suspension and stopping letters (the notices themselves are made by budgets.monitoring) ---------------------


def letter_for_stop(decision: StopDecision) -> Letter:
    return letters.letter_for_stop(decision)


def letter_for_suspension(suspension: Suspension) -> Letter:
    return letters.letter_for_suspension(suspension)


# --- Recovery (rule 18) -----------------------------------------------------------------------------------------


def _check_notice(*, budget, reasons, amount_pence, deadline, addressee, addressee_name, today) -> None:
    """All four parts of a recovery notice (reasons, amount, deadline, who), each refused on its own."""
    if not (reasons or "").strip():
        raise EndingError(REASONS_REQUIRED)
    if (
        isinstance(amount_pence, bool)
        or not isinstance(amount_pence, int)
        or not 0 < amount_pence <= MAX_RECOVERY_PENCE
    ):
        raise EndingError(AMOUNT_REQUIRED)
    if not isinstance(deadline, datetime.date) or deadline <= today:
        raise EndingError(DEADLINE_REQUIRED)
    if addressee not in Addressee.values or not (addressee_name or "").strip():
        raise EndingError(ADDRESSEE_REQUIRED)
    person = budget.plan.person
    if addressee == Addressee.REPRESENTATIVE and not person.representatives.filter(active=True).exists():
        raise EndingError(NO_REPRESENTATIVE.format(person=person.full_name))
    deceased = is_deceased(budget)
    if deceased and addressee != Addressee.PERSONAL_REPRESENTATIVES:
        raise EndingError(AFTER_DEATH)
    if not deceased and addressee == Addressee.PERSONAL_REPRESENTATIVES:
        raise EndingError(NOT_DECEASED)


def offset_first_problem(budget: Budget) -> str | None:
    """Rule 15: a surplus is offset against the next direct-payment instalment before any of it is asked back.
    Why asking for the balance back must wait, or None when nothing is left to offset against."""
    payment = (
        ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT, status=PaymentStatus.DUE)
        .order_by("due_on", "id")
        .first()
    )
    surplus = dp_surplus(budget)
    if payment is None or payment.offset_pence or surplus == 0:
        return None
    return OFFSET_FIRST.format(
        amount=format_pence(min(surplus, payment.amount_pence)), due_on=format_date(payment.due_on)
    )


def _check_balance(budget: Budget, amount_pence: int, *, closing: bool) -> None:
    if _held_account(budget) is None:
        raise EndingError(NO_DIRECT_PAYMENT)
    if closing and outstanding_liabilities(budget) > 0:
        raise EndingError(LIABILITIES_FIRST)
    available = dp_balance(budget)
    if amount_pence > available:
        raise EndingError(NOT_ENOUGH_BALANCE.format(balance=format_pence(available)))


def recovery_propose(
    *,
    budget: Budget,
    reasons: str,
    amount_pence: int,
    deadline: datetime.date,
    addressee: str,
    addressee_name: str,
    acting_user,
    from_balance: bool = False,
    surplus_alert: SurplusAlert | None = None,
    today: datetime.date | None = None,
) -> Recovery:
    """Write a notice asking for money back. Nothing is booked or sent until someone else approves it (rule 4).

    `from_balance`: the money is still in the direct-payment account (a surplus, the closing balance), so the
    claim will take it from there; otherwise it was spent and the claim is booked against `recovery:claimed`. A
    surplus is offset against the next instalment first (rule 15); during the final audit a claim on the balance is
    the closing notice, allowed only once every liability is paid."""
    today = _today(today)
    with transaction.atomic(), _context("recovery_propose", acting_user):
        Budget.objects.select_for_update().filter(pk=budget.pk).get()  # one proposal on the balance at a time
        recovery_check(
            budget=budget,
            reasons=reasons,
            amount_pence=amount_pence,
            deadline=deadline,
            addressee=addressee,
            addressee_name=addressee_name,
            from_balance=from_balance,
            today=today,
        )
        recovery = Recovery.objects.create(
            budget=budget,
            reasons=reasons.strip(),
            amount_pence=amount_pence,
            deadline=deadline,
            addressee=addressee,
            addressee_name=addressee_name.strip(),
            issued_by=acting_user,
            proposed_on=today,
            from_balance=from_balance,
            surplus_alert=surplus_alert if surplus_alert is not None and surplus_alert.budget_id == budget.pk else None,
            status=RecoveryStatus.PROPOSED,
        )
        transaction.on_commit(lambda: _ask_for_approval(recovery))
    return recovery


def recovery_check(
    *,
    budget: Budget,
    reasons: str,
    amount_pence: int,
    deadline: datetime.date,
    addressee: str,
    addressee_name: str,
    from_balance: bool = False,
    today: datetime.date | None = None,
) -> None:
    """Every refusal `recovery_propose` would give, without writing anything: the pages check the answers with it
    before the check-your-answers step, so nobody confirms a notice only to be told to start again."""
    today = _today(today)
    _check_notice(
        budget=budget,
        reasons=reasons,
        amount_pence=amount_pence,
        deadline=deadline,
        addressee=addressee,
        addressee_name=addressee_name,
        today=today,
    )
    status = _plan_status(budget)
    if status == PlanStatus.CLOSED:
        raise EndingError(BUDGET_CLOSED)
    if from_balance:
        _check_balance(budget, amount_pence, closing=status == PlanStatus.FINAL_AUDIT)
        if status in LIVE_FOR_OFFSET and (problem := offset_first_problem(budget)):
            raise EndingError(problem)
        if budget.recoveries.filter(status=RecoveryStatus.PROPOSED, from_balance=True).exists():
            raise EndingError(BALANCE_NOTICE_WAITING)


def _ask_for_approval(recovery: Recovery) -> None:
    """Email everyone who may approve the notice (the dashboards list it too), so it does not wait unseen."""
    candidates = User.objects.filter(
        is_active=True,
        organisation_id=recovery.budget.plan.person.icb_id,
        role_memberships__role__in=[Role.FINANCE_MANAGER, Role.ICB_APPROVER],
    ).distinct()
    recipients = sorted(user.email for user in candidates if can_approve(recovery, user))
    if not recipients:
        return
    person = recovery.budget.plan.person
    link = settings.SITE_URL.rstrip("/") + reverse(
        "budgets:recovery", kwargs={"pk": recovery.budget_id, "recovery_pk": recovery.pk}
    )
    send_email.defer(
        subject=f"A recovery notice for {person.full_name} needs your approval",
        body=(
            f"{recovery.issued_by.full_name} has written a notice asking for {format_pence(recovery.amount_pence)} "
            f"back from {person.full_name}'s personal health budget, to be paid by "
            f"{format_date(recovery.deadline)}.\n\n"
            f"Reasons: {recovery.reasons}\n\n"
            "Nothing is booked and no letter goes out until someone other than its author approves it. "
            f"Approve it or turn it down here:\n{link}\n"
        ),
        to=recipients,
    )


def can_approve(recovery: Recovery, user) -> bool:
    """A finance manager or an ICB approver for the person, never whoever wrote the notice (rule 4)."""
    return user.pk != recovery.issued_by_id and (
        user.has_perm("budgets.write_off") or user.has_perm("brokerage.approve_careplan", recovery.budget.plan)
    )


def _require_proposed(recovery: Recovery, acting_user) -> None:
    if recovery.status != RecoveryStatus.PROPOSED:
        raise EndingError(NOT_PROPOSED.format(status=recovery.get_status_display().lower()))
    if acting_user.pk == recovery.issued_by_id:
        raise EndingError(NOT_YOUR_OWN)
    if not can_approve(recovery, acting_user):
        raise EndingError(CANNOT_APPROVE)


def recovery_approve(*, recovery: Recovery, acting_user, today: datetime.date | None = None) -> Recovery:
    """Approve a proposed notice: book what is owed in the ledger, send the letter. The checks are made again
    as they stand today (the balance may have been spent, the deadline may have passed)."""
    today = _today(today)
    with transaction.atomic(), _context("recovery_approve", acting_user):
        Budget.objects.select_for_update().filter(pk=recovery.budget_id).get()
        recovery = _lock(recovery)
        _require_proposed(recovery, acting_user)
        budget = recovery.budget
        if recovery.deadline <= today:
            raise EndingError(DEADLINE_PASSED)
        status = _plan_status(budget)
        if status == PlanStatus.CLOSED:
            raise EndingError(BUDGET_CLOSED)
        closing = recovery.from_balance and status == PlanStatus.FINAL_AUDIT
        if recovery.from_balance:
            _check_balance(budget, recovery.amount_pence, closing=closing)
        credit = (
            _held_account(budget)
            if recovery.from_balance
            else budget_account(budget, "recovery:claimed", "Money asked back under recovery notices", "equity")
        )
        try:
            ledger.transfer_post(
                key=_claim_key(recovery),
                debit_account_id=_owed_account(budget).pk,
                credit_account_id=credit.pk,
                amount=recovery.amount_pence,
                code="recovery_closing" if closing else "recovery_claim",
                effective_date=ledger_selectors.first_open_day(today),
                reference=budget.owner_ref,
                description=f"Recovery notice {recovery.pk}: money asked back",
                acting_user=acting_user,
            )
        except InsufficientFunds as exc:  # the account was spent from meanwhile
            raise EndingError(NOT_ENOUGH_BALANCE.format(balance=format_pence(dp_balance(budget)))) from exc
        recovery.status = RecoveryStatus.ISSUED
        recovery.approved_by = acting_user
        recovery.issued_on = today
        recovery.save(update_fields=["status", "approved_by", "issued_on"])
        if recovery.surplus_alert_id is not None:
            SurplusAlert.objects.filter(pk=recovery.surplus_alert_id, status=SurplusStatus.OPEN).update(
                status=SurplusStatus.RECOVERY, resolved_by=acting_user, resolved_on=today
            )
        letters.letter_for_recovery(recovery)
    return recovery


def recovery_not_approve(*, recovery: Recovery, reasons: str, acting_user) -> Recovery:
    """Turn a proposed notice down, with reasons: nothing was booked or sent, so nothing is undone."""
    if not (reasons or "").strip():
        raise EndingError(REASONS_REQUIRED)
    with transaction.atomic(), _context("recovery_not_approve", acting_user):
        recovery = _lock(recovery)
        _require_proposed(recovery, acting_user)
        recovery.status = RecoveryStatus.NOT_APPROVED
        recovery.not_approved_reasons = reasons.strip()
        recovery.approved_by = acting_user  # who decided, either way
        recovery.save(update_fields=["status", "not_approved_reasons", "approved_by"])
    return recovery


def _claim_key(recovery: Recovery) -> str:
    return f"recovery:{recovery.pk}:claim"


def _claim(recovery: Recovery) -> Transfer:
    return Transfer.objects.get(idempotency_key=_claim_key(recovery))


def is_closing(recovery: Recovery) -> bool:
    """A notice for the closing balance: booked as one, or waiting for approval during the final audit."""
    if recovery.status == RecoveryStatus.PROPOSED:
        return recovery.from_balance and _plan_status(recovery.budget) == PlanStatus.FINAL_AUDIT
    return Transfer.objects.filter(idempotency_key=_claim_key(recovery), code="recovery_closing").exists()


def _lock(recovery: Recovery) -> Recovery:
    return Recovery.objects.select_for_update().select_related("budget__plan__person").get(pk=recovery.pk)


def _require_open(recovery: Recovery) -> None:
    if recovery.status == RecoveryStatus.RECONSIDERING:
        raise EndingError(PAUSED)
    if recovery.status != RecoveryStatus.ISSUED:
        raise EndingError(NOT_OPEN.format(status=recovery.get_status_display().lower()))


def _settle_if_done(recovery: Recovery) -> None:
    if recovery.outstanding_pence == 0 and recovery.status == RecoveryStatus.ISSUED:
        recovery.status = RecoveryStatus.SETTLED


def recovery_reconsider(*, recovery: Recovery, evidence: str, acting_user) -> Recovery:
    """The person (or whoever must repay) asks for the notice to be looked at again, with their evidence: it is
    paused, so nothing is repaid or written off, until someone other than the issuer decides."""
    if not (evidence or "").strip():
        raise EndingError(EVIDENCE_REQUIRED)
    with transaction.atomic(), _context("recovery_reconsider", acting_user):
        recovery = _lock(recovery)
        if recovery.reconsideration_evidence:
            raise EndingError(ALREADY_RECONSIDERED)
        _require_open(recovery)
        recovery.status = RecoveryStatus.RECONSIDERING
        recovery.reconsideration_evidence = evidence.strip()
        recovery.save(update_fields=["status", "reconsideration_evidence"])
    return recovery


# A reconsideration is decided by the same people who may approve a notice: never its author (rule 4).
can_decide = can_approve


def recovery_decide(
    *,
    recovery: Recovery,
    outcome: str,
    reasons: str,
    acting_user,
    amount_pence: int | None = None,
    deadline: datetime.date | None = None,
    today: datetime.date | None = None,
) -> Recovery:
    """Decide a reconsideration (rule 5): `resume` (perhaps for less, perhaps with a new deadline) or `withdraw`,
    with reasons, by a finance manager or ICB approver who did not issue it (rule 4). The outcome is sent as a
    letter. Whatever is no longer asked for is released in the ledger."""
    today = _today(today)
    if outcome not in ("resume", "withdraw"):
        raise EndingError("Choose whether the notice stands or is withdrawn")
    if not (reasons or "").strip():
        raise EndingError(REASONS_REQUIRED)
    with transaction.atomic(), _context("recovery_decide", acting_user):
        recovery = _lock(recovery)
        if recovery.status != RecoveryStatus.RECONSIDERING:
            raise EndingError(NOT_RECONSIDERING)
        if acting_user.pk == recovery.issued_by_id:
            raise EndingError(NOT_THE_ISSUER)
        if not can_decide(recovery, acting_user):
            raise EndingError(CANNOT_DECIDE)
        settled_part = recovery.recovered_pence + recovery.written_off_pence
        if outcome == "withdraw":
            new_amount = recovery.amount_pence
            released = recovery.outstanding_pence
        else:
            new_amount = recovery.amount_pence if amount_pence is None else amount_pence
            if isinstance(new_amount, bool) or not isinstance(new_amount, int) or new_amount <= 0:
                raise EndingError(AMOUNT_REQUIRED)
            if new_amount > recovery.amount_pence:
                raise EndingError("A reconsideration can keep or reduce the amount, never raise it")
            if new_amount < settled_part:
                raise EndingError(f"{format_pence(settled_part)} has already been repaid or written off")
            if deadline is not None and deadline <= today:
                raise EndingError(DEADLINE_REQUIRED)
            released = recovery.amount_pence - new_amount
        if released:
            _release(recovery, released, acting_user=acting_user, today=today, why=outcome)
        recovery.reconsideration_outcome = reasons.strip()
        recovery.amount_pence = new_amount
        if outcome == "withdraw":
            recovery.status = RecoveryStatus.WITHDRAWN
        else:
            recovery.status = RecoveryStatus.ISSUED
            recovery.deadline = deadline or recovery.deadline
            _settle_if_done(recovery)
        recovery.save(update_fields=["reconsideration_outcome", "amount_pence", "status", "deadline"])
        letters.letter_for_recovery_decision(recovery, outcome=outcome, released_pence=released, decided_by=acting_user)
    return recovery


def _release(recovery: Recovery, amount: int, *, acting_user, today, why: str) -> None:
    """Take `amount` off what is owed: back where the claim took it from, or waived at closing, when the budget
    can no longer spend it."""
    claim = _claim(recovery)
    budget = recovery.budget
    if claim.code == "recovery_closing":
        target = budget_account(budget, "recovery:waived", "Not asked back after reconsideration", "expense")
    else:
        target = claim.credit_account
    ledger.transfer_post(
        key=f"recovery:{recovery.pk}:released",
        debit_account_id=target.pk,
        credit_account_id=_owed_account(budget).pk,
        amount=amount,
        code="recovery_released",
        effective_date=today,
        reference=budget.owner_ref,
        description=f"Recovery notice {recovery.pk}: {'withdrawn' if why == 'withdraw' else 'reduced'} after "
        "reconsideration",
        acting_user=acting_user,
    )


def recovery_repaid(
    *,
    recovery: Recovery,
    amount_pence: int,
    key: str,
    acting_user,
    method: str,
    received_on: datetime.date | None = None,
    card_payment: CardPayment | None = None,
) -> Recovery:
    """Record money paid back: by bank transfer (finance records it) or by card (called when Stripe confirms the
    card payment). Posted once per `key`: the same key again changes nothing. Refused while reconsidering and
    beyond what is still owed."""
    received_on = _today(received_on)
    if method not in REPAYMENT_METHODS:
        raise EndingError("Choose how the money was paid back")
    if isinstance(amount_pence, bool) or not isinstance(amount_pence, int) or amount_pence <= 0:
        raise EndingError(AMOUNT_REQUIRED)
    if method == "card" and (card_payment is None or card_payment.purpose != CardPaymentPurpose.RECOVERY):
        raise EndingError("A card repayment needs the card payment it came from")
    ledger_key = f"recovery:{recovery.pk}:repaid:{key}"
    with transaction.atomic(), _context("recovery_repaid", acting_user):
        recovery = _lock(recovery)
        if Transfer.objects.filter(idempotency_key=ledger_key).exists():
            return recovery  # the same repayment recorded again: once is enough
        _require_open(recovery)
        if amount_pence > recovery.outstanding_pence:
            raise EndingError(OVER_OUTSTANDING.format(outstanding=format_pence(recovery.outstanding_pence)))
        budget = recovery.budget
        if method == "card":
            debit = card_account_for_recovery(budget)
            how = f"by card (card payment {card_payment.pk})"
        else:
            debit = icb_bank_account()
            how = "by bank transfer"
        ledger.transfer_post(
            key=ledger_key,
            debit_account_id=debit.pk,
            credit_account_id=_owed_account(budget).pk,
            amount=amount_pence,
            code="recovery_repayment",
            effective_date=ledger_selectors.first_open_day(received_on),  # its month may have closed since
            reference=budget.owner_ref,
            description=f"Recovery notice {recovery.pk}: paid back {how}",
            acting_user=acting_user,
        )
        recovery.recovered_pence += amount_pence
        _settle_if_done(recovery)
        recovery.save(update_fields=["recovered_pence", "status"])
    return recovery


def recovery_card_paid(payment: CardPayment) -> int:
    """Called when Stripe confirms a card payment for a recovery: apply it to the budget's open notices, oldest
    first, never beyond what each still owes. Returns the pence applied; anything not applied (a notice being
    reconsidered, or more than was owed) stays in the budget's `card:recovery` account for finance to refund.
    Never raises: the card payment itself must still be recorded."""
    applied = 0
    left = payment.amount_pence
    open_notices = Recovery.objects.filter(budget_id=payment.budget_id, status=RecoveryStatus.ISSUED).order_by(
        "issued_on", "id"
    )
    for recovery in open_notices:
        if left <= 0:
            break
        part = min(left, recovery.outstanding_pence)
        if part <= 0:
            continue
        try:
            with transaction.atomic():  # a savepoint: a refusal leaves the card payment's own posting intact
                recovery_repaid(
                    recovery=recovery,
                    amount_pence=part,
                    key=payment.ledger_key,
                    acting_user=payment.paid_by,
                    method="card",
                    card_payment=payment,
                )
        except BudgetError:
            logger.warning("Card payment %s could not be applied to recovery %s", payment.pk, recovery.pk)
            continue
        applied += part
        left -= part
    if left:
        logger.warning("Card payment %s: %s pence not applied to any recovery notice", payment.pk, left)
    return applied


def recovery_card_refunded(payment: CardPayment, *, amount_pence: int, key: str, acting_user) -> list[Recovery]:
    """Called inside a refund (`key`) of a card payment made for a recovery, before the refund is posted. The refund
    comes first out of what the payment left unapplied in `card:recovery`, then out of what it paid off each notice,
    newest notice first: that much is owed again, and a settled notice is open again. Returns the notices changed."""
    applied: dict[int, int] = {}
    for transfer in Transfer.objects.filter(
        code="recovery_repayment", idempotency_key__regex=rf"^recovery:[0-9]+:repaid:{payment.ledger_key}$"
    ):
        applied[int(transfer.idempotency_key.split(":")[1])] = transfer.amount
    for transfer in Transfer.objects.filter(
        code=RECOVERY_REFUND_CODE, idempotency_key__startswith=f"{payment.ledger_key}:refund:"
    ):
        applied[int(transfer.idempotency_key.rsplit(":", 1)[1])] -= transfer.amount  # undone by an earlier refund
    unapplied = payment.amount_pence - payment.refunded_pence - sum(applied.values())
    to_undo = amount_pence - max(unapplied, 0)
    changed = []
    for recovery in Recovery.objects.select_for_update().filter(pk__in=applied).order_by("-issued_on", "-id"):
        part = min(to_undo, applied[recovery.pk])
        if part <= 0:
            continue
        with _context("recovery_card_refunded", acting_user):
            ledger.transfer_post(
                key=f"{key}:recovery:{recovery.pk}",
                debit_account_id=_owed_account(recovery.budget).pk,
                credit_account_id=card_account_for_recovery(recovery.budget).pk,
                amount=part,
                code=RECOVERY_REFUND_CODE,
                effective_date=ledger_selectors.first_open_day(timezone.localdate()),
                reference=recovery.budget.owner_ref,
                description=f"Recovery notice {recovery.pk}: card payment {payment.pk} refunded, so owed again",
                acting_user=acting_user,
            )
            recovery.recovered_pence -= part
            if recovery.status == RecoveryStatus.SETTLED:
                recovery.status = RecoveryStatus.ISSUED
            recovery.save(update_fields=["recovered_pence", "status"])
        to_undo -= part
        changed.append(recovery)
    return changed


def card_account_for_recovery(budget: Budget) -> Account:
    from budgets.card_payments import card_account  # the card code owns that account

    return card_account(budget, CardPaymentPurpose.RECOVERY)


def write_offs_made(recovery: Recovery) -> int:
    return Transfer.objects.filter(idempotency_key__startswith=f"recovery:{recovery.pk}:write-off:").count()


def recovery_write_off(
    *,
    recovery: Recovery,
    amount_pence: int,
    reasons: str,
    acting_user,
    key: str | None = None,
    today: datetime.date | None = None,
) -> Recovery:
    """Write off part or all of what is owed: a finance manager who did not issue the notice (rule 4), with
    reasons, posted as its own entry (the reasons go with it in the ledger)."""
    today = _today(today)
    if not (reasons or "").strip():
        raise EndingError(REASONS_REQUIRED)
    if isinstance(amount_pence, bool) or not isinstance(amount_pence, int) or amount_pence <= 0:
        raise EndingError(AMOUNT_REQUIRED)
    if not acting_user.has_perm("budgets.write_off"):
        raise EndingError(NOT_A_MANAGER)
    with transaction.atomic(), _context("recovery_write_off", acting_user):
        recovery = _lock(recovery)
        if acting_user.pk == recovery.issued_by_id:
            raise EndingError(NOT_THE_ISSUER)
        ledger_key = f"recovery:{recovery.pk}:write-off:{key or write_offs_made(recovery) + 1}"
        if Transfer.objects.filter(idempotency_key=ledger_key).exists():
            return recovery
        _require_open(recovery)
        if amount_pence > recovery.outstanding_pence:
            raise EndingError(OVER_OUTSTANDING.format(outstanding=format_pence(recovery.outstanding_pence)))
        budget = recovery.budget
        ledger.transfer_post(
            key=ledger_key,
            debit_account_id=budget_account(budget, "recovery:written-off", "Recoveries written off", "expense").pk,
            credit_account_id=_owed_account(budget).pk,
            amount=amount_pence,
            code="recovery_write_off",
            effective_date=today,
            reference=budget.owner_ref,
            description=f"Recovery notice {recovery.pk} written off: {reasons.strip()}"[:300],
            acting_user=acting_user,
        )
        recovery.written_off_pence += amount_pence
        _settle_if_done(recovery)
        recovery.save(update_fields=["written_off_pence", "status"])
    return recovery


def write_offs(recovery: Recovery) -> list[Transfer]:
    return list(
        Transfer.objects.filter(idempotency_key__startswith=f"recovery:{recovery.pk}:write-off:")
        .select_related("acting_user")
        .order_by("id")
    )


def repayments(recovery: Recovery) -> list[Transfer]:
    return list(
        Transfer.objects.filter(idempotency_key__startswith=f"recovery:{recovery.pk}:repaid:")
        .select_related("acting_user")
        .order_by("id")
    )


def recoveries_for(budget: Budget) -> list[Recovery]:
    """The notices the person still has to act on: open or being reconsidered."""
    return list(
        Recovery.objects.filter(
            budget=budget, status__in=[RecoveryStatus.ISSUED, RecoveryStatus.RECONSIDERING]
        ).order_by("deadline", "id")
    )


# --- Closing (rule 19) ------------------------------------------------------------------------------------------


def final_audit_begin(*, budget: Budget, acting_user, today: datetime.date | None = None) -> CarePlan:
    """Stopping → final audit, once the notice period has run (at once after a death: there is nobody to give
    notice to)."""
    today = _today(today)
    decision = budget.stop_decisions.order_by("-decided_on", "-id").first()
    if decision is None:
        raise EndingError(NO_STOP_DECISION)
    if decision.ground != StopGround.DEATH and today < decision.ends_on:
        raise EndingError(NOTICE_PERIOD_RUNS.format(ends_on=format_date(decision.ends_on)))
    plan = CarePlan.objects.get(pk=budget.plan_id)
    # Rule 5: nothing is enforced while the person waits for a reconsideration.
    if decision.reconsidering:
        raise EndingError(STOP_BEING_RECONSIDERED.format(name=decision.reconsideration_asked_by))
    if plans.reconsideration_pending(plan):
        raise EndingError(PLAN_BEING_RECONSIDERED)
    with _context("final_audit_begin", acting_user):
        return plans.plan_transition(
            plan=plan, name="begin_final_audit", acting_user=acting_user, reasons="Final audit started"
        )


def liability_record(*, budget: Budget, kind: str, payee: str, amount_pence: int, acting_user) -> Liability:
    """What the budget still owes as it ends (wages, notice, holiday pay, HMRC, agency invoices)."""
    status = _plan_status(budget)
    if status not in (PlanStatus.STOPPING, PlanStatus.FINAL_AUDIT):
        raise EndingError(NOT_ENDING.format(status=PlanStatus(status).label.lower()))
    if kind not in LiabilityKind.values:
        raise EndingError(CHOOSE_KIND)
    if not (payee or "").strip():
        raise EndingError(PAYEE_REQUIRED)
    if (
        isinstance(amount_pence, bool)
        or not isinstance(amount_pence, int)
        or not 0 < amount_pence <= MAX_RECOVERY_PENCE
    ):
        raise EndingError(AMOUNT_REQUIRED)
    with transaction.atomic(), _context("liability_record", acting_user):
        return Liability.objects.create(
            budget=budget, kind=kind, payee=payee.strip()[:200], amount_pence=amount_pence, recorded_by=acting_user
        )


def liability_pay(*, liability: Liability, acting_user, today: datetime.date | None = None) -> Liability:
    """Pay a liability from the direct-payment account, once. What the account cannot cover (liabilities larger
    than the balance) the ICB pays from its own bank, as a separate posting: there is then nothing to recover."""
    today = _today(today)
    with transaction.atomic(), _context("liability_pay", acting_user):
        liability = Liability.objects.select_for_update().select_related("budget").get(pk=liability.pk)
        if liability.paid_on is not None:
            return liability
        budget = liability.budget
        status = _plan_status(budget)
        if status != PlanStatus.FINAL_AUDIT:
            raise EndingError(NOT_IN_FINAL_AUDIT.format(status=PlanStatus(status).label.lower()))
        paid = budget_account(budget, "liabilities:paid", "Liabilities paid as the budget ended", "expense")
        from_account = min(liability.amount_pence, dp_balance(budget))
        common = {
            "debit_account_id": paid.pk,
            "code": "liability_payment",
            "effective_date": today,
            "reference": budget.owner_ref,
            "acting_user": acting_user,
        }
        if from_account > 0:
            ledger.transfer_post(
                key=f"liability:{liability.pk}:paid",
                credit_account_id=_held_account(budget).pk,
                amount=from_account,
                description=f"{liability.get_kind_display()} to {liability.payee}"[:300],
                **common,
            )
        if liability.amount_pence > from_account:
            ledger.transfer_post(
                key=f"liability:{liability.pk}:paid-by-icb",
                credit_account_id=icb_bank_account().pk,
                amount=liability.amount_pence - from_account,
                description=f"{liability.get_kind_display()} to {liability.payee}: the part the account could "
                "not cover, paid by the ICB"[:300],
                **common,
            )
        liability.paid_on = today
        liability.save(update_fields=["paid_on"])
    return liability


def outstanding_liabilities(budget: Budget) -> int:
    return budget.liabilities.filter(paid_on__isnull=True).aggregate(total=Sum("amount_pence"))["total"] or 0


@dataclasses.dataclass(frozen=True)
class FinalAudit:
    """The closing figures. `recoverable` = what the account holds for the budget, less what it still owes,
    never below zero, plus what closing notices already ask back; the budget closes when that equals what has been
    recovered plus written off, nothing is owed and nothing is left unclaimed."""

    dp_balance: int  # in the direct-payment account, not yet asked back
    outstanding_liabilities: int
    shortfall: int  # liabilities beyond the balance: the ICB pays these from its bank
    claimed: int  # what closing notices ask back (after any reconsideration)
    recovered: int
    written_off: int
    mixed_funds: int  # money from other sources in the account: returned to whoever paid it, not recovered
    reserved: int  # held back for invoices the person confirmed but that are not paid yet
    other_open_notices: int  # notices from before the final audit, still open or being reconsidered
    closing_notices: tuple[Recovery, ...]
    waiting_approval: tuple[Recovery, ...]  # notices written but not yet approved (rule 4): nothing booked yet
    third_party_balances: tuple[tuple[str, int, str], ...]  # (account name, balance, purpose)

    @property
    def unclaimed(self) -> int:
        return max(0, self.dp_balance - self.outstanding_liabilities)

    @property
    def recoverable(self) -> int:
        return self.unclaimed + self.claimed

    @property
    def problems(self) -> list[str]:
        """Why the budget cannot close yet; empty when it can."""
        found = []
        if self.outstanding_liabilities:
            found.append(f"{format_pence(self.outstanding_liabilities)} of liabilities are still to be paid")
        if self.unclaimed:
            found.append(f"{format_pence(self.unclaimed)} is still in the account: ask for it back")
        open_closing = [
            r for r in self.closing_notices if r.status in (RecoveryStatus.ISSUED, RecoveryStatus.RECONSIDERING)
        ]
        if open_closing or self.recoverable != self.recovered + self.written_off:
            found.append(
                f"Recoverable {format_pence(self.recoverable)} is not yet recovered plus written off "
                f"({format_pence(self.recovered + self.written_off)})"
            )
        if self.reserved:
            found.append(f"{format_pence(self.reserved)} is reserved for invoices not yet paid: pay or release them")
        if self.waiting_approval:
            found.append(f"{len(self.waiting_approval)} notice(s) asking for money back wait for approval")
        if self.other_open_notices:
            found.append(f"{self.other_open_notices} earlier recovery notice(s) still open: settle or withdraw them")
        for name, balance, _purpose in self.third_party_balances:
            found.append(f"{name}: {format_pence(balance)} is still with the third party: record its return")
        return found

    @property
    def can_close(self) -> bool:
        return not self.problems


def holder_balance_returned(*, budget: Budget, purpose: str, acting_user, today: datetime.date | None = None) -> int:
    """A third-party holder has sent back what it still held for the budget: the money comes back to the ICB's
    bank, once (closing needs every holder's balance returned). Returns the pence recorded."""
    today = _today(today)
    if not purpose.startswith("held:third-party:"):
        raise EndingError("Choose one of the budget's third-party holders")
    with transaction.atomic(), _context("holder_balance_returned", acting_user):
        status = _plan_status(budget)
        if status != PlanStatus.FINAL_AUDIT:
            raise EndingError(NOT_IN_FINAL_AUDIT.format(status=PlanStatus(status).label.lower()))
        row = BudgetAccount.objects.select_related("account").filter(budget=budget, purpose=purpose).first()
        if row is None:
            raise EndingError("Choose one of the budget's third-party holders")
        balance = row.account.posted_balance
        if balance <= 0:
            return 0
        ledger.transfer_post(
            key=f"{budget.owner_ref}:{purpose}:returned",
            debit_account_id=icb_bank_account().pk,
            credit_account_id=row.account_id,
            amount=balance,
            code="holder_return",
            effective_date=today,
            reference=budget.owner_ref,
            description=f"Returned by the holder as the budget ended: {row.account.name}"[:300],
            acting_user=acting_user,
        )
    return balance


def final_audit(budget: Budget) -> FinalAudit:
    recoveries = list(Recovery.objects.filter(budget=budget).order_by("id"))
    closing_keys = set(
        Transfer.objects.filter(
            idempotency_key__in=[_claim_key(r) for r in recoveries], code="recovery_closing"
        ).values_list("idempotency_key", flat=True)
    )
    closing = [r for r in recoveries if _claim_key(r) in closing_keys]
    live = [r for r in closing if r.status != RecoveryStatus.WITHDRAWN]
    outstanding = outstanding_liabilities(budget)
    balance = dp_balance(budget)
    mixed, held = _held_account(budget, "mixed-funds"), _held_account(budget)
    third_party = tuple(
        (row.account.name, row.account.posted_balance, row.purpose)
        for row in BudgetAccount.objects.filter(budget=budget, purpose__startswith="held:third-party:").select_related(
            "account"
        )
        if row.account.posted_balance
    )
    return FinalAudit(
        dp_balance=balance,
        outstanding_liabilities=outstanding,
        shortfall=max(0, outstanding - balance),
        # A withdrawn closing notice still counts what was paid or written off before it was withdrawn.
        claimed=sum(r.amount_pence for r in live)
        + sum(r.recovered_pence + r.written_off_pence for r in closing if r not in live),
        recovered=sum(r.recovered_pence for r in closing),
        written_off=sum(r.written_off_pence for r in closing),
        mixed_funds=mixed.posted_balance if mixed else 0,
        reserved=held.credits_pending if held else 0,
        other_open_notices=sum(
            1
            for r in recoveries
            if r not in closing and r.status in (RecoveryStatus.ISSUED, RecoveryStatus.RECONSIDERING)
        ),
        closing_notices=tuple(closing),
        waiting_approval=tuple(r for r in recoveries if r.status == RecoveryStatus.PROPOSED),
        third_party_balances=third_party,
    )


def budget_close(*, budget: Budget, acting_user) -> CarePlan:
    """Final audit → closed: a finance manager, only when every liability is paid and recoverable = recovered +
    written off. Nothing is deleted: the budget, its notices, letters and ledger stay readable."""
    if not acting_user.has_perm("budgets.close_budget"):
        raise EndingError(NOT_A_MANAGER)
    with transaction.atomic(), _context("budget_close", acting_user):
        Budget.objects.select_for_update().filter(pk=budget.pk).get()
        status = _plan_status(budget)
        if status != PlanStatus.FINAL_AUDIT:
            raise EndingError(NOT_IN_FINAL_AUDIT.format(status=PlanStatus(status).label.lower()))
        audit = final_audit(budget)
        if audit.problems:
            raise EndingError("The budget cannot close yet: " + "; ".join(audit.problems))
        plan = CarePlan.objects.get(pk=budget.plan_id)
        return plans.plan_transition(
            plan=plan,
            name="close",
            acting_user=acting_user,
            reasons=f"Closed: recoverable {format_pence(audit.recoverable)} = recovered "
            f"{format_pence(audit.recovered)} + written off {format_pence(audit.written_off)}",
        )


def letters_for(budget: Budget) -> list[Letter]:
    return list(Letter.objects.filter(budget=budget).order_by("-created_at", "-id"))
