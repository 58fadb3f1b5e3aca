"""Scale-out on one machine (issue 10): two gunicorn web processes and two Procrastinate workers share one
PostgreSQL. A payment run is paid through the web while a worker renders a statement batch; one web process and one
worker are killed with SIGKILL midway. The other web process keeps serving the same signed-in sessions, the
surviving worker puts the dead worker's job back in the queue (config.tasks.retry_stalled_jobs), and in the end every
payment is in the ledger once, every statement is stored and announced once, no job is left failed or running, and
the ledger verifies."""

from __future__ import annotations

import datetime
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob, ProcrastinateWorker

from accounts.roles import Role
from budgets import tasks as budget_tasks
from budgets.models import PaymentRun, PaymentRunItem, PaymentStatus, RunStatus, ScheduledPayment, Statement
from ledger.models import Transfer
from ledger.verification import ledger_verify
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import user_with_role
from tests.ledger.helpers import database_url
from tests.mfa import TwoFactorClient

BASE_DIR = Path(__file__).resolve().parents[1]
OCTOBER_START, OCTOBER_END = datetime.date(2026, 10, 1), datetime.date(2026, 10, 31)
RUN_DATE = datetime.date(2026, 11, 1)
FIRST_OF_NOVEMBER = int(datetime.datetime(2026, 11, 1, 4, 0, tzinfo=datetime.UTC).timestamp())
BUDGETS = 6
EXTRA_INSTALMENTS = 90  # makes the run long enough to kill its web process halfway
DEADLINE = 75  # seconds for the whole scenario once the processes are up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed() -> list:
    budgets = []
    for number in range(BUDGETS):
        crew = agreed_crew()
        person = crew["plan"].person
        person.email = f"scale{number}@example.org"
        person.save(update_fields=["email"])
        budgets.append(budget_in_use(crew, start=OCTOBER_START))  # October's instalments paid, November's due
    for number in range(EXTRA_INSTALMENTS):
        ScheduledPayment.objects.create(
            budget=budgets[0],
            kind="direct_payment",
            due_on=RUN_DATE,
            amount_pence=100 + number,
            transfer_key=f"{budgets[0].owner_ref}:scale:{number}",
        )
    return budgets


class Web:
    """A signed-in person's browser, pointed at one web process or another; the session lives in the database, so
    the same cookie works on every web process."""

    def __init__(self, user):
        client = TwoFactorClient()
        client.force_login(user)  # a real session row, with the second factor passed
        self.csrf = secrets.token_hex(16)  # 32 characters: Django accepts the unmasked secret in the header
        self.cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": self.csrf}

    def get(self, base: str, path: str) -> requests.Response:
        return requests.get(base + path, cookies=self.cookies, allow_redirects=False, timeout=60)

    def post(self, base: str, path: str, data: dict, timeout: float = 60) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf, "Referer": base + path}
        return requests.post(
            base + path, data=data, cookies=self.cookies, headers=headers, allow_redirects=False, timeout=timeout
        )


def wait_for(condition, what: str, timeout: float, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            assert proc.poll() is None, f"{' '.join(proc.args[1:5])} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def web_is_up(base: str) -> bool:
    try:
        return requests.get(base + "/", allow_redirects=False, timeout=10).status_code < 500
    except requests.RequestException:
        return False


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started, as when a machine is lost."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("empty_job_queue")
def test_two_web_processes_and_two_workers_lose_one_each_midway_and_every_job_still_runs_once(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    budgets = seed()
    officer = user_with_role(Role.FINANCE_OFFICER)
    manager = user_with_role(Role.FINANCE_MANAGER)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",  # as the tests run
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PAYMENTS_GATEWAY": "fake",
        # Fast heartbeats and stalled-job checks, so recovery takes seconds here rather than a minute.
        "PROCRASTINATE_HEARTBEAT_SECONDS": "1",
        "PROCRASTINATE_STALLED_SECONDS": "4",
        "PROCRASTINATE_STALLED_CRON": "* * * * * */2",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    webs = [
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--graceful-timeout",
            "2",
            "--timeout",
            "120",
            "--no-control-socket",
        ]
        for port in ports
    ]
    worker = [sys.executable, "manage.py", "procrastinate", "worker"]
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(command, name):
        log = (logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        procs.append(proc)
        return proc

    before = ProcrastinateWorker.objects.order_by("-id").values_list("id", flat=True).first() or 0
    try:
        web_a, web_b = start(webs[0], "web-a"), start(webs[1], "web-b")
        worker_1, worker_2 = start(worker, "worker-1"), start(worker, "worker-2")
        wait_for(lambda: all(web_is_up(base) for base in bases), "both web processes", 60, procs)
        wait_for(lambda: ProcrastinateWorker.objects.filter(id__gt=before).count() == 2, "both workers", 60, procs)
        started = time.monotonic()

        # The statement batch, as the monthly schedule defers it; either worker takes it.
        batch_job_id = budget_tasks.statements_monthly.defer(timestamp=FIRST_OF_NOVEMBER)

        # A payment run, gathered by one finance officer on web A and approved by a manager on web B.
        as_officer, as_manager = Web(officer), Web(manager)
        # A run's date is today or later (never in the past): it gathers everything due by then.
        today = timezone.localdate()
        created = as_officer.post(bases[0], "/finance/payment-runs/", {"run_date": today.isoformat()})
        assert created.status_code == 302, created.text[:500]
        run = PaymentRun.objects.get(pk=int(re.search(r"/payment-runs/(\d+)/", created.headers["Location"])[1]))
        items = run.items.count()
        due = ScheduledPayment.objects.filter(status=PaymentStatus.DUE, due_on__lte=run.run_date).count()
        assert items == due >= BUDGETS * 2 + EXTRA_INSTALMENTS  # each budget's November instalments, and the extras
        run_page = f"/finance/payment-runs/{run.pk}/"
        approved = as_manager.post(bases[1], run_page, {"action": "approve"})
        assert approved.status_code == 302
        # Paying is one long request on web A.
        paying: dict = {}

        def pay():
            try:
                paying["response"] = as_officer.post(bases[0], run_page, {"action": "pay"}, timeout=120)
            except requests.RequestException as exc:  # the process serving it is killed
                paying["error"] = exc

        payer = threading.Thread(target=pay)
        payer.start()

        def paid() -> int:
            return PaymentRunItem.objects.filter(run=run, paid_at__isnull=False).count()

        # Kill each side midway: web A with some of the run paid, and the worker rendering the batch with some of
        # the statements stored.
        wait_for(lambda: paid() >= 5, "the run to be partly paid", DEADLINE, [web_a])
        kill_group(web_a)
        paid_when_killed = paid()
        payer.join(timeout=30)
        assert "error" in paying, "web A answered although it was killed"
        assert paid_when_killed < items, "the run finished before web A could be killed"

        def rendering_worker() -> subprocess.Popen | None:
            job = ProcrastinateJob.objects.get(pk=batch_job_id)
            if job.status != "doing" or not Statement.objects.exists():
                return None
            # The batch renders in a pool of processes under the worker running it.
            return next((w for w in (worker_1, worker_2) if psutil.Process(w.pid).children()), None)

        wait_for(lambda: rendering_worker() is not None, "the batch to be partly done", DEADLINE, [worker_1, worker_2])
        killed = rendering_worker()
        survivor = worker_2 if killed is worker_1 else worker_1
        kill_group(killed)
        stored_when_killed = Statement.objects.count()
        assert stored_when_killed < BUDGETS, "the batch finished before its worker could be killed"
        assert ProcrastinateJob.objects.get(pk=batch_job_id).status == "doing"  # left behind by the dead worker

        # Web B serves the same signed-in sessions (no state lives in a web process); paying again finishes the run.
        page = as_officer.get(bases[1], run_page)
        assert page.status_code == 200 and "Payment run" in page.text
        again = as_officer.post(bases[1], run_page, {"action": "pay"})
        assert again.status_code == 302
        run.refresh_from_db()
        assert run.status == RunStatus.POSTED

        # The surviving worker notices the dead one's job has stalled and runs it again to the end.
        def batch_done() -> bool:
            return ProcrastinateJob.objects.get(pk=batch_job_id).status == "succeeded"

        wait_for(batch_done, "the stalled batch to be retried and finish", DEADLINE, [survivor, web_b])
        wait_for(  # the "statement ready" emails the batch queued
            lambda: (
                not ProcrastinateJob.objects.filter(
                    status__in=["todo", "doing"], task_name="accounts.send_email"
                ).exists()
            ),
            "the emails to be sent",
            30,
            [survivor],
        )
        survivor.send_signal(signal.SIGTERM)  # a graceful stop finishes what it is doing
        survivor.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    # Every payment once: each item paid, one ledger transfer per scheduled payment's key.
    assert not run.items.filter(paid_at__isnull=True).exists()
    keys = list(run.items.values_list("scheduled_payment__transfer_key", flat=True))
    assert len(set(keys)) == items
    assert Transfer.objects.filter(idempotency_key__in=keys).count() == items
    assert not ScheduledPayment.objects.filter(run_item__run=run).exclude(status=PaymentStatus.PAID).exists()
    assert PaymentRun.objects.count() == 1
    # Every statement once, stored whole and announced once.
    statements = Statement.objects.filter(period_start=OCTOBER_START, period_end=OCTOBER_END)
    assert sorted(statements.values_list("budget_id", flat=True)) == sorted(b.pk for b in budgets)
    assert all(Path(s.pdf.path).exists() and s.notified_at is not None for s in statements)
    emails = ProcrastinateJob.objects.filter(task_name="accounts.send_email")
    assert sorted(job.args["to"][0] for job in emails) == sorted(f"scale{n}@example.org" for n in range(BUDGETS))
    # The batch ran twice (an attempt counts when the stalled job is put back and when it finishes), the retry came
    # from the stalled-job task, and nothing failed or hangs.
    batch = ProcrastinateJob.objects.get(pk=batch_job_id)
    assert batch.status == "succeeded" and batch.attempts == 2
    assert ProcrastinateJob.objects.filter(task_name="config.retry_stalled_jobs", status="succeeded").exists()
    assert not ProcrastinateJob.objects.filter(status__in=["failed", "doing"]).exists()
    assert ledger_verify().ok
    assert elapsed < DEADLINE
