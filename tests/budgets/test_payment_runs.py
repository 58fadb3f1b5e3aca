"""Payment runs: gathered, approved by someone else, paid exactly once (also after kill -9), and the BACS
Standard 18 file checked against a golden file."""

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from accounts.roles import Role
from budgets import bacs, payment_runs, services
from budgets.models import (
    DirectPaymentAccount,
    HolderBankAccount,
    PaymentRun,
    PaymentStatus,
    RunStatus,
    ScheduledPayment,
)
from ledger.models import Transfer
from ledger.verification import ledger_verify
from providers.models import Provider
from tests.factories import user_with_role
from tests.ledger.helpers import database_url

GOLDEN = Path(__file__).parent / "golden"
BASE_DIR = Path(__file__).resolve().parents[2]
START = datetime.date(2026, 12, 1)


def add_bank_details(budget):
    """What an administrator enters before the first run: the dedicated account and the holder's bank."""
    DirectPaymentAccount.objects.create(
        budget=budget,
        kind="bank",
        account_name="JOAN ROBSON PHB",
        sort_code="200000",
        account_number="55779911",
        signatories="Joan Robson\nMichael Robson",
    )
    holder = budget.lines.get(management_type="third_party").plan_line.third_party_holder
    HolderBankAccount.objects.create(
        organisation=holder, account_name="TYNESIDE IUT", sort_code="401162", account_number="12345678"
    )
    provider = budget.lines.get(management_type="notional").plan_line.provider
    Provider.objects.filter(pk=provider.pk).update(
        account_name="NORTH NURSING", sort_code="309950", account_number="87654321"
    )


def set_up(agreed):
    budget = services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    add_bank_details(budget)
    return budget


@pytest.mark.django_db
def test_golden_standard18_file():
    originator = bacs.Originator(
        service_user_number="123456", name="NHS North East ICB", sort_code="30-99-50", account_number="00733445"
    )
    credits = [
        bacs.Credit("20-00-00", "55779911", "Joan Robson DP", 2307, "PHB 12 011226"),
        bacs.Credit("40-11-62", "12345678", "Tyneside IUT", 39200, "PHB 12 011226"),
        bacs.Credit("60-16-13", "87654321", "O'Brien & Sons", 150000, "Invoice 4471"),
    ]
    data = bacs.standard18(
        originator=originator, credits=credits, processing_day=datetime.date(2026, 12, 1), serial="000042"
    )
    assert data == (GOLDEN / "standard18_three_credits.txt").read_bytes()
    lines = data.decode("ascii").split("\r\n")[:-1]
    assert [len(line) for line in lines] == [80] * 4 + [100] * 4 + [80] * 3
    contra = lines[7]
    assert contra[15:17] == "17" and int(contra[35:46]) == 2307 + 39200 + 150000
    assert all(line[15:17] == "99" for line in lines[4:7])
    assert lines[-1].startswith("UTL1") and int(lines[-1][4:17]) == 191507


@pytest.mark.parametrize(
    ("field", "value"),
    [("sort_code", "12-34"), ("account_number", "1234567"), ("amount_pence", 0), ("amount_pence", 10**11)],
)
def test_bad_credits_are_refused(field, value):
    credit = {
        "sort_code": "200000",
        "account_number": "55779911",
        "account_name": "X",
        "amount_pence": 1,
        "reference": "R",
        field: value,
    }
    with pytest.raises(ValueError):
        bacs.standard18(
            originator=bacs.Originator("123456", "ICB", "309950", "00733445"),
            credits=[bacs.Credit(**credit)],
            processing_day=START,
            serial="000001",
        )


@pytest.mark.django_db
def test_run_is_gathered_approved_by_another_and_paid_once(agreed):
    set_up(agreed)
    officer, manager = agreed["finance"], user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=officer)
    assert left_out == [] and run.items.count() == 2  # the first instalment and the first holder transfer
    with pytest.raises(services.BudgetError, match="someone else"):
        payment_runs.payment_run_approve(run=run, acting_user=officer)
    with pytest.raises(services.BudgetError, match="Approve"):
        payment_runs.payment_run_post(run=run, acting_user=officer)
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    with pytest.raises(services.BudgetError, match=r"Nothing in payment run \d+ has been paid by BACS yet"):
        payment_runs.payment_run_bacs_file(run)  # the file holds what the ledger paid: nothing yet
    payment_runs.payment_run_post(run=run, acting_user=officer)
    file_before = payment_runs.payment_run_bacs_file(run)
    payment_runs.payment_run_post(run=run, acting_user=officer)  # running again pays nothing twice
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED
    keys = [item.scheduled_payment.transfer_key for item in run.items.all()]
    assert Transfer.objects.filter(idempotency_key__in=keys).count() == 2
    assert payment_runs.payment_run_bacs_file(run) == file_before
    agreed["plan"].refresh_from_db()
    assert agreed["plan"].status == "active"
    again, _ = payment_runs.payment_run_create(run_date=START, acting_user=officer)
    assert again.items.count() == 0  # nothing is gathered twice
    assert payment_runs.payment_run_csv(run).decode("utf-8").startswith("\ufeffSort code")


@pytest.mark.django_db
def test_one_payment_that_cannot_be_posted_waits_with_its_reason_and_the_others_are_paid(agreed, monkeypatch):
    """Fault injection: the holder's transfer fails to post (as when an account runs short); the person's
    instalment is still paid, and paying the run again pays the one left."""
    from ledger.exceptions import InsufficientFunds

    set_up(agreed)
    officer, manager = agreed["finance"], user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=officer)
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    real_pay = payment_runs.scheduled_payment_pay

    def short_for_the_holder(*, payment, **kwargs):
        if payment.kind == "third_party":
            raise InsufficientFunds("The ICB's holding for this budget is short")
        return real_pay(payment=payment, **kwargs)

    monkeypatch.setattr(payment_runs, "scheduled_payment_pay", short_for_the_holder)
    assert payment_runs.payment_run_post(run=run, acting_user=officer).status == RunStatus.APPROVED
    items = {item.scheduled_payment.kind: item for item in run.items.select_related("scheduled_payment")}
    assert items["direct_payment"].paid_at is not None and items["direct_payment"].failure == ""
    assert items["third_party"].paid_at is None
    # Said for the finance team, without the ledger's account codes.
    assert items["third_party"].failure.startswith("The budget does not hold enough for this (£")
    monkeypatch.setattr(payment_runs, "scheduled_payment_pay", real_pay)
    assert payment_runs.payment_run_post(run=run, acting_user=officer).status == RunStatus.POSTED
    assert ledger_verify().ok


@pytest.mark.django_db
def test_the_database_refuses_an_author_approving_their_own_run(agreed):
    run = PaymentRun.objects.create(run_date=START, author=agreed["finance"])
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentRun.objects.filter(pk=run.pk).update(approved_by=agreed["finance"], status="approved")


@pytest.mark.django_db
def test_payees_without_bank_details_are_left_out_and_named(agreed):
    services.budget_set_up(plan=agreed["plan"], acting_user=agreed["finance"], start_date=START)
    run, left_out = payment_runs.payment_run_create(run_date=START, acting_user=agreed["finance"])
    assert run.items.count() == 0 and len(left_out) == 2


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_while_paying_and_run_again_pays_each_once(agreed):
    budget = set_up(agreed)
    # Sixty extra instalments due on the run date make the run long enough to kill halfway.
    for number in range(60):
        ScheduledPayment.objects.create(
            budget=budget,
            kind="direct_payment",
            due_on=START,
            amount_pence=100 + number,
            transfer_key=f"{budget.owner_ref}:extra:{number}",
        )
    officer, manager = agreed["finance"], user_with_role(Role.FINANCE_MANAGER, organisation=agreed["icb"])
    run, _ = payment_runs.payment_run_create(run_date=START, acting_user=officer)
    payment_runs.payment_run_approve(run=run, acting_user=manager)
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [sys.executable, "manage.py", "payment_run_post", str(run.pk), "--as", officer.email]
    poster = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while ScheduledPayment.objects.filter(run_item__run=run, status=PaymentStatus.PAID).count() < 5:
        assert time.monotonic() < deadline and poster.poll() is None, "the run finished before it could be killed"
        time.sleep(0.01)
    poster.send_signal(signal.SIGKILL)
    poster.wait()
    paid_when_killed = ScheduledPayment.objects.filter(run_item__run=run, status=PaymentStatus.PAID).count()
    assert paid_when_killed < run.items.count()
    # The bank file holds only what the ledger had paid when the run was killed, with totals to match.
    partial = payment_runs.payment_run_bacs_file(run).decode("ascii").split("\r\n")
    paid_items = run.items.filter(paid_at__isnull=False)
    assert sum(1 for line in partial if len(line) == 100 and line[15:17] == "99") == paid_items.count()
    assert int(partial[-2][4:17]) == sum(paid_items.values_list("amount_pence", flat=True))
    rerun = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED and PaymentRun.objects.count() == 1
    keys = list(run.items.values_list("scheduled_payment__transfer_key", flat=True))
    assert Transfer.objects.filter(idempotency_key__in=keys).count() == len(keys) == 62
    assert not ScheduledPayment.objects.filter(run_item__run=run).exclude(status=PaymentStatus.PAID).exists()
    whole = payment_runs.payment_run_bacs_file(run)
    assert whole.count(b"\r\n") == 4 + 62 + 1 + 3 and int(whole.split(b"\r\n")[-2][4:17]) == run.total_pence
    assert payment_runs.payment_run_bacs_file(run) == whole  # the same run, the same bytes
    assert ledger_verify().ok
