"""Payment runs with invoices and Stripe Connect: approved invoices join the next run; payees with a connected
account are paid by a transfer through the payments gateway (the in-memory fake here, since the local Stripe
server has no Connect) carrying our persisted idempotency key, and left out of the BACS file; the preview
totals add up by type, by funder and by method."""

import datetime

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from accounts.roles import Role
from budgets import invoices, payment_runs, payments, selectors
from budgets.models import HolderBankAccount, InvoiceStatus, PayoutMethod, RunStatus
from ledger.models import Transfer
from ledger.verification import ledger_verify
from tests.budgets.test_payment_runs import START, set_up
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_gateway(fake_payments):
    return fake_payments


@pytest.fixture
def crew(agreed):
    agreed["budget"] = set_up(agreed)
    agreed["manager"] = user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    return agreed


def approved_invoice(crew, amount=45_000, number="NN-1"):
    line = crew["budget"].lines.get(management_type="notional")
    with time_machine.travel(datetime.datetime.combine(START, datetime.time(12)), tick=False):  # issued that day
        invoice = invoices.invoice_record(
            line=line,
            provider=line.plan_line.provider,
            invoice_number=number,
            invoice_date=START,
            amount_pence=amount,
            acting_user=crew["finance"],
        )
    return invoices.invoice_approve(invoice=invoice, acting_user=crew["manager"])


def connect_the_holder(crew, account="acct_1TynesideIUT"):
    holder = crew["budget"].lines.get(management_type="third_party").plan_line.third_party_holder
    HolderBankAccount.objects.filter(organisation=holder).update(stripe_account_id=account)


def test_an_approved_invoice_is_paid_by_the_next_run_and_only_once(crew, fake_gateway):
    invoice = approved_invoice(crew)
    run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    assert left_out == []
    assert sorted(item.paying_for for item in run.items.all()) == [
        "Direct payment instalment",
        "Invoice NN-1",
        "Transfer to the third-party holder",
    ]
    payment_runs.payment_run_approve(run=run, acting_user=crew["manager"])
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    line = invoice.budget_line
    line.spend_account.refresh_from_db()
    assert line.spend_account.posted_balance == 45_000
    assert Transfer.objects.filter(idempotency_key__startswith=f"{invoice.ledger_key}:").count() == 1
    assert b"NORTH NURSING" in payment_runs.payment_run_bacs_file(run)
    again, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    assert again.items.count() == 0
    assert fake_gateway.transfers == []  # everyone here is paid by BACS


def test_an_invoice_from_a_provider_without_bank_details_is_left_out(crew):
    invoice = approved_invoice(crew)
    provider = invoice.provider
    provider.sort_code = provider.account_number = ""
    provider.save()
    run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    assert left_out == [invoice] and run.items.count() == 2


def test_a_connected_holder_is_paid_by_one_stripe_transfer_not_by_bacs(crew, fake_gateway):
    connect_the_holder(crew)
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    connect_item = run.items.get(method=PayoutMethod.CONNECT)
    assert connect_item.connect_account == "acct_1TynesideIUT" and connect_item.sort_code == ""
    payment_runs.payment_run_approve(run=run, acting_user=crew["manager"])
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    bacs_file = payment_runs.payment_run_bacs_file(run)
    assert b"TYNESIDE" not in bacs_file and b"JOAN ROBSON PHB" in bacs_file
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])  # paying again sends nothing again
    assert len(fake_gateway.transfers) == 1
    transfer = fake_gateway.transfers[0]
    assert transfer.destination == "acct_1TynesideIUT"
    assert transfer.amount_pence == connect_item.amount_pence
    connect_item.refresh_from_db()
    assert connect_item.gateway_transfer_id == transfer.id and connect_item.paid_at is not None
    assert Transfer.objects.filter(idempotency_key=connect_item.scheduled_payment.transfer_key).count() == 1
    totals = selectors.run_totals(run)
    assert totals.by_method == {
        "BACS": totals.total - connect_item.amount_pence,
        "Stripe transfer": connect_item.amount_pence,
    }


def test_a_refused_transfer_is_kept_with_its_reason_and_retried(crew, fake_gateway, monkeypatch):
    connect_the_holder(crew)
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    payment_runs.payment_run_approve(run=run, acting_user=crew["manager"])
    real_transfer = fake_gateway.transfer

    def refuse(**kwargs):
        raise payments.GatewayError("The connected account cannot receive transfers yet")

    monkeypatch.setattr(fake_gateway, "transfer", refuse)
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    run.refresh_from_db()
    item = run.items.get(method=PayoutMethod.CONNECT)
    assert run.status == RunStatus.APPROVED  # not paid until every item is
    assert item.failure == "The connected account cannot receive transfers yet" and item.paid_at is None
    assert not Transfer.objects.filter(idempotency_key=item.scheduled_payment.transfer_key).exists()
    assert run.items.filter(method=PayoutMethod.BACS, paid_at__isnull=False).count() == 1  # the rest went

    monkeypatch.setattr(fake_gateway, "transfer", real_transfer)
    payment_runs.payment_run_post(run=run, acting_user=crew["finance"])
    run.refresh_from_db()
    item.refresh_from_db()
    assert run.status == RunStatus.POSTED and item.failure == "" and item.paid_at is not None
    assert len(fake_gateway.transfers) == 1
    assert ledger_verify().ok


def test_the_preview_shares_each_payment_by_the_plans_funding_split(crew):
    plan = crew["plan"]
    weights = [int(getattr(plan, field).amount * 100) for field, _ in selectors.FUNDERS]
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    totals = selectors.run_totals(run)
    assert sum(totals.by_funder.values()) == sum(totals.by_type.values()) == totals.total == run.total_pence
    expected = [0] * len(weights)
    for item in run.items.all():
        for index, share in enumerate(selectors.apportion(item.amount_pence, weights)):
            expected[index] += share
    assert totals.by_funder == {
        label: amount for (_, label), amount in zip(selectors.FUNDERS, expected, strict=True) if amount
    }
    assert set(totals.by_type) == {"Direct-payment instalments", "Transfers to third-party holders"}


@given(
    amount=st.integers(min_value=0, max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=4),
)
def test_apportioning_adds_up_to_the_penny_and_stays_fair(amount, weights):
    parts = selectors.apportion(amount, weights)
    assert sum(parts) == amount and len(parts) == len(weights)
    if sum(weights):
        for part, weight in zip(parts, weights, strict=True):
            assert abs(part - amount * weight / sum(weights)) < 1


def test_the_run_page_shows_totals_by_funder_and_the_connect_payee(client, crew, fake_gateway):
    connect_the_holder(crew)
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=crew["finance"])
    client.force_login(crew["manager"])
    page = client.get(f"/finance/payment-runs/{run.pk}/").content.decode()
    assert "By funder" in page and "ICB" in page
    assert "Stripe transfer to acct_1TynesideIUT" in page
