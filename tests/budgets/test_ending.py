"""The end of a budget's life: a reduction with notice (refused before its notice date, paid at the old amounts
until it takes effect and not after), recovery notices (all four parts, with and without reconsideration, after a
death, repaid by bank and by card once, written off only by another finance manager), closing with liabilities,
and the letters as HTML and accessible PDF, seen only by those who may see the budget. After each: the ledger
balances and the audit rows name who acted."""

from __future__ import annotations

import datetime
import functools
import html
import io
import re
import uuid

import pypdf
import pytest
import time_machine
from django.db import IntegrityError, transaction
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.roles import Role
from brokerage import services as plans
from brokerage.models import ManagementType, PlanEvent, PlanLine, PlanStatus
from budgets import card_payments, ending, letters, monitoring, payment_runs, services, spending
from budgets.ending import EndingError
from budgets.models import (
    Addressee,
    CardPayment,
    CardPaymentPurpose,
    CardPaymentStatus,
    Letter,
    LetterKind,
    Liability,
    LiabilityKind,
    PaymentKind,
    Recovery,
    RecoveryStatus,
    ReductionNotice,
    ScheduledPayment,
    StopDecision,
    StopGround,
    Suspension,
    SuspensionReason,
)
from budgets.services import BudgetError
from ledger.models import Account, Transfer
from ledger.verification import ledger_verify
from tests.brokerage.helpers import icb
from tests.budgets.test_person_pages import budget_in_use
from tests.budgets.test_statements import weasyprint_alone
from tests.factories import issued_recovery, user_with_role
from tests.mfa import TwoFactorClient

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)
NOW = datetime.datetime(2026, 12, 20, 10, 0)
TODAY = NOW.date()
DEADLINE = datetime.date(2027, 1, 31)


# --- Builders --------------------------------------------------------------------------------------------------


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def live(agreed, clock, settings, tmp_path):
    """Journey 1's budget from 1 December, its first payments made, with a finance officer, two finance managers
    and the person's own sign-in."""
    settings.MEDIA_ROOT = tmp_path / "media"
    budget = budget_in_use(agreed, start=START)
    patient = user_with_role(Role.PATIENT)
    agreed["person"].user = patient
    agreed["person"].save(update_fields=["user"])
    agreed.update(
        budget=budget,
        patient=patient,
        manager=user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"]),
        manager2=user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"]),
    )
    return agreed


def account(budget, purpose: str) -> Account:
    return Account.objects.get(code=f"{budget.owner_ref}:{purpose}")


def dp(budget) -> int:
    return account(budget, "held:direct-payment").posted_balance


def money_in(crew, pence: int) -> None:
    spending.dp_money_in_record(
        budget=crew["budget"],
        received_on=TODAY,
        amount_pence=pence,
        payer="NHS North East ICB",
        source="funder",
        key=uuid.uuid4().hex,
        acting_user=crew["finance"],
    )


def notice(crew, *, amount=2000, from_balance=True, by=None, **changes) -> Recovery:
    fields = {
        "budget": crew["budget"],
        "reasons": "Money has built up in the account beyond what the plan needs.",
        "amount_pence": amount,
        "deadline": DEADLINE,
        "addressee": Addressee.PERSON,
        "addressee_name": "Joan Robson",
        "acting_user": by or crew["finance"],
        "from_balance": from_balance,
    }
    approver = crew["manager"] if fields["acting_user"] == crew["manager2"] else crew["manager2"]  # rule 4
    return issued_recovery(**{"approved_by": approver, **fields, **changes})


def audit_rows(model, pk) -> list[tuple[str, int | None]]:
    """(label, user) of each audit row of one object, oldest first."""
    events = model.pgh_event_model.objects.filter(pgh_obj_id=pk).select_related("pgh_context").order_by("pgh_id")
    return [(e.pgh_label, e.pgh_context.metadata.get("user") if e.pgh_context else None) for e in events]


def stop(crew, ground=StopGround.NOT_ELIGIBLE, reasons="No longer eligible for continuing healthcare") -> StopDecision:
    plan = crew["budget"].plan
    plan.refresh_from_db()
    plans.plan_transition(plan=plan, name="stop", acting_user=crew["finance"], reasons=reasons)
    return StopDecision.objects.create(
        budget=crew["budget"],
        ground=ground,
        reasons=reasons,
        decided_by=crew["finance"],
        decided_on=TODAY,
        ends_on=TODAY + datetime.timedelta(days=plan.notice_period_days),
    )


def pdf_of(content: bytes) -> pypdf.PdfReader:
    return pypdf.PdfReader(io.BytesIO(content))


# --- Reductions (rule 6) ----------------------------------------------------------------------------------------


def reduced_version(crew):
    """Version 2 of the plan: the singing line halved, so the budget falls from £12,000 to £11,850."""
    person, broker = crew["person"], crew["broker"]
    new = plans.plan_create(person=person, acting_user=broker)
    PlanLine.objects.filter(plan=new, management_type=ManagementType.DIRECT_PAYMENT).update(quantity=25)
    plans.plan_update(
        plan=new,
        acting_user=broker,
        section="budget",
        indicative_budget=Money(11850, "GBP"),
        budget=Money(11850, "GBP"),
        funding_icb=Money(11850, "GBP"),
        funding_local_authority=Money(0, "GBP"),
        funding_contribution=Money(0, "GBP"),
    )
    plans.plan_submit(plan=new, acting_user=broker)
    plans.plan_approve(plan=new, acting_user=crew["approver"])
    return new


def test_a_reduction_is_refused_before_its_notice_date_and_pays_old_amounts_until_it_and_new_ones_from_it(live):
    budget, old_plan = live["budget"], live["plan"]
    new = reduced_version(live)
    earliest = TODAY + datetime.timedelta(days=28)
    assert old_plan.notice_period_days == 28
    issue = {"budget": budget, "new_plan": new, "acting_user": live["coordinator"]}

    with pytest.raises(EndingError, match="17 January 2027 at the earliest"):
        ending.reduction_notice_issue(
            **issue, reasons="Less singing is needed", effective_on=earliest - datetime.timedelta(days=1)
        )
    with pytest.raises(EndingError, match=ending.REASONS_REQUIRED):
        ending.reduction_notice_issue(**issue, reasons="  ", effective_on=earliest)
    plans.plan_record_agreement(
        plan=new,
        acting_user=live["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=TODAY,
        icb_signatory=live["approver"],
    )
    with pytest.raises(services.BudgetError, match="issue a written notice of the reduction"):
        services.budget_set_up(plan=new, acting_user=live["finance"], start_date=TODAY)
    assert ReductionNotice.objects.count() == 0

    # The old version paid on 1 December for four weeks: the new one starts where that runs out, on 29 December,
    # and the reduction takes effect four weeks later (after its notice period): one instalment before it.
    start = services.earliest_start(new)
    assert start == datetime.date(2026, 12, 29)
    effective = start + datetime.timedelta(days=28)
    reduction = ending.reduction_notice_issue(
        **issue, reasons="Singing twice a month meets the outcome", effective_on=effective
    )
    assert (reduction.old_annual_pence, reduction.new_annual_pence) == (1_200_000, 1_185_000)
    letter = Letter.objects.get(kind=LetterKind.REDUCTION, subject_ref=f"reduction:{reduction.pk}")
    assert "Singing twice a month meets the outcome" in letter.html and "26 January 2027" in letter.html
    with pytest.raises(EndingError, match=ending.NOTICE_EXISTS):
        ending.reduction_notice_issue(**issue, reasons="Again", effective_on=effective)

    new.refresh_from_db()
    with pytest.raises(services.BudgetError, match="has paid for the period up to 29 December 2026"):
        services.budget_set_up(plan=new, acting_user=live["finance"], start_date=TODAY)
    reduced = services.budget_set_up(plan=new, acting_user=live["finance"], start_date=start)
    direct = list(ScheduledPayment.objects.filter(budget=reduced, kind=PaymentKind.DIRECT_PAYMENT).order_by("due_on"))
    old_instalment = (
        ScheduledPayment.objects.filter(budget=budget, kind=PaymentKind.DIRECT_PAYMENT).first().amount_pence
    )
    new_instalment = services.split(15_000, 13)[0]
    assert (direct[0].due_on, direct[0].amount_pence) == (start, old_instalment)  # before: the old amount
    assert (direct[1].due_on, direct[1].amount_pence) == (effective, new_instalment)  # on the date: the new amount
    assert all(p.amount_pence < old_instalment for p in direct[1:])
    third_party = ScheduledPayment.objects.filter(budget=reduced, kind=PaymentKind.THIRD_PARTY)
    assert {p.amount_pence for p in third_party} == {39_200}  # unchanged lines keep their amounts throughout
    # The ICB funds the notice period's difference as its own posting, so the year still adds up.
    top_up = Transfer.objects.get(idempotency_key=f"{reduced.owner_ref}:allocation:notice-period")
    assert top_up.amount == old_instalment - new_instalment
    services.scheduled_payment_pay(payment=direct[0], acting_user=live["finance"])
    assert dp(reduced) == old_instalment
    assert ledger_verify().ok
    assert audit_rows(ReductionNotice, reduction.pk) == [("insert", live["coordinator"].pk)]


def test_a_new_version_takes_over_when_its_budget_is_set_up_and_the_old_one_pays_until_then(live, clock):
    budget, old_plan = live["budget"], live["plan"]
    new = plans.plan_create(person=live["person"], acting_user=live["broker"])
    plans.plan_submit(plan=new, acting_user=live["broker"])
    plans.plan_approve(plan=new, acting_user=live["approver"])
    plans.plan_record_agreement(
        plan=new,
        acting_user=live["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=TODAY,
        icb_signatory=live["approver"],
    )
    old_plan.refresh_from_db()
    assert old_plan.status == PlanStatus.ACTIVE  # agreed, not yet set up: the old budget still pays
    clock.move_to(datetime.datetime(2027, 1, 2, 10, 0))
    due = ScheduledPayment.objects.filter(budget=budget, status="due", due_on__lte=datetime.date(2027, 1, 2)).first()
    assert payment_runs.anything_due(datetime.date(2027, 1, 2))
    services.scheduled_payment_pay(payment=due, acting_user=live["finance"])

    paid_until = services.earliest_start(new)  # the instalment after the one just paid
    assert paid_until == due.due_on + datetime.timedelta(days=28)
    with pytest.raises(services.BudgetError, match="has paid for the period up to"):
        services.budget_set_up(
            plan=new, acting_user=live["finance"], start_date=due.due_on + datetime.timedelta(days=1)
        )
    new.refresh_from_db()
    assert new.status == PlanStatus.AGREED
    services.budget_set_up(plan=new, acting_user=live["finance"], start_date=paid_until)
    old_plan.refresh_from_db()
    assert old_plan.status == PlanStatus.VARIED
    event = PlanEvent.objects.filter(plan=old_plan).latest("id")
    assert (event.transition, event.by) == ("vary", live["finance"])
    assert not ScheduledPayment.objects.filter(
        budget=budget, status="due", budget__plan__status__in=services.PAYABLE
    ).exists()  # the old budget pays nothing more


def test_a_version_that_does_not_reduce_needs_no_notice(live):
    new = plans.plan_create(person=live["person"], acting_user=live["broker"])
    plans.plan_submit(plan=new, acting_user=live["broker"])
    plans.plan_approve(plan=new, acting_user=live["approver"])
    with pytest.raises(EndingError, match=ending.NOT_A_REDUCTION):
        ending.reduction_notice_issue(
            budget=live["budget"], new_plan=new, reasons="x", effective_on=DEADLINE, acting_user=live["coordinator"]
        )


# --- Recovery: the notice (rule 18) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ({"reasons": ""}, ending.REASONS_REQUIRED),
        ({"reasons": "   "}, ending.REASONS_REQUIRED),
        ({"amount_pence": 0}, ending.AMOUNT_REQUIRED),
        ({"amount_pence": None}, ending.AMOUNT_REQUIRED),
        ({"deadline": None}, ending.DEADLINE_REQUIRED),
        ({"deadline": TODAY}, ending.DEADLINE_REQUIRED),
        ({"addressee": ""}, ending.ADDRESSEE_REQUIRED),
        ({"addressee_name": " "}, ending.ADDRESSEE_REQUIRED),
        ({"addressee": Addressee.PERSONAL_REPRESENTATIVES}, ending.NOT_DECEASED),
    ],
)
def test_a_recovery_notice_is_refused_without_each_of_its_four_parts(live, missing, message):
    with pytest.raises(EndingError, match=message):
        notice(live, **missing)
    assert not Recovery.objects.exists() and not Letter.objects.exists()
    assert not Transfer.objects.filter(code__startswith="recovery").exists()


def test_a_claim_on_the_balance_cannot_exceed_what_the_account_holds(live):
    held = dp(live["budget"])
    with pytest.raises(EndingError, match="holds £"):
        notice(live, amount=held + 1)
    spent = notice(live, amount=held + 1, from_balance=False)  # money already spent is claimed all the same
    assert spent.outstanding_pence == held + 1 and dp(live["budget"]) == held


def test_a_recovery_without_reconsideration_is_repaid_by_bank_once_and_written_off_by_another_manager(live):
    budget = live["budget"]
    held = dp(budget)
    recovery = notice(live, amount=2000)
    assert dp(budget) == held - 2000  # the claim takes the money from the account: it can no longer be spent
    assert account(budget, "recovery:owed").posted_balance == 2000
    letter = Letter.objects.get(kind=LetterKind.RECOVERY, subject_ref=f"recovery:{recovery.pk}")
    assert "£20.00" in letter.html and "31 January 2027" in letter.html and "reconsider" in letter.html

    for _ in range(2):  # the same repayment recorded twice (a double click) is posted once
        ending.recovery_repaid(
            recovery=recovery, amount_pence=500, key="bank:a", acting_user=live["finance"], method="bank"
        )
    recovery.refresh_from_db()
    assert recovery.recovered_pence == 500
    assert Transfer.objects.filter(idempotency_key__startswith=f"recovery:{recovery.pk}:repaid:").count() == 1
    assert Account.objects.get(code="icb:bank").posted_balance == 500
    with pytest.raises(EndingError, match=r"more than is still owed \(£15\.00\)"):
        ending.recovery_repaid(
            recovery=recovery, amount_pence=1501, key="bank:b", acting_user=live["finance"], method="bank"
        )

    with pytest.raises(EndingError, match=ending.NOT_A_MANAGER):
        ending.recovery_write_off(recovery=recovery, amount_pence=1500, reasons="Small", acting_user=live["finance"])
    own = notice(live, amount=1000, from_balance=False, by=live["manager"])
    with pytest.raises(EndingError, match=ending.NOT_THE_ISSUER):
        ending.recovery_write_off(recovery=own, amount_pence=1000, reasons="Mine", acting_user=live["manager"])
    with pytest.raises(EndingError, match=ending.REASONS_REQUIRED):
        ending.recovery_write_off(recovery=recovery, amount_pence=1500, reasons=" ", acting_user=live["manager"])
    ending.recovery_write_off(
        recovery=recovery, amount_pence=1500, reasons="Costs more to collect", acting_user=live["manager"], key="w1"
    )
    recovery.refresh_from_db()
    assert (recovery.status, recovery.recovered_pence, recovery.written_off_pence) == (
        RecoveryStatus.SETTLED,
        500,
        1500,
    )
    write_off = Transfer.objects.get(idempotency_key=f"recovery:{recovery.pk}:write-off:w1")
    assert write_off.code == "recovery_write_off" and "Costs more to collect" in write_off.description
    assert write_off.acting_user_id == live["manager"].pk
    with pytest.raises(EndingError, match="settled"):
        ending.recovery_repaid(
            recovery=recovery, amount_pence=1, key="bank:c", acting_user=live["finance"], method="bank"
        )

    assert ledger_verify().ok
    assert account(budget, "recovery:owed").posted_balance == 1000  # only the manager's own notice is still owed
    assert audit_rows(Recovery, recovery.pk) == [
        ("insert", live["finance"].pk),  # written
        ("update", live["manager2"].pk),  # approved by someone else
        ("update", live["finance"].pk),  # repaid
        ("update", live["manager"].pk),  # written off
    ]


def proposal(crew, **changes) -> dict:
    return {
        "budget": crew["budget"],
        "reasons": "Money has built up in the account beyond what the plan needs.",
        "amount_pence": 2000,
        "deadline": DEADLINE,
        "addressee": Addressee.PERSON,
        "addressee_name": "Joan Robson",
        "acting_user": crew["finance"],
        "from_balance": True,
        **changes,
    }


def test_a_notice_is_booked_and_sent_only_once_someone_other_than_its_author_approves_it(live, clock, client):
    budget = live["budget"]
    held, transfers = dp(budget), Transfer.objects.count()
    recovery = ending.recovery_propose(**proposal(live))
    assert (recovery.status, dp(budget), Transfer.objects.count()) == (RecoveryStatus.PROPOSED, held, transfers)
    assert not Letter.objects.filter(budget=budget).exists()
    client.force_login(live["patient"])
    assert "£20.00" not in client.get(f"/my/budgets/{budget.pk}/").content.decode()  # nothing sent yet
    with pytest.raises(EndingError, match="already waiting for approval"):
        ending.recovery_propose(**proposal(live, amount_pence=100))

    with pytest.raises(EndingError, match=r"You wrote this notice, so someone else must approve it \(rule 4\)"):
        ending.recovery_approve(recovery=recovery, acting_user=live["finance"])
    other_officer = user_with_role(Role.FINANCE_OFFICER, organisation=live["icb"])
    with pytest.raises(EndingError, match=ending.CANNOT_APPROVE):
        ending.recovery_approve(recovery=recovery, acting_user=other_officer)
    ending.recovery_approve(recovery=recovery, acting_user=live["approver"])  # an ICB approver may approve
    recovery.refresh_from_db()
    assert (recovery.status, recovery.approved_by, recovery.issued_on) == ("issued", live["approver"], TODAY)
    assert dp(budget) == held - 2000
    assert Letter.objects.filter(subject_ref=f"recovery:{recovery.pk}").count() == 1
    with pytest.raises(EndingError, match="not waiting for approval"):
        ending.recovery_approve(recovery=recovery, acting_user=live["manager"])
    assert "£20.00" in client.get(f"/my/budgets/{budget.pk}/").content.decode()
    with pytest.raises(IntegrityError), transaction.atomic():  # rule 4 holds in the database too
        Recovery.objects.filter(pk=recovery.pk).update(approved_by=live["finance"])


def test_proposing_a_notice_emails_everyone_who_may_approve_it_but_its_author(
    live, clock, django_capture_on_commit_callbacks
):
    other_icb = user_with_role(Role.FINANCE_MANAGER, organisation=icb("Another ICB"))
    with django_capture_on_commit_callbacks(execute=True):
        recovery = ending.recovery_propose(**proposal(live, acting_user=live["manager"]))
    (email,) = ProcrastinateJob.objects.filter(task_name="accounts.send_email")
    expected = {live["approver"].email, live["approver2"].email, live["manager2"].email}
    assert set(email.args["to"]) == expected  # not its author, nor a finance officer, nor another ICB's manager
    assert live["manager"].email not in email.args["to"] and other_icb.email not in email.args["to"]
    assert email.args["subject"] == "A recovery notice for Joan Robson needs your approval"
    assert "£20.00 back from Joan Robson's personal health budget" in email.args["body"]
    assert f"/budgets/{live['budget'].pk}/recoveries/{recovery.pk}/" in email.args["body"]


def test_a_notice_not_approved_is_kept_with_its_reasons_and_a_late_one_cannot_be_approved(live, clock):
    budget = live["budget"]
    refused = ending.recovery_propose(**proposal(live))
    with pytest.raises(EndingError, match=ending.REASONS_REQUIRED):
        ending.recovery_not_approve(recovery=refused, reasons="  ", acting_user=live["manager"])
    wages = "The balance is needed for wages"
    ending.recovery_not_approve(recovery=refused, reasons=wages, acting_user=live["manager"])
    refused.refresh_from_db()
    assert (refused.status, refused.not_approved_reasons) == ("not_approved", wages)
    with pytest.raises(EndingError, match="not waiting for approval"):
        ending.recovery_approve(recovery=refused, acting_user=live["manager"])

    late = ending.recovery_propose(**proposal(live, deadline=TODAY + datetime.timedelta(days=3)))
    clock.move_to(NOW + datetime.timedelta(days=5))
    with pytest.raises(EndingError, match="The date to pay by has passed"):
        ending.recovery_approve(recovery=late, acting_user=live["manager"])
    assert not Transfer.objects.filter(idempotency_key__startswith=f"recovery:{late.pk}:").exists()
    assert not Letter.objects.filter(budget=budget).exists()
    assert [label for label, _ in audit_rows(Recovery, refused.pk)] == ["insert", "update"]


def test_a_surplus_is_offset_against_the_next_instalment_before_it_is_asked_back(live):
    budget = live["budget"]
    money_in(live, 500_000)  # far more than eight weeks of spending
    surplus = services.dp_surplus(budget)
    assert surplus > 0
    with pytest.raises(EndingError, match=r"Offset the surplus against the next instalment first \(rule 15\)"):
        ending.recovery_propose(**proposal(live))
    # The page says so at the first step, on the question it is about, not after "Send for approval".
    client = TwoFactorClient()
    client.force_login(live["finance"])
    answers = {
        "reasons": "Money has built up beyond what the plan needs",
        "amount": "10.00",
        "deadline": "2027-01-31",
        "addressee": "person",
        "addressee_name": "Joan Robson",
        "from_balance": "yes",
    }
    first_step = html.unescape(client.post(f"/budgets/{budget.pk}/recoveries/new/", answers).content.decode())
    assert "Check the notice before you send it for approval" not in first_step
    assert re.search(r'href="#[^"]*from_balance', first_step)
    assert "surplus alert on the budget's monitoring page" in first_step
    no_one = client.post(f"/budgets/{budget.pk}/recoveries/new/", {**answers, "addressee": "representative"})
    no_one = html.unescape(no_one.content.decode())
    assert ending.NO_REPRESENTATIVE.format(person="Joan Robson") in no_one
    assert re.search(r'href="#[^"]*addressee"', no_one)
    assert not Recovery.objects.exists()
    payment = services.surplus_offset(budget=budget)
    assert payment.offset_pence == min(surplus, payment.amount_pence)
    left = services.dp_surplus(budget) - payment.offset_pence
    recovery = ending.recovery_propose(**proposal(live, amount_pence=left))
    assert recovery.status == RecoveryStatus.PROPOSED
    # Money spent outside the plan is not a surplus: it is asked back at once.
    spent = ending.recovery_propose(**proposal(live, from_balance=False, amount_pence=700))
    assert spent.status == RecoveryStatus.PROPOSED


def test_reconsideration_pauses_the_notice_until_someone_other_than_the_issuer_decides(live):
    budget = live["budget"]
    recovery = notice(live, amount=2000)
    held = dp(budget)
    ending.recovery_reconsider(
        recovery=recovery, evidence="The money was for a course booked in January", acting_user=live["finance"]
    )
    recovery.refresh_from_db()
    assert recovery.status == RecoveryStatus.RECONSIDERING
    with pytest.raises(EndingError, match=ending.PAUSED):
        ending.recovery_repaid(recovery=recovery, amount_pence=100, key="k", acting_user=live["finance"], method="bank")
    with pytest.raises(EndingError, match=ending.PAUSED):
        ending.recovery_write_off(recovery=recovery, amount_pence=100, reasons="x", acting_user=live["manager"])
    with pytest.raises(EndingError, match=ending.ALREADY_RECONSIDERED):
        ending.recovery_reconsider(recovery=recovery, evidence="Again", acting_user=live["finance"])

    decide = {"recovery": recovery, "outcome": "resume", "reasons": "Half the course is in the plan"}
    with pytest.raises(EndingError, match=ending.NOT_THE_ISSUER):
        ending.recovery_decide(**decide, amount_pence=1200, acting_user=live["finance"])
    other_officer = user_with_role(Role.FINANCE_OFFICER, organisation=live["icb"])
    with pytest.raises(EndingError, match=ending.CANNOT_DECIDE):
        ending.recovery_decide(**decide, amount_pence=1200, acting_user=other_officer)
    with pytest.raises(EndingError, match="never raise it"):
        ending.recovery_decide(**decide, amount_pence=2001, acting_user=live["manager"])
    ending.recovery_decide(**decide, amount_pence=1200, acting_user=live["approver2"])  # an ICB approver may decide

    recovery.refresh_from_db()
    assert (recovery.status, recovery.amount_pence) == (RecoveryStatus.ISSUED, 1200)
    assert dp(budget) == held + 800  # the part no longer asked for goes back to the account it came from
    decision = Letter.objects.get(subject_ref=f"recovery:{recovery.pk}:decision")
    assert "Half the course is in the plan" in decision.html and "£12.00" in decision.html
    with pytest.raises(EndingError, match=ending.NOT_RECONSIDERING):
        ending.recovery_decide(**decide, acting_user=live["manager"])
    ending.recovery_repaid(
        recovery=recovery, amount_pence=1200, key="bank:1", acting_user=live["finance"], method="bank"
    )
    recovery.refresh_from_db()
    assert recovery.status == RecoveryStatus.SETTLED
    assert ledger_verify().ok
    rows = audit_rows(Recovery, recovery.pk)  # written, approved, reconsidered, decided, repaid
    assert [label for label, _ in rows] == ["insert", "update", "update", "update", "update"]
    assert rows[1] == ("update", live["manager2"].pk) and rows[3] == ("update", live["approver2"].pk)


def test_a_notice_withdrawn_after_reconsideration_releases_the_whole_claim(live):
    budget = live["budget"]
    held = dp(budget)
    recovery = notice(live, amount=2000)
    ending.recovery_reconsider(recovery=recovery, evidence="It was spent on the plan", acting_user=live["finance"])
    ending.recovery_decide(
        recovery=recovery, outcome="withdraw", reasons="Receipts show it", acting_user=live["manager"]
    )
    recovery.refresh_from_db()
    assert recovery.status == RecoveryStatus.WITHDRAWN and recovery.outstanding_pence == 2000
    assert dp(budget) == held and account(budget, "recovery:owed").posted_balance == 0
    assert "withdrawn" in Letter.objects.get(subject_ref=f"recovery:{recovery.pk}:decision").html
    assert ending.recoveries_for(budget) == []
    assert ledger_verify().ok


def test_after_a_death_the_notice_is_addressed_to_the_personal_representatives(live):
    stop(live, ground=StopGround.DEATH, reasons="Joan died on 18 December 2026")
    with pytest.raises(EndingError, match=ending.AFTER_DEATH):
        notice(live)
    recovery = notice(
        live,
        addressee=Addressee.PERSONAL_REPRESENTATIVES,
        addressee_name="The personal representatives of Joan Robson",
    )
    html = Letter.objects.get(subject_ref=f"recovery:{recovery.pk}").html
    assert "The personal representatives of Joan Robson" in html and "not part of the estate" in html
    assert "Pay by card" not in html  # nobody signs in for them
    assert ledger_verify().ok


# --- Recovery: repaid by card ---------------------------------------------------------------------------------


def succeeded(payment: CardPayment, event_id: str) -> dict:
    return {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": payment.intent_id, "amount": payment.amount_pence, "currency": "gbp"}},
    }


def card_payment(crew, amount: int) -> CardPayment:
    return CardPayment.objects.create(
        budget=crew["budget"],
        purpose=CardPaymentPurpose.RECOVERY,
        amount_pence=amount,
        status=CardPaymentStatus.PROCESSING,
        intent_id=f"pi_{uuid.uuid4().hex[:20]}",
        idempotency_key=uuid.uuid4().hex,
        paid_by=crew["patient"],
    )


def test_a_card_repayment_is_applied_to_the_notice_once_when_stripe_confirms_it(live):
    budget = live["budget"]
    recovery = notice(live, amount=2000)
    payment = card_payment(live, 1500)
    first = card_payments.stripe_event_handle(succeeded(payment, "evt_1"))
    assert first["applied_to_recovery_pence"] == 1500
    assert card_payments.stripe_event_handle(succeeded(payment, "evt_1")) == first  # the same event again
    card_payments.stripe_event_handle(succeeded(payment, "evt_2"))  # another event for the same intent
    recovery.refresh_from_db()
    assert recovery.recovered_pence == 1500
    assert Transfer.objects.filter(idempotency_key__startswith=f"recovery:{recovery.pk}:repaid:").count() == 1
    assert account(budget, "card:recovery").posted_balance == 0  # moved on to what is owed
    assert Account.objects.get(code="icb:stripe-balance").posted_balance == 1500

    # While reconsidered, a card payment is not applied: it waits in the card account for finance to refund.
    ending.recovery_reconsider(recovery=recovery, evidence="I paid too much", acting_user=live["finance"])
    later = card_payment(live, 300)
    assert card_payments.stripe_event_handle(succeeded(later, "evt_3"))["applied_to_recovery_pence"] == 0
    recovery.refresh_from_db()
    assert recovery.recovered_pence == 1500
    assert account(budget, "card:recovery").posted_balance == 300
    assert ledger_verify().ok
    assert audit_rows(Recovery, recovery.pk)[2] == ("update", live["patient"].pk)  # after its approval


def test_refunding_a_card_repayment_makes_it_owed_again_and_reopens_a_settled_notice(live, fake_payments):
    budget = live["budget"]
    older, newer = notice(live, amount=2000, from_balance=False), notice(live, amount=1000, from_balance=False)
    payment = card_payments.card_payment_start(
        budget=budget, purpose="recovery", amount_pence=3000, acting_user=live["patient"], key="repay-all"
    )
    payment = card_payments.card_payment_confirm(
        payment=payment, token_or_payment_method="tok_visa", acting_user=live["patient"]
    )
    [event] = fake_payments.event_of_type("payment_intent.succeeded")
    assert card_payments.stripe_event_handle(event)["applied_to_recovery_pence"] == 3000
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status) == ("settled", "settled")

    def refund(amount):
        card_payments.card_payment_refund(
            payment=CardPayment.objects.get(pk=payment.pk), amount_pence=amount, acting_user=live["finance"]
        )
        older.refresh_from_db()
        newer.refresh_from_db()
        return (older.outstanding_pence, older.status), (newer.outstanding_pence, newer.status)

    # The newest notice is owed again first, then the older one.
    assert refund(600) == ((0, "settled"), (600, "issued"))
    assert refund(900) == ((500, "issued"), (1000, "issued"))
    assert card_payments.card_payments_due(budget) == {"recovery": 1500}
    assert account(budget, "card:recovery").posted_balance == 0  # nothing is left over in the card account
    assert account(budget, "recovery:owed").posted_balance == 1500
    assert refund(1500) == ((2000, "issued"), (1000, "issued"))
    assert ledger_verify().ok
    reopened = [label for label, _ in audit_rows(Recovery, older.pk)]
    assert reopened.count("update") >= 3  # repaid, then owed again twice: each an audit row


# --- Closing (rule 19) ------------------------------------------------------------------------------------------


def test_closing_pays_liabilities_first_and_closes_only_when_recoverable_is_recovered_plus_written_off(
    live, clock, client
):
    budget = live["budget"]
    money_in(live, 100_000)
    held = dp(budget)
    decision = stop(live)
    stopping_letter = ending.letter_for_stop(decision)
    assert ending.letter_for_stop(decision) == stopping_letter  # stored once per subject
    assert "17 January 2027" in stopping_letter.html and "reconsider" in stopping_letter.html
    wages = ending.liability_record(
        budget=budget, kind=LiabilityKind.WAGES, payee="Karen Dobson", amount_pence=30_000, acting_user=live["finance"]
    )
    with pytest.raises(EndingError, match="notice period runs until 17 January 2027"):
        ending.final_audit_begin(budget=budget, acting_user=live["finance"])

    clock.move_to(datetime.datetime(2027, 1, 17, 9, 0))
    ending.final_audit_begin(budget=budget, acting_user=live["finance"])
    hmrc = ending.liability_record(
        budget=budget, kind=LiabilityKind.HMRC, payee="HMRC", amount_pence=5_000, acting_user=live["finance"]
    )
    with pytest.raises(EndingError, match="Pay the outstanding liabilities"):
        notice(live, amount=1000, deadline=datetime.date(2027, 2, 28))
    with pytest.raises(EndingError, match="liabilities are still to be paid"):
        ending.budget_close(budget=budget, acting_user=live["manager"])

    for liability in (wages, hmrc, wages):  # paying twice pays once
        ending.liability_pay(liability=liability, acting_user=live["finance"])
    assert Transfer.objects.filter(code="liability_payment").count() == 2
    audit = ending.final_audit(budget)
    assert (audit.dp_balance, audit.outstanding_liabilities, audit.recoverable) == (held - 35_000, 0, held - 35_000)
    assert not audit.can_close

    closing = notice(live, amount=audit.recoverable, deadline=datetime.date(2027, 2, 28))
    assert ending.is_closing(closing) and dp(budget) == 0
    with pytest.raises(EndingError, match="is not yet recovered plus written off"):
        ending.budget_close(budget=budget, acting_user=live["manager"])
    ending.recovery_repaid(
        recovery=closing, amount_pence=60_000, key="bank:final", acting_user=live["finance"], method="bank"
    )
    ending.recovery_write_off(
        recovery=closing,
        amount_pence=closing.amount_pence - 60_000,
        reasons="Bank charges",
        acting_user=live["manager"],
    )
    audit = ending.final_audit(budget)
    assert audit.recoverable == audit.recovered + audit.written_off == held - 35_000
    # The third-party holder still has this budget's money: closing waits for it to come back.
    [(holder_name, holder_balance, purpose)] = audit.third_party_balances
    assert audit.problems == [
        f"{holder_name}: £{holder_balance / 100:,.2f} is still with the third party: record its return"
    ]
    with pytest.raises(EndingError, match="is still with the third party"):
        ending.budget_close(budget=budget, acting_user=live["manager"])
    for _twice in range(2):  # recorded once
        ending.holder_balance_returned(budget=budget, purpose=purpose, acting_user=live["finance"])
    assert Transfer.objects.get(code="holder_return").amount == holder_balance
    audit = ending.final_audit(budget)
    assert audit.third_party_balances == () and audit.can_close
    with pytest.raises(EndingError, match=ending.NOT_A_MANAGER):
        ending.budget_close(budget=budget, acting_user=live["finance"])
    ending.budget_close(budget=budget, acting_user=live["manager"])

    budget.plan.refresh_from_db()
    assert budget.plan.status == PlanStatus.CLOSED
    assert PlanEvent.objects.filter(plan=budget.plan, transition="close", by=live["manager"]).exists()
    assert ledger_verify().ok
    assert dp(budget) == 0 and account(budget, "recovery:owed").posted_balance == 0
    assert audit_rows(Liability, wages.pk) == [("insert", live["finance"].pk), ("update", live["finance"].pk)]
    # Nothing is deleted: the closed budget, its final audit and its letters are still there to read.
    client.force_login(live["manager"])
    assert client.get(f"/budgets/{budget.pk}/").status_code == 200
    page = client.get(f"/budgets/{budget.pk}/final-audit/").content.decode()
    assert "The budget is closed" in page
    assert client.get(f"/budgets/{budget.pk}/letters/{stopping_letter.pk}/").status_code == 200


def test_liabilities_beyond_the_balance_are_paid_by_the_icb_and_there_is_nothing_to_recover(live, clock):
    budget = live["budget"]
    held = dp(budget)
    stop(live, ground=StopGround.DEATH, reasons="Joan died")
    ending.final_audit_begin(budget=budget, acting_user=live["finance"])  # at once after a death
    notice_pay = ending.liability_record(
        budget=budget,
        kind=LiabilityKind.NOTICE,
        payee="Karen Dobson",
        amount_pence=held + 10_000,
        acting_user=live["finance"],
    )
    assert ending.final_audit(budget).shortfall == 10_000
    ending.liability_pay(liability=notice_pay, acting_user=live["finance"])
    assert Transfer.objects.get(idempotency_key=f"liability:{notice_pay.pk}:paid").amount == held
    assert Transfer.objects.get(idempotency_key=f"liability:{notice_pay.pk}:paid-by-icb").amount == 10_000
    for _name, _balance, purpose in ending.final_audit(budget).third_party_balances:
        ending.holder_balance_returned(budget=budget, purpose=purpose, acting_user=live["finance"])
    audit = ending.final_audit(budget)
    assert (audit.dp_balance, audit.recoverable, audit.can_close) == (0, 0, True)
    ending.budget_close(budget=budget, acting_user=live["manager"])
    assert ledger_verify().ok


# --- Letters ----------------------------------------------------------------------------------------------------


def test_letters_are_html_and_an_accessible_pdf_made_once(live, client):
    budget = live["budget"]
    recovery = notice(live, reasons="Money built up beyond eight weeks of spending")
    letter = Letter.objects.get(subject_ref=f"recovery:{recovery.pk}")
    client.force_login(live["patient"])
    page = client.get(f"/budgets/{budget.pk}/letters/{letter.pk}/").content.decode()
    for text in (
        "Money built up beyond eight weeks of spending",
        "£20.00",
        "31 January 2027",
        "Who to contact",
        "reconsider",
    ):
        assert text in page
    response = client.get(f"/budgets/{budget.pk}/letters/{letter.pk}/letter.pdf")
    assert response["Content-Type"] == "application/pdf"
    reader = pdf_of(response.content)
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "Money built up beyond eight weeks of spending" in text and "£20.00" in text
    root = reader.trailer["/Root"]
    assert root["/Lang"] == "en-GB" and "/StructTreeRoot" in root
    assert "Notice asking for money back" in reader.metadata.title
    letter.refresh_from_db()
    assert letter.pdf
    assert client.get(f"/budgets/{budget.pk}/letters/{letter.pk}/letter.pdf").content == response.content
    # Letters have lists: their markers come out as plain WeasyPrint draws them.
    assert "<li>" in letter.html and response.content == weasyprint_alone(letters.document_html(letter))

    suspension = Suspension.objects.create(
        budget=budget,
        reason=SuspensionReason.HOSPITAL,
        reasons="In hospital for at least eight weeks",
        started_on=TODAY,
        started_by=live["finance"],
    )
    suspended = ending.letter_for_suspension(suspension)
    assert "In hospital for at least eight weeks" in suspended.html and "20 December 2026" in suspended.html
    text = " ".join(p.extract_text() for p in pdf_of(letters.letter_pdf(suspended)).pages)
    assert "In hospital for at least eight weeks" in text


def test_letters_and_notices_are_not_found_by_anyone_who_may_not_see_the_budget(live, client):
    budget = live["budget"]
    recovery = notice(live)
    letter = Letter.objects.get(subject_ref=f"recovery:{recovery.pk}")
    urls = [f"/budgets/{budget.pk}/letters/{letter.pk}/", f"/budgets/{budget.pk}/letters/{letter.pk}/letter.pdf"]
    someone_else = user_with_role(Role.PATIENT)
    holder_staff = user_with_role(Role.THIRD_PARTY_STAFF)
    other_coordinator = user_with_role(Role.CARE_COORDINATOR, organisation=live["icb"])
    for user in (someone_else, holder_staff, other_coordinator):
        client.force_login(user)
        assert [client.get(url).status_code for url in urls] == [404, 404], user
    for user in (live["patient"], live["coordinator"], live["finance"], user_with_role(Role.AUDITOR)):
        client.force_login(user)
        assert client.get(urls[0]).status_code == 200, user
    client.force_login(live["patient"])  # the person reads their letters, but not the staff pages
    staff_pages = ["recoveries/new/", f"recoveries/{recovery.pk}/", "final-audit/", "reduction/"]
    assert {client.get(f"/budgets/{budget.pk}/{page}").status_code for page in staff_pages} == {404}
    assert client.get(f"/budgets/{budget.pk}/letters/{letter.pk + 999}/").status_code == 404


def test_the_persons_page_shows_money_to_pay_back_with_a_card_link(live, client):
    budget = live["budget"]
    recovery = notice(live, amount=2000)
    client.force_login(live["patient"])
    page = client.get(f"/my/budgets/{budget.pk}/").content.decode()
    assert "Money to pay back" in page and "£20.00 to pay back by 31 January 2027" in page
    assert f"/my/budgets/{budget.pk}/pay-by-card/?purpose=recovery&amp;amount=20.00" in page
    assert "Notice asking for money back" in page  # the letter is listed
    ending.recovery_reconsider(recovery=recovery, evidence="Please look again", acting_user=live["finance"])
    page = client.get(f"/my/budgets/{budget.pk}/").content.decode()
    assert "you do not need to pay while we do" in page and "pay-by-card/?purpose=recovery" not in page


def test_a_card_payment_for_a_recovery_is_taken_only_while_a_notice_to_the_person_asks_for_money(
    live, client, fake_payments
):
    budget = live["budget"]
    start = functools.partial(
        card_payments.card_payment_start, budget=budget, purpose="recovery", acting_user=live["patient"]
    )
    with pytest.raises(card_payments.CardPaymentError, match="no money asked back"):
        start(amount_pence=100, key="none-asked")
    first = notice(live, amount=2000, from_balance=False)
    notice(live, amount=500, from_balance=False)
    assert card_payments.card_payments_due(budget) == {"recovery": 2500}
    with pytest.raises(card_payments.CardPaymentError) as refused:
        start(amount_pence=2501, key="too-much")
    assert str(refused.value) == "You have £25.00 to pay back: you can pay at most that"
    assert start(amount_pence=2500, key="all").amount_pence == 2500

    client.force_login(live["patient"])
    page = client.get(f"/my/budgets/{budget.pk}/pay-by-card/").content.decode()
    assert "Money asked back in a recovery notice: £25.00 to pay back" in page
    assert re.search(r'value="recovery"\s+checked', page)  # the only thing owed is already chosen
    assert "assessed contribution:" not in page  # journey 1's plan has none

    ending.recovery_reconsider(recovery=first, evidence="Please look again", acting_user=live["finance"])
    assert card_payments.card_payments_due(budget) == {"recovery": 500}  # not while it is reconsidered


# --- Pages ------------------------------------------------------------------------------------------------------


def test_asking_for_money_back_goes_through_check_your_answers(live, client):
    budget = live["budget"]
    client.force_login(live["finance"])
    url = f"/budgets/{budget.pk}/recoveries/new/"
    assert "Ask for money back" in client.get(url).content.decode()
    empty = client.post(url, {}).content.decode()
    for message in (ending.REASONS_REQUIRED, "Enter the amount", "Enter the date to pay by", ending.ADDRESSEE_REQUIRED):
        assert message in empty
    answers = {
        "reasons": "Surplus above eight weeks",
        "amount": "15.00",
        "deadline": "2027-01-31",
        "addressee": "person",
        "addressee_name": "Joan Robson",
        "from_balance": "yes",
    }
    check = client.post(url, answers).content.decode()
    assert "Check the notice before you send it for approval" in check and "£15.00" in check
    assert not Recovery.objects.exists()
    too_much = client.post(url, {**answers, "amount": "900.00", "confirm": "yes"}).content.decode()
    assert "There is a problem" in too_much and "holds £" in too_much
    done = client.post(url, {**answers, "confirm": "yes"})
    recovery = Recovery.objects.get()
    assert done["Location"] == f"/budgets/{budget.pk}/recoveries/{recovery.pk}/"
    assert recovery.status == RecoveryStatus.PROPOSED and not Letter.objects.filter(budget=budget).exists()

    page = f"/budgets/{budget.pk}/recoveries/{recovery.pk}/"
    waiting = client.get(page).content.decode()
    assert "Waiting for approval" in waiting and 'value="approve"' not in waiting  # the author cannot approve
    assert client.post(page, {"action": "approve"}).status_code == 404
    client.force_login(live["manager"])
    assert f"{live['person'].full_name}: £15.00" in client.get("/dashboard/finance_manager/").content.decode()
    assert client.post(page, {"action": "approve"}).status_code == 302
    recovery.refresh_from_db()
    assert (recovery.status, recovery.approved_by, recovery.issued_on) == ("issued", live["manager"], TODAY)
    assert Letter.objects.filter(budget=budget, subject_ref=f"recovery:{recovery.pk}").exists()
    client.force_login(live["finance"])
    client.post(page, {"action": "repay", "repay-amount": "5.00", "repay-received_on": "2026-12-19", "repay-key": "k1"})
    client.post(page, {"action": "repay", "repay-amount": "5.00", "repay-received_on": "2026-12-19", "repay-key": "k1"})
    recovery.refresh_from_db()
    assert recovery.recovered_pence == 500
    assert client.post(page, {"action": "write_off", "write_off-amount": "1.00"}).status_code == 404  # not a manager
    client.force_login(live["manager"])
    refused = client.post(
        page, {"action": "write_off", "write_off-amount": "11.00", "write_off-reasons": "x", "write_off-key": "w"}
    )
    assert "more than is still owed" in refused.content.decode()
    client.post(
        page, {"action": "write_off", "write_off-amount": "10.00", "write_off-reasons": "Small", "write_off-key": "w"}
    )
    recovery.refresh_from_db()
    assert recovery.status == RecoveryStatus.SETTLED
    assert ledger_verify().ok


def test_the_final_audit_page_records_and_pays_liabilities_and_closes(live, clock, client):
    budget = live["budget"]
    stop(live, ground=StopGround.DEATH, reasons="Joan died")
    client.force_login(live["finance"])
    url = f"/budgets/{budget.pk}/final-audit/"
    assert client.post(url, {"action": "begin"}).status_code == 302
    refused = client.post(url, {"action": "liability", "liability-kind": "wages", "liability-amount": "abc"})
    assert "There is a problem" in refused.content.decode()
    client.post(
        url, {"action": "liability", "liability-kind": "hmrc", "liability-payee": "HMRC", "liability-amount": "5.00"}
    )
    liability = Liability.objects.get()
    assert "Pay £5.00" in client.get(url).content.decode()
    client.post(url, {"action": "pay", "liability": liability.pk})
    liability.refresh_from_db()
    assert liability.paid_on == TODAY
    left = ending.final_audit(budget).unclaimed
    assert f"Ask for the balance of £{left / 100:,.2f} back" in client.get(url).content.decode()
    assert client.post(url, {"action": "close"}).status_code == 404  # a finance officer cannot close
    [(_name, held_by_holder, purpose)] = ending.final_audit(budget).third_party_balances
    assert f"Record £{held_by_holder / 100:,.2f} returned" in client.get(url).content.decode()
    assert client.post(url, {"action": "holder_returned", "purpose": purpose}).status_code == 302
    assert client.post(url, {"action": "holder_returned", "purpose": "held:icb"}).status_code == 200  # not a holder
    assert ending.final_audit(budget).third_party_balances == ()
    client.force_login(live["manager"])
    assert "The budget cannot close yet" in client.post(url, {"action": "close"}).content.decode()


# --- Reconsidering a decision to stop (rule 5) ----------------------------------------------------------------


def ask_to_reconsider(crew, decision: StopDecision) -> StopDecision:
    return monitoring.stop_reconsider(
        decision=decision,
        asked_by="Joan Robson",
        reasons="I am still eligible: my assessment was last week.",
        acting_user=crew["coordinator"],
    )


def test_a_stop_being_reconsidered_pauses_the_final_audit_until_an_approver_decides_it_stands(live, clock):
    budget = live["budget"]
    decision = monitoring.stop_decide(
        budget=budget, ground=StopGround.NOT_ELIGIBLE, reasons="No longer eligible", acting_user=live["coordinator"]
    )
    ask_to_reconsider(live, decision)
    clock.move_to(NOW + datetime.timedelta(days=40))  # the notice period has run
    with pytest.raises(EndingError, match="Joan Robson asked for the decision to stop to be reconsidered"):
        ending.final_audit_begin(budget=budget, acting_user=live["finance"])
    with pytest.raises(BudgetError, match="already been reconsidered"):
        ask_to_reconsider(live, decision)
    with pytest.raises(BudgetError, match="Only an ICB approver"):  # finance may not decide it
        monitoring.stop_reconsider_decide(
            decision=decision, outcome="upheld", reasons="Checked", acting_user=live["finance"]
        )
    with pytest.raises(BudgetError, match="Give the reasons"):
        monitoring.stop_reconsider_decide(
            decision=decision, outcome="upheld", reasons=" ", acting_user=live["approver"]
        )

    monitoring.stop_reconsider_decide(
        decision=decision,
        outcome="upheld",
        reasons="The assessment found no eligibility.",
        acting_user=live["approver"],
    )
    decision.refresh_from_db()
    assert (decision.reconsideration_outcome, decision.reconsideration_decided_by) == ("upheld", live["approver"])
    letter = Letter.objects.get(subject_ref=f"stop:{decision.pk}:decision")
    assert "Our decision to stop your personal health budget stands" in letter.html
    assert "The assessment found no eligibility." in letter.html
    ending.final_audit_begin(budget=budget, acting_user=live["finance"])
    budget.plan.refresh_from_db()
    assert budget.plan.status == PlanStatus.FINAL_AUDIT
    assert [label for label, _ in audit_rows(StopDecision, decision.pk)] == ["insert", "update", "update"]


def test_an_overturned_stop_reinstates_the_budget_and_the_next_run_pays_what_fell_due_meanwhile(live, clock):
    budget = live["budget"]
    decision = monitoring.stop_decide(
        budget=budget, ground=StopGround.MISUSE, reasons="Spent on a holiday", acting_user=live["coordinator"]
    )
    clock.move_to(datetime.datetime(2027, 1, 2, 10, 0))  # an instalment fell due while it was stopping
    due = ScheduledPayment.objects.filter(budget=budget, status="due", due_on__lte=datetime.date(2027, 1, 2))
    assert due.exists()
    assert not payment_runs.anything_due(datetime.date(2027, 1, 2))  # a stopping budget is not paid
    ask_to_reconsider(live, decision)
    with pytest.raises(BudgetError, match="Only an ICB approver"):  # not even an approver who decided to stop
        monitoring.stop_reconsider_decide(
            decision=decision, outcome="overturned", reasons="x", acting_user=live["coordinator"]
        )
    monitoring.stop_reconsider_decide(
        decision=decision,
        outcome="overturned",
        reasons="The receipts show respite care, which is in the plan.",
        acting_user=live["approver"],
    )
    budget.plan.refresh_from_db()
    assert budget.plan.status == PlanStatus.ACTIVE
    event = PlanEvent.objects.filter(plan=budget.plan).latest("id")
    assert (event.transition, event.from_status, event.by) == ("reinstate", "stopping", live["approver"])
    assert (
        "Your personal health budget is not stopping"
        in Letter.objects.get(subject_ref=f"stop:{decision.pk}:decision").html
    )
    assert payment_runs.anything_due(datetime.date(2027, 1, 2))  # the arrears go in the next run
    with pytest.raises(EndingError):
        ending.final_audit_begin(budget=budget, acting_user=live["finance"])


def test_a_stop_of_a_suspended_budget_overturned_leaves_it_suspended(live):
    budget = live["budget"]
    monitoring.suspension_start(
        budget=budget, reason=SuspensionReason.HOSPITAL, reasons="In hospital", acting_user=live["coordinator"]
    )
    decision = monitoring.stop_decide(
        budget=budget, ground=StopGround.NEEDS_NOT_MET, reasons="Needs not met", acting_user=live["coordinator"]
    )
    ask_to_reconsider(live, decision)
    monitoring.stop_reconsider_decide(
        decision=decision, outcome="overturned", reasons="Needs are met now", acting_user=live["approver"]
    )
    budget.plan.refresh_from_db()
    assert budget.plan.status == PlanStatus.SUSPENDED
    assert "it is still suspended" in Letter.objects.get(subject_ref=f"stop:{decision.pk}:decision").html


def test_withdrawn_consent_and_a_death_are_not_reconsidered_and_a_plan_reconsideration_also_pauses(live, clock):
    budget = live["budget"]
    decision = monitoring.consent_withdraw(budget=budget, acting_user=live["coordinator"])
    with pytest.raises(BudgetError, match="not a withdrawal of consent"):
        ask_to_reconsider(live, decision)
    plans.reconsideration_request(
        plan=budget.plan, acting_user=live["coordinator"], requested_by_name="Joan Robson", reasons="Look again"
    )
    clock.move_to(NOW + datetime.timedelta(days=40))
    with pytest.raises(EndingError, match="A decision about this plan is being reconsidered"):
        ending.final_audit_begin(budget=budget, acting_user=live["finance"])


def test_the_final_audit_page_records_a_request_to_reconsider_and_the_approver_decides_it(live, client):
    budget = live["budget"]
    decision = monitoring.stop_decide(
        budget=budget, ground=StopGround.NOT_ELIGIBLE, reasons="No longer eligible", acting_user=live["finance"]
    )
    url = f"/budgets/{budget.pk}/final-audit/"
    client.force_login(live["coordinator"])
    empty = client.post(url, {"action": "stop_reconsider", "stop_reconsider-asked_by": "Joan Robson"})
    assert "There is a problem" in empty.content.decode()
    assert "Give their reasons, and any evidence they sent" in empty.content.decode()
    decision.refresh_from_db()
    assert decision.reconsideration_asked_on is None
    asked = client.post(
        url,
        {"action": "stop_reconsider", "stop_reconsider-asked_by": "Joan Robson", "stop_reconsider-reasons": "Wrong"},
    )
    assert asked.status_code == 302
    page = client.get(url).content.decode()
    assert "Waiting for a reconsideration" in page
    assert "Start the final audit" not in page
    assert 'value="stop_decide"' not in page  # the coordinator cannot decide
    assert client.post(url, {"action": "stop_decide", "stop_decide-outcome": "overturned"}).status_code == 404

    other_icb_approver = user_with_role(Role.ICB_APPROVER, organisation=icb("Another ICB"))
    client.force_login(other_icb_approver)
    assert client.get(url).status_code == 404
    client.force_login(live["approver"])
    assert 'value="stop_decide"' in client.get(url).content.decode()
    missing = client.post(url, {"action": "stop_decide", "stop_decide-outcome": "overturned"})
    assert "Give the reasons" in missing.content.decode()
    decided = client.post(
        url, {"action": "stop_decide", "stop_decide-outcome": "overturned", "stop_decide-reasons": "Eligible after all"}
    )
    assert decided.status_code == 302
    budget.plan.refresh_from_db()
    assert budget.plan.status == PlanStatus.ACTIVE
    client.force_login(live["coordinator"])
    monitoring_page = client.get(f"/budgets/{budget.pk}/monitoring/").content.decode()
    assert "the decision to stop is overturned" in monitoring_page
    assert "Stop the budget" in monitoring_page  # it can be stopped again


# --- Random input never fails -----------------------------------------------------------------------------------

FUZZ = settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
junk = st.text(max_size=30) | st.sampled_from(
    ["", "-1", "0", "0.001", "12.345", "£5", "1e9", "9" * 20, "2026-02-30", "2027-01-31", "yes", "no", "person",
     "resume", "withdraw", "wages", "repay", "write_off", "reconsider", "decide", "pay", "close", "begin", "liability",
     "holder_returned", "held:third-party:1"]
)  # fmt: skip


def test_ending_forms_never_fail_with_random_input(live, client):
    budget = live["budget"]
    recovery = notice(live)
    reconsidering = notice(live, amount=100)
    ending.recovery_reconsider(recovery=reconsidering, evidence="Look again", acting_user=live["finance"])
    base = f"/budgets/{budget.pk}/"
    recovery_fields = ["repay-amount", "repay-received_on", "repay-key", "write_off-amount", "write_off-reasons"]
    forms = {
        base + "recoveries/new/": ["reasons", "amount", "deadline", "addressee", "addressee_name", "from_balance"],
        base + f"recoveries/{recovery.pk}/": ["action", *recovery_fields, "write_off-key", "reconsider-evidence"],
        base + f"recoveries/{reconsidering.pk}/": ["action", "decide-outcome", "decide-amount", "decide-reasons"],
        base + "final-audit/": [
            "action",
            "liability",
            "liability-kind",
            "liability-payee",
            "liability-amount",
            "purpose",
        ],
        base + "reduction/": ["new_plan", "reasons", "effective_on", "confirm"],
    }
    forms[base + "recoveries/new/"].append("confirm")
    forms[base + f"recoveries/{reconsidering.pk}/"].append("decide-deadline")

    @FUZZ
    @given(data=st.data())
    def post_junk(data):
        client.force_login(data.draw(st.sampled_from([live["finance"], live["manager"], live["coordinator"]])))
        for url, names in forms.items():
            body = {name: data.draw(junk) for name in names if data.draw(st.booleans())}
            response = client.post(url, body)
            assert response.status_code in (200, 302, 404), (url, body, response.status_code)

    post_junk()
    assert ledger_verify().ok
