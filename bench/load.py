"""Pages under load (R11, DESIGN.md §5): gunicorn with 2 workers on 127.0.0.1, locust users of each role.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python bench/load.py [--budgets 10000] [--transfers 1000000] [--users 20] [--seconds 60]

Seeds its own embedded PostgreSQL in var/pgbench-load (never the demo's): the demo at --seed-people, multiplied up to
--budgets budgets (people, plans, plan lines and budgets cloned with bulk inserts) and topped up to --transfers
ledger transfers with SQL. A database already at that size is reused. Then each locust user signs in through the
form once (with a code from its own authenticator when its role needs one), reads its role's main pages, and
finance users post transfers through the ledger API. Prints page, requests, p50, p95, p99 and errors; writes
bench/results/load.json. Not a test: it reports figures against the target and never fails the build.

This file is also the locustfile (locust imports it and finds the HttpUser classes below).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS = BASE_DIR / "bench" / "results"
PYTHON = str(BASE_DIR / ".venv" / "bin" / "python")
PASSWORD = "load-bench-2026"  # noqa: S105 - bench users in the bench's own database only
TOTP_KEY = b"phb-load-bench-totp!"  # 20 bytes: every bench user's authenticator (its own device, so codes never clash)
DOMAIN = "load.bench.example"
PER_ROLE = 8  # bench users per role: locust users share them round robin
ROLES = ("finance_officer", "care_broker", "icb_approver", "patient", "auditor")
P95_TARGET_MS = 150


def totp(key: bytes, at: float | None = None) -> str:
    """RFC 6238 (30 s, 6 digits, SHA-1), as django-otp's TOTPDevice checks it."""
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


# --- Seeding (runs in the bench process, with Django) ---------------------------------------------------------------


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


def seed(budgets: int, transfers: int, seed_people: int) -> dict:
    from django.core.management import call_command

    from budgets.models import Budget
    from ledger.models import Transfer

    timings = {}
    call_command("migrate", verbosity=0)
    if Budget.objects.count() == 0:
        print(f"seeding the demo with {seed_people} people", flush=True)
        t0 = time.perf_counter()
        call_command("seed_demo", people=seed_people, verbosity=0)
        timings["seed_demo_s"] = time.perf_counter() - t0
    if (have := Budget.objects.count()) < budgets:
        print(f"cloning budgets: {have:,} -> {budgets:,}", flush=True)
        t0 = time.perf_counter()
        clone_budgets(budgets - have)
        timings["clone_budgets_s"] = time.perf_counter() - t0
    if (have := Transfer.objects.count()) < transfers:
        print(f"adding transfers: {have:,} -> {transfers:,}", flush=True)
        t0 = time.perf_counter()
        add_transfers(transfers - have)
        timings["add_transfers_s"] = time.perf_counter() - t0
    bench_users()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"budgets": Budget.objects.count(), "transfers": Transfer.objects.count(), **timings}


def clone_budgets(count: int) -> None:
    """Copies of the seeded people with their plan, plan lines and budget, so every list of people, plans and budgets
    is `count` rows longer. The copies have no budget lines (each line owns its ledger account): their money is on
    the seeded budgets' accounts."""
    from django.db import transaction

    from brokerage.models import CarePlan, Person, PlanLine
    from budgets.models import Budget

    templates = list(Budget.objects.select_related("plan__person").order_by("id"))
    serial = itertools.count(Person.objects.count() + 1)
    staff_through = Person.assigned_staff.through
    for start in range(0, count, 1_000):
        size = min(1_000, count - start)
        with transaction.atomic():
            sources = [templates[(start + i) % len(templates)] for i in range(size)]
            people = []
            for source in sources:
                person = _copy(source.plan.person)
                n = next(serial)
                person.nhs_number = f"8{n:09d}"  # outside the demo's 9xx range
                person.user = None
                person.family_name = f"{person.family_name} {n}"
                people.append(person)
            Person.objects.bulk_create(people)
            plans = []
            for source, person in zip(sources, people, strict=True):
                plan = _copy(source.plan)
                plan.person, plan.previous = person, None
                plans.append(plan)
            CarePlan.objects.bulk_create(plans)
            staff = staff_through.objects.filter(person_id__in={s.plan.person_id for s in sources})
            by_person: dict[int, list[int]] = {}
            for row in staff:
                by_person.setdefault(row.person_id, []).append(row.user_id)
            staff_through.objects.bulk_create(
                [
                    staff_through(person_id=person.pk, user_id=user_id)
                    for source, person in zip(sources, people, strict=True)
                    for user_id in by_person.get(source.plan.person_id, [])
                ]
            )
            plan_lines = []
            for source, plan in zip(sources, plans, strict=True):
                for line in PlanLine.objects.filter(plan_id=source.plan_id).order_by("id"):
                    line = _copy(line)
                    line.plan = plan
                    plan_lines.append(line)
            PlanLine.objects.bulk_create(plan_lines)
            new_budgets = []
            for source, plan in zip(sources, plans, strict=True):
                budget = _copy(source)
                budget.plan = plan
                new_budgets.append(budget)
            Budget.objects.bulk_create(new_budgets)
        print(f"  {start + size:,} cloned", flush=True)


def _copy(instance):
    """A new unsaved row with the instance's values (the template itself is left as it is)."""
    clone = copy.copy(instance)
    clone._state = copy.copy(instance._state)
    clone._state.fields_cache = {}
    clone.pk = None
    clone._state.adding = True
    return clone


def add_transfers(count: int, chunk: int = 250_000) -> None:
    """Posted transfers spread over every budget's held accounts, credited to a funding account (SQL, as
    bench/ledger.py does; the apply trigger keeps each account's counters right)."""
    from django.db import connection, transaction

    from ledger import services
    from ledger.models import Account, AccountKind

    funding = Account.objects.filter(code="load:funding").first() or services.account_open(
        code="load:funding", name="Load funding", kind=AccountKind.EQUITY
    )
    targets = list(
        Account.objects.filter(code__contains=":held:", credits_must_not_exceed_debits=False)
        .values_list("id", flat=True)
        .order_by("id")
    ) or list(Account.objects.filter(kind=AccountKind.ASSET).values_list("id", flat=True))
    tag = uuid.uuid4().hex[:8]
    for low in range(0, count, chunk):
        high = min(count, low + chunk)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_transfer (idempotency_key, phase, debit_account_id, credit_account_id, amount, "
                "currency, code, reference, description, effective_date, recorded_at) "
                "SELECT %s || '-' || g, 'posted', (%s::bigint[])[1 + g %% %s], %s, 1 + g %% 97, 'GBP', 'bulk', '', '', "
                "date '2025-04-01' + (g %% 365), now() FROM generate_series(%s, %s) g",
                [f"load-{tag}", targets, len(targets), funding.pk, low, high - 1],
            )
        print(f"  {high:,} added", flush=True)


def bench_users() -> None:
    """PER_ROLE users per role, each with its own authenticator app (for roles that need a code); patients each
    linked to a seeded person with a budget."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import RoleMembership, User
    from accounts.roles import MFA_ROLES, Role
    from brokerage.models import Person

    demo_staff = {m.role: m.user.organisation for m in RoleMembership.objects.select_related("user")}
    free_people = iter(
        Person.objects.filter(user__isnull=True, plans__budget_record__isnull=False).order_by("id").distinct()
    )
    for role_name in ROLES:
        role = Role(role_name)
        for i in range(PER_ROLE):
            email = f"{role_name}-{i}@{DOMAIN}"
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(
                    email, PASSWORD, full_name=f"Load {role.label} {i}", organisation=demo_staff.get(role)
                )
                RoleMembership.objects.create(user=user, role=role)
                if role == Role.PATIENT:
                    person = next(free_people)
                    person.user = user
                    person.save(update_fields=["user"])
                if role == Role.CARE_BROKER:  # a caseload as big as the demo broker's
                    broker = RoleMembership.objects.filter(role=role).exclude(user__email__endswith=DOMAIN).first()
                    if broker is not None:
                        for person in Person.objects.filter(assigned_staff=broker.user):
                            person.assigned_staff.add(user)
            if role in MFA_ROLES:
                TOTPDevice.objects.get_or_create(
                    user=user, name="Load bench", defaults={"key": TOTP_KEY.hex(), "confirmed": True}
                )


def sample_ids() -> dict:
    """A budget and a held account the locust users read, and an ICB-side clearing account they post to: the API
    refuses to move a budget's own accounts by hand (their money moves on the budget's pages)."""
    from budgets.models import Budget
    from ledger import services
    from ledger.models import Account, AccountKind

    budget = Budget.objects.order_by("id").first()
    held = Account.objects.filter(code__contains=":held:").order_by("id").values_list("id", flat=True).first()
    clearing = Account.objects.filter(code="load:clearing").first() or services.account_open(
        code="load:clearing", name="Load clearing", kind=AccountKind.ASSET
    )
    funding = Account.objects.get(code="load:funding").pk
    return {"budget": budget.pk, "debit": clearing.pk, "credit": funding, "account": held}


# --- The locust users (run in locust's own processes, without Django) ---------------------------------------------

try:
    from locust import HttpUser, between, task
except ImportError:  # the bench process itself does not need locust imported
    HttpUser = None

if HttpUser is not None:
    _numbers: dict[str, itertools.count] = {}
    IDS = json.loads(os.environ.get("LOAD_IDS", "{}"))

    def _csrf(text: str) -> str:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text)
        return found.group(1) if found else ""

    class RoleUser(HttpUser):
        abstract = True
        wait_time = between(0.5, 1.5)
        role = ""
        pages: tuple[str, ...] = ()

        def on_start(self):
            number = next(_numbers.setdefault(self.role, itertools.count()))
            email = f"{self.role}-{number % PER_ROLE}@{DOMAIN}"
            form = self.client.get("/sign-in/", name="sign in (form)")
            answer = self.client.post(
                "/sign-in/",
                {"username": email, "password": PASSWORD, "csrfmiddlewaretoken": _csrf(form.text)},
                name="sign in (post)",
            )
            if "/sign-in/code/" in answer.url:
                # Each bench user has its own authenticator: a code is accepted once, so wait for a fresh step.
                for _ in range(3):
                    answer = self.client.post(
                        "/sign-in/code/",
                        {"code": totp(TOTP_KEY), "csrfmiddlewaretoken": _csrf(answer.text)},
                        name="sign in (code)",
                    )
                    if "/sign-in/" not in answer.url:
                        break
                    time.sleep(30 - time.time() % 30 + 1)

        @task(5)
        def read_pages(self):
            for page in self.pages:
                url = page.format(**IDS)
                with self.client.get(url, name=f"{self.role} {page}", catch_response=True) as answer:
                    if "/sign-in/" in answer.url:  # a page sent back to sign in is an error, not a fast answer
                        answer.failure("not signed in")

    class Finance(RoleUser):
        role = "finance_officer"
        weight = 3
        pages = (
            "/dashboard/finance_officer/",
            "/people/",
            "/finance/invoices/",
            "/finance/payment-runs/",
            "/finance/card-payments/",
            "/finance/ledger/accounts/",
            "/finance/ledger/accounts/{account}/",
            "/finance/ledger/reconcile/",
            "/budgets/{budget}/",
        )

        @task(5)
        def post_transfer(self):
            self.client.post(
                "/api/ledger/transfers/",
                json={"debit_account": IDS["debit"], "credit_account": IDS["credit"], "amount": 100, "code": "bench"},
                headers={
                    "Idempotency-Key": uuid.uuid4().hex,
                    "X-CSRFToken": self.client.cookies.get("csrftoken", ""),
                    "Referer": self.host + "/",
                },
                name="finance POST /api/ledger/transfers/",
            )

    class Broker(RoleUser):
        role = "care_broker"
        weight = 2
        pages = ("/dashboard/care_broker/", "/people/", "/directory/")

    class Approver(RoleUser):
        role = "icb_approver"
        weight = 1
        pages = ("/dashboard/icb_approver/", "/approvals/")

    class Patient(RoleUser):
        role = "patient"
        weight = 2
        pages = ("/my/",)

    class Auditor(RoleUser):
        role = "auditor"
        weight = 1
        pages = ("/dashboard/auditor/", "/finance/ledger/accounts/", "/finance/ledger/trial-balance/")


# --- Running ------------------------------------------------------------------------------------------------------


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own 127.0.0.1 server
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer {url} within {seconds} s")


def read_stats(prefix: str) -> list[dict]:
    rows = []
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append(
                {
                    "page": f"{row['Type']} {row['Name']}".strip() if row["Name"] != "Aggregated" else "all",
                    "requests": int(row["Request Count"]),
                    "p50_ms": float(row["50%"] or 0),
                    "p95_ms": float(row["95%"] or 0),
                    "p99_ms": float(row["99%"] or 0),
                    "errors": int(row["Failure Count"]),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=10_000)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument("--seed-people", type=int, default=100, help="people seed_demo makes before cloning")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.path.insert(0, str(BASE_DIR))
        from config import embedded

        url = embedded.ensure_server(BASE_DIR / "var" / "pgbench-load", database="load")
    setup_django(url)
    scale = seed(args.budgets, args.transfers, args.seed_people)
    ids = sample_ids()
    print(f"database: {scale['budgets']:,} budgets, {scale['transfers']:,} transfers", flush=True)

    env = {**os.environ, "DATABASE_URL": url, "LOAD_IDS": json.dumps(ids)}  # settings as `make run` has them
    host = f"http://127.0.0.1:{args.port}"
    children: list[subprocess.Popen] = []

    def stop(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        web = [PYTHON, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{args.port}", "--workers", "2",
               "--graceful-timeout", "5", "--no-control-socket"]  # fmt: skip
        children.append(subprocess.Popen(web, cwd=BASE_DIR, env=env))
        wait_for(host + "/sign-in/")
        prefix = str(Path(tempfile.mkdtemp(prefix="load-")) / "locust")
        swarm = [PYTHON, "-m", "locust", "-f", __file__, "--headless", "--host", host, "--users", str(args.users),
                 "--spawn-rate", str(max(1, args.users // 5)), "--run-time", f"{args.seconds}s", "--csv", prefix,
                 "--only-summary", "--loglevel", "WARNING"]  # fmt: skip
        children.append(subprocess.Popen(swarm, cwd=BASE_DIR, env=env))
        children[-1].wait()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return 130
    finally:
        stop()

    rows = read_stats(prefix)
    width = max(len(r["page"]) for r in rows)
    print(f"\n{scale['budgets']:,} budgets, {scale['transfers']:,} transfers; {args.users} users for {args.seconds} s")
    print(f"| {'page':<{width}} | requests | p50 ms | p95 ms | p99 ms | errors |")
    print(f"|{'-' * (width + 2)}|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['page']:<{width}} | {r['requests']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} "
            f"| {r['errors']} |"
        )
    overall = next(r for r in rows if r["page"] == "all")
    met = overall["p95_ms"] <= P95_TARGET_MS and overall["errors"] == 0
    print(f"\noverall p95 {overall['p95_ms']:.0f} ms (target ≤ {P95_TARGET_MS} ms): {'met' if met else 'NOT met'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"scale": scale, "users": args.users, "seconds": args.seconds, "pages": rows, "target_met": met}
    (RESULTS / "load.json").write_text(json.dumps(result, indent=2))
    print(f"written {RESULTS / 'load.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
