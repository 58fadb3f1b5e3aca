"""One small seeded world for the no-500s fuzz tests (tests/test_form_fuzz.py, tests/test_api_schemathesis.py):
plans in each state a form needs, journey 1's budget in use with something behind every budget page, the ledger's
reconciliation set-up, and a user for every role. Built once per test module inside a transaction that is rolled
back afterwards (`seeded_world`), so the fuzz tests pay for it once and leave nothing behind."""

from __future__ import annotations

import contextlib
import datetime
import tempfile
import uuid

import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts.roles import Role
from brokerage import services as plans
from brokerage.models import ManagementType
from budgets import card_payments, dp_invoices, ending, monitoring, payment_runs, services, spending
from budgets import invoices as invoice_services
from budgets.models import Addressee, CardPaymentPurpose, ScheduledPayment
from ledger.models import Account, AccountKind, CashAccount, Phase, StatementSource, Transfer
from ledger.statements_import import statement_import
from providers.models import Provider
from tests.brokerage.helpers import agreed_crew, complete_plan, make_person
from tests.budgets.test_payment_runs import add_bank_details
from tests.factories import issued_recovery, user_with_role
from tests.ledger.helpers import open_account
from tests.ledger.recon_helpers import golden, mapping_for

START = datetime.date(2026, 12, 1)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _plan_in(crew, status: str):
    """Another person's complete plan, taken as far as `status` (draft, submitted, approved, agreed)."""
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]], given_name=status.title())
    plan = complete_plan(person=person, broker=crew["broker"], coordinator=crew["coordinator"])
    if status in ("submitted", "approved", "agreed"):
        plans.plan_submit(plan=plan, acting_user=crew["broker"])
    if status in ("approved", "agreed"):
        plans.plan_approve(plan=plan, acting_user=crew["approver"])
    if status == "agreed":
        plans.plan_record_agreement(
            plan=plan,
            acting_user=crew["broker"],
            agreed_by_name=person.given_name,
            agreed_on=timezone.localdate(),
            icb_signatory=crew["approver"],
        )
    plan.refresh_from_db()
    return plan


def build_world() -> dict:
    """Everything the form pages and API operations need to exist; ids for every URL."""
    world = agreed_crew(contribution_pounds=600)
    finance, icb = world["finance"], world["icb"]
    world.update(
        manager=user_with_role(Role.FINANCE_MANAGER, organisation=icb),
        auditor=user_with_role(Role.AUDITOR, organisation=icb),
        patient=user_with_role(Role.PATIENT),
        draft=_plan_in(world, "draft"),
        submitted=_plan_in(world, "submitted"),
        approved=_plan_in(world, "approved"),
        to_set_up=_plan_in(world, "agreed"),
    )
    world["person"].user = world["patient"]
    world["person"].save(update_fields=["user"])

    # Journey 1's budget, in use: bank details, first payments made, reviews and returns scheduled.
    budget = services.budget_set_up(plan=world["plan"], acting_user=finance, start_date=START)
    add_bank_details(budget)
    for payment in ScheduledPayment.objects.filter(budget=budget, due_on=START):
        services.scheduled_payment_pay(payment=payment, acting_user=finance)
    budget.refresh_from_db()
    world["budget"] = budget
    monitoring.reviews_schedule(budget)
    monitoring.returns_schedule(budget, today=START + datetime.timedelta(days=200))  # returns are due
    world["review"] = budget.reviews.first()
    dp_line = budget.lines.get(management_type=ManagementType.DIRECT_PAYMENT)
    third_party = budget.lines.get(management_type=ManagementType.THIRD_PARTY)
    notional = budget.lines.get(management_type=ManagementType.NOTIONAL)
    world["holder"] = third_party.plan_line.third_party_holder
    world["holder_staff"] = user_with_role(Role.THIRD_PARTY_STAFF, organisation=world["holder"])

    # Something behind each page: a receipt, a direct-payment invoice, a card payment, a recovery and its letter.
    with time_machine.travel(datetime.datetime.combine(START, datetime.time(12)), tick=False):  # paid that day
        world["spend"] = spending.dp_spend_record(
            budget=budget,
            line=dp_line,
            payee="Harmony Singers",
            spent_on=START,
            amount_pence=600,
            key=f"fuzz:{uuid.uuid4().hex}",
            acting_user=world["patient"],
            receipt=SimpleUploadedFile("receipt.pdf", PDF, content_type="application/pdf"),
        )
    singers = dp_line.plan_line.provider
    Provider.objects.filter(pk=singers.pk).update(account_name="HARMONY", sort_code="309950", account_number="11223344")
    world["dp_invoice"] = dp_invoices.dp_invoice_pay(
        budget=budget,
        line=dp_line,
        provider=Provider.objects.get(pk=singers.pk),
        invoice_number="HS-1",
        amount_pence=1200,
        key=f"fuzz:{uuid.uuid4().hex}",
        acting_user=world["patient"],
    )
    world["card_payment"] = card_payments.card_payment_start(
        budget=budget,
        purpose=CardPaymentPurpose.CONTRIBUTION,
        amount_pence=2500,
        acting_user=world["patient"],
        key=f"fuzz:{uuid.uuid4().hex}",
    )
    world["recovery"] = issued_recovery(
        budget=budget,
        reasons="Money has built up beyond what the plan needs.",
        amount_pence=500,
        deadline=START + datetime.timedelta(days=60),
        addressee=Addressee.PERSON,
        addressee_name="Joan Robson",
        acting_user=finance,
        from_balance=True,
    )
    world["letter"] = ending.letters_for(budget)[0]

    # Finance: a provider invoice, a draft payment run, the ledger's bank and Stripe accounts, a statement line.
    with time_machine.travel(datetime.datetime.combine(START, datetime.time(12)), tick=False):  # issued that day
        world["invoice"] = invoice_services.invoice_record(
            line=notional,
            provider=notional.plan_line.provider,
            invoice_number="NN-1",
            invoice_date=START,
            amount_pence=5800,
            acting_user=finance,
        )
    world["run"], _ = payment_runs.payment_run_create(run_date=START, acting_user=finance)
    world["layout"] = mapping_for("lloyds.csv")
    world["cash"] = CashAccount.objects.create(
        account=open_account("fuzz:bank", AccountKind.ASSET),
        name="Fuzz bank",
        csv_mapping=world["layout"],
        reconcile_from=datetime.date(2026, 10, 1),
    )
    world["stripe_cash"] = CashAccount.objects.create(
        account=open_account("fuzz:stripe", AccountKind.ASSET),
        name="Fuzz Stripe",
        source=StatementSource.STRIPE,
        reconcile_from=datetime.date(2026, 10, 1),
    )
    imported = statement_import(
        cash_account=world["cash"], filename="oct.ofx", data=golden("ofx_v1.ofx"), acting_user=finance
    )
    world["statement_line"] = imported.lines.first()
    world["ledger_account"] = Account.objects.get(code=f"{budget.owner_ref}:held:direct-payment")
    world["transfer"] = Transfer.objects.filter(phase=Phase.POSTED).order_by("id").first()
    world["pending_transfer"] = Transfer.objects.filter(phase=Phase.PENDING).order_by("id").first()
    return world


@contextlib.contextmanager
def seeded_world(django_db_blocker):
    """The world, inside a transaction rolled back on exit (tests inside run in savepoints, as usual). Card
    payments talk to the in-memory fake gateway; uploads go to a temporary folder."""
    from budgets import payments
    from providers.reference import ensure_service_categories

    with (
        tempfile.TemporaryDirectory() as media,
        override_settings(PAYMENTS_GATEWAY="fake", MEDIA_ROOT=media),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        payments.fake_gateway().reset()
        ensure_service_categories()  # a transactional test earlier in this worker may have flushed them
        try:
            yield build_world()
        finally:
            transaction.set_rollback(True)
            payments.fake_gateway().reset()
