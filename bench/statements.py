"""Statement benchmarks (DESIGN.md §5). Prints a table and writes bench/results/statements.json.

    .venv/bin/python bench/statements.py [--budgets 60] [--workers 2] [--rounds 2]

Seeds its own budgets (journey 1's plan, started 1 October 2026, a month of instalments and spending: 2-page
statements) in a fresh database on its own embedded PostgreSQL in var/pgbench (or DATABASE_URL), then measures,
side by side and in alternating rounds on the same warmed worker processes' code:

- ours: the batch's own path per statement (read the figures from the ledger, render the HTML, WeasyPrint to
  PDF/UA, hash, write the file, record the row, queue the email), in `--workers` spawned processes;
- WeasyPrint alone: the same HTML, rendered by WeasyPrint with the same options, in as many processes.

Also tech.md §4's reference document (a bare 50-row table), by WeasyPrint alone and through our renderer: the
fastest a statement-like PDF gets on this machine, whatever our template holds.

Also a whole `statements_batch` run, worker start-up included, and each worker's peak RSS. Seeding uses the
tests' plan builder, so it needs the test extras (`pip install -e ".[test]"`). Not a test: it reports figures
against the targets and never fails the build.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RESULTS = BASE_DIR / "bench" / "results"
DATABASE = "bench_statements"
OCTOBER = (datetime.date(2026, 10, 1), datetime.date(2026, 10, 31))
NOVEMBER = (datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))


def setup_django(url: str, media_root: Path) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["MEDIA_ROOT"] = str(media_root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    import django

    django.setup()


def fresh_database() -> str:
    """A new, empty database on the benchmark's own server, so every run seeds and measures the same thing."""
    import psycopg
    from psycopg import sql

    from config import embedded

    url = embedded.ensure_server(BASE_DIR / "var" / "pgbench", database="postgres")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
    return embedded.ensure_server(BASE_DIR / "var" / "pgbench", database=DATABASE)


# --- Seeding ---------------------------------------------------------------------------------------------------


def seed(count: int, spends: int) -> list[int]:
    """`count` live budgets, each with October's instalments paid and `spends` purchases from the direct payment
    and the holder, posted straight to the ledger."""
    from budgets import services
    from budgets.models import BudgetAccount, ScheduledPayment
    from ledger import services as ledger
    from tests.brokerage.helpers import agreed_crew

    budget_ids = []
    for number in range(count):
        crew = agreed_crew()
        person = crew["plan"].person
        person.email = f"person{number}@bench.example"
        person.save(update_fields=["email"])
        budget = services.budget_set_up(plan=crew["plan"], acting_user=crew["finance"], start_date=OCTOBER[0])
        for payment in ScheduledPayment.objects.filter(budget=budget, due_on__lte=OCTOBER[1]):
            services.scheduled_payment_pay(payment=payment, acting_user=crew["finance"])
        accounts = {row.purpose: row.account_id for row in BudgetAccount.objects.filter(budget=budget)}
        dp_line = budget.lines.get(management_type="direct_payment")
        holder_line = budget.lines.get(management_type="third_party")
        holder = next(purpose for purpose in accounts if purpose.startswith("held:third-party:"))
        requests = []
        for index in range(spends):
            line, source = (dp_line, "held:direct-payment") if index % 2 else (holder_line, holder)
            requests.append(
                ledger.TransferRequest(
                    key=f"bench:{budget.pk}:{index}",
                    debit_account_id=line.spend_account_id,
                    credit_account_id=accounts[source],
                    amount=300 + 17 * index,
                    code="dp_spend" if index % 2 else "holder_spend",
                    effective_date=datetime.date(2026, 10, 2 + 3 * index % 28),
                    reference=f"plan-line:{line.plan_line_id}",
                    description=f"Paid to Harmony Singers {index}",
                )
            )
        for request in requests:
            ledger.transfers_record([request], acting_user=crew["finance"])
        budget_ids.append(budget.pk)
    return budget_ids


# --- WeasyPrint alone, in the workers ----------------------------------------------------------------------------


def _weasyprint_alone(html: str, tagged: bool = True) -> tuple[int, int, int, float]:
    """The same HTML and options as a statement, straight into WeasyPrint: (bytes, worker pid, peak RSS KiB, CPU s).
    `tagged=False` leaves out PDF/UA-1, as tech.md §4's speed table was measured."""
    import hashlib
    import resource

    import weasyprint

    from budgets import statements

    cpu_started = time.process_time()
    document = weasyprint.HTML(
        string=html, base_url=statements.static_base_url(), url_fetcher=statements.url_fetcher()
    ).render(font_config=statements.font_config())
    identifier = hashlib.sha256(html.encode()).hexdigest()[:32].encode()
    options = statements.PDF_OPTIONS if tagged else {}
    pdf = document.write_pdf(pdf_identifier=identifier, **options)
    return len(pdf), os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - cpu_started


def _our_renderer(html: str) -> tuple[int, int, int, float]:
    """The same, through the statements' own renderer (expat, our user-agent stylesheet, the cached stylesheet)."""
    import resource

    from budgets import statements

    cpu_started = time.process_time()
    pdf = statements.render_statement_pdf(html)
    return len(pdf), os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - cpu_started


def reference_html() -> str:
    """tech.md §4's measured document: a 50-row A4 table, repeating header, "Page X of Y" footer (2 pages). How fast
    WeasyPrint is on this machine for the simplest statement-like page, whatever our template holds."""
    rows = "".join(
        f"<tr><td>{1 + i % 28} October 2026</td><td>Payment to provider number {i}</td><td>Line {i % 5}</td>"
        f'<td class="n">£{i * 13.17:,.2f}</td></tr>'
        for i in range(50)
    )
    style = (
        '@page { size: A4; @bottom-right { content: "Page " counter(page) " of " counter(pages) } }'
        "thead { display: table-header-group } tr { break-inside: avoid }"
        "td.n { text-align: right; font-variant-numeric: tabular-nums }"
        "table { width: 100%; border-collapse: collapse } td, th { border-bottom: 1px solid #ccc; padding: 4pt }"
        "body { font-family: sans-serif; font-size: 11pt }"
    )
    return (
        f'<html lang="en"><head><title>Reference</title><style>{style}</style></head><body><h1>Statement</h1>'
        "<table><thead><tr><th>Date</th><th>What</th><th>Line</th><th>Amount</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></body></html>"
    )


def _alone_worker_start(environment: dict[str, str]) -> None:
    """A statement worker's start-up (Django, fonts, a warm-up render, frozen garbage collector), then WeasyPrint's own
    SVG text drawing back in place of ours (budgets.svg_text), so 'alone' is WeasyPrint as shipped."""
    from budgets import statement_batch

    statement_batch._worker_start(environment)
    from budgets import svg_text

    svg_text.uninstall()


def alone_pool(workers: int) -> ProcessPoolExecutor:
    from budgets import statement_batch

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_alone_worker_start,
        initargs=(statement_batch.worker_environment(),),
    )
    list(pool.map(statement_batch._warm, range(workers * 2)))
    return pool


# --- Rounds ------------------------------------------------------------------------------------------------------


def forget_statements() -> None:
    """Remove what a round stored, so the next round renders everything again."""
    from django.db import connection

    from budgets.models import Statement, StatementDownload

    for statement in Statement.objects.all():
        statement.pdf.delete(save=False)
    StatementDownload.objects.all().delete()
    Statement.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE procrastinate_jobs, procrastinate_events CASCADE")


def round_ours(pool, budget_ids: list[int]) -> dict:
    from budgets import statement_batch

    jobs = [statement_batch.Job(pk, *OCTOBER) for pk in budget_ids]
    started = time.perf_counter()
    outcomes = statement_batch.run_jobs(pool, jobs)
    elapsed = time.perf_counter() - started
    failures = [outcome.error for outcome in outcomes if outcome.error]
    if failures:
        raise RuntimeError(failures[0])
    peaks: dict[int, int] = {}
    for outcome in outcomes:
        peaks[outcome.worker_pid] = max(peaks.get(outcome.worker_pid, 0), outcome.worker_peak_rss_kib)
    return {
        "seconds": elapsed,
        "per_second": len(jobs) / elapsed,
        "cpu_ms_per_statement": statistics.mean(outcome.cpu_seconds for outcome in outcomes) * 1000,
        "pages": sorted({outcome.pages for outcome in outcomes}),
        "peak_rss_mib_by_worker": sorted(round(kib / 1024, 1) for kib in peaks.values()),
    }


def round_alone(pool, htmls: list[str], render=_weasyprint_alone) -> dict:
    started = time.perf_counter()
    results = list(pool.map(render, htmls))
    elapsed = time.perf_counter() - started
    peaks: dict[int, int] = {}
    for _, pid, kib, _ in results:
        peaks[pid] = max(peaks.get(pid, 0), kib)
    return {
        "seconds": elapsed,
        "per_second": len(htmls) / elapsed,
        "cpu_ms_per_statement": statistics.mean(cpu for *_, cpu in results) * 1000,
        "peak_rss_mib_by_worker": sorted(round(kib / 1024, 1) for kib in peaks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=60)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spends", type=int, default=4, help="purchases a month per budget (4 gives 2 pages)")
    args = parser.parse_args()

    media = BASE_DIR / "var" / "bench-media"
    url = os.environ.get("DATABASE_URL") or fresh_database()
    setup_django(url, media)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from providers.reference import ensure_service_categories

    ensure_service_categories()
    print(f"seeding {args.budgets} budgets", flush=True)
    started = time.perf_counter()
    budget_ids = seed(args.budgets, args.spends)
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)

    from budgets import statement_batch, statements
    from budgets.models import Budget

    forget_statements()
    htmls = [
        statements.render_statement_html(statements.statement_data(Budget.objects.get(pk=pk), *OCTOBER))
        for pk in budget_ids
    ]
    load_before = os.getloadavg()  # other work on the machine skews every rate below
    ours_pool = statement_batch.start_pool(args.workers)
    weasy_pool = alone_pool(args.workers)
    rounds = []
    try:
        for number in range(1, args.rounds + 1):
            print(f"round {number}: WeasyPrint alone", flush=True)
            alone = round_alone(weasy_pool, htmls)
            print(f"round {number}: ours", flush=True)
            ours = round_ours(ours_pool, budget_ids)
            forget_statements()
            rounds.append({"alone": alone, "ours": ours})
    finally:
        ours_pool.shutdown()
        weasy_pool.shutdown()

    print("reference document, WeasyPrint alone", flush=True)
    weasy_pool = alone_pool(args.workers)
    try:
        reference = round_alone(weasy_pool, [reference_html()] * args.budgets)
        print("reference document, our renderer", flush=True)
        reference_ours = round_alone(weasy_pool, [reference_html()] * args.budgets, render=_our_renderer)
        print("reference document, WeasyPrint alone, untagged (as tech.md measured it)", flush=True)
        untagged = functools.partial(_weasyprint_alone, tagged=False)
        reference_untagged = round_alone(weasy_pool, [reference_html()] * args.budgets, render=untagged)
    finally:
        weasy_pool.shutdown()

    print("whole batch, worker start-up included (statements_generate's code path)", flush=True)
    batch = statement_batch.statements_batch(period_start=OCTOBER[0], period_end=OCTOBER[1], workers=args.workers)
    whole = {
        "statements": batch.generated,
        "seconds": batch.seconds,
        "per_second": batch.generated / batch.seconds,
        "failed": len(batch.failed),
        "peak_rss_mib_by_worker": sorted(round(kib / 1024, 1) for kib in batch.peak_rss_kib_by_worker.values()),
    }

    load_after = os.getloadavg()
    ours_rate = statistics.mean(r["ours"]["per_second"] for r in rounds)
    alone_rate = statistics.mean(r["alone"]["per_second"] for r in rounds)
    overhead = alone_rate / ours_rate - 1  # extra time per statement, relative to WeasyPrint's own
    ours_rss = max(max(r["ours"]["peak_rss_mib_by_worker"]) for r in rounds)
    alone_rss = max(max(r["alone"]["peak_rss_mib_by_worker"]) for r in rounds)
    pages = sorted({page for r in rounds for page in r["ours"]["pages"]})
    ours_cpu = statistics.mean(r["ours"]["cpu_ms_per_statement"] for r in rounds)
    alone_cpu = statistics.mean(r["alone"]["cpu_ms_per_statement"] for r in rounds)
    results = {
        "budgets": args.budgets,
        "workers": args.workers,
        "pages_per_statement": pages,
        "rounds": rounds,
        "ours_per_second": ours_rate,
        "alone_per_second": alone_rate,
        "overhead": overhead,
        "ours_worker_cpu_ms": ours_cpu,
        "alone_worker_cpu_ms": alone_cpu,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "whole_batch": whole,
        "reference_document": reference,
        "reference_document_our_renderer": reference_ours,
        "reference_document_untagged": reference_untagged,
    }
    ours_rounds = ", ".join(f"{r['ours']['per_second']:.1f}" for r in rounds)
    alone_rounds = ", ".join(f"{r['alone']['per_second']:.1f}" for r in rounds)
    page_counts = "/".join(map(str, pages))
    rows = [
        (
            f"statements/s, {args.workers} workers, {page_counts}-page statements",
            f"{ours_rate:.1f}/s (rounds: {ours_rounds})",
            "≥ 15/s",
            ours_rate >= 15,
        ),
        ("WeasyPrint alone, same HTML and options", f"{alone_rate:.1f}/s (rounds: {alone_rounds})", "—", None),
        ("overhead over WeasyPrint alone", f"{overhead:.1%}", "≤ 15%", overhead <= 0.15),
        (
            "tech.md §4 reference (50-row table, 2 pages, PDF/UA), WeasyPrint alone",
            f"{reference['per_second']:.1f}/s ({reference['cpu_ms_per_statement']:.0f} ms CPU each)",
            "—",
            None,
        ),
        (
            "the same reference, through our renderer",
            f"{reference_ours['per_second']:.1f}/s ({reference_ours['cpu_ms_per_statement']:.0f} ms CPU each)",
            "—",
            None,
        ),
        (
            "the same reference untagged (no PDF/UA-1, as tech.md §4 measured), WeasyPrint alone",
            f"{reference_untagged['per_second']:.1f}/s ({reference_untagged['cpu_ms_per_statement']:.0f} ms CPU each)",
            "—",
            None,
        ),
        (
            "whole batch incl. worker start-up",
            f"{whole['statements']} in {whole['seconds']:.1f} s = {whole['per_second']:.1f}/s",
            "—",
            None,
        ),
        (
            "worker CPU per statement (ours / alone)",
            f"{ours_cpu:.0f} ms / {alone_cpu:.0f} ms ({ours_cpu / alone_cpu - 1:+.0%}; database server not included)",
            "—",
            None,
        ),
        ("peak RSS per worker (ours / alone)", f"{ours_rss:.0f} MiB / {alone_rss:.0f} MiB", "—", None),
        ("load average before / after (1 min)", f"{load_before[0]:.2f} / {load_after[0]:.2f}", "—", None),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n| {'what':<{width}} | measured | target | met |\n|{'-' * (width + 2)}|---|---|---|")
    for what, measured, target, met in rows:
        print(f"| {what:<{width}} | {measured} | {target} | {'—' if met is None else 'yes' if met else 'NO'} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "statements.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten {RESULTS / 'statements.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
