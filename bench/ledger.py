"""Ledger benchmarks (DESIGN.md §5). Prints a table and writes bench/results/ledger.json.

    .venv/bin/python bench/ledger.py [--verify-transfers 10000000] [--balance-transfers 1000000]

Runs on its own embedded PostgreSQL in var/pgbench (or DATABASE_URL), migrating the schema first.
Not a test: it reports figures against the targets and never fails the build.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RESULTS = BASE_DIR / "bench" / "results"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def fresh_accounts(prefix: str, *, hot_limit: bool = False):
    from ledger import services
    from ledger.models import AccountKind

    funding = services.account_open(code=f"{prefix}:funding", name="Funding", kind=AccountKind.EQUITY)
    hot = services.account_open(
        code=f"{prefix}:hot", name="Hot", kind=AccountKind.ASSET, credits_must_not_exceed_debits=hot_limit
    )
    spend = services.account_open(code=f"{prefix}:spend", name="Spend", kind=AccountKind.EXPENSE)
    return funding, hot, spend


def bench_single(count: int) -> dict:
    import datetime

    from ledger import services

    funding, hot, spend = fresh_accounts(f"single-{time.time_ns()}")
    day = datetime.date(2026, 10, 1)
    latencies = []
    started = time.perf_counter()
    for index in range(count):
        t0 = time.perf_counter()
        services.transfer_post(
            key=f"{hot.code}-{index}",
            debit_account_id=hot.pk,
            credit_account_id=funding.pk,
            amount=100,
            code="bench",
            effective_date=day,
        )
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {
        "transfers": count,
        "per_second": count / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def _hot_worker(args) -> tuple[int, int, list[float]]:
    _url, worker, count, hot_id, spend_id = args
    from django.db import connections

    connections.close_all()
    import datetime

    from ledger import exceptions, services

    day = datetime.date(2026, 10, 1)
    done = refused = 0
    latencies = []
    for index in range(count):
        t0 = time.perf_counter()
        try:
            services.transfer_post(
                key=f"hot-{hot_id}-{worker}-{index}",
                debit_account_id=spend_id,
                credit_account_id=hot_id,
                amount=1,
                code="bench",
                effective_date=day,
            )
            done += 1
        except exceptions.InsufficientFunds:
            refused += 1
        latencies.append(time.perf_counter() - t0)
    return done, refused, latencies


def bench_hot_account(workers: int, per_worker: int, url: str) -> dict:
    import datetime

    from django.db import connections

    from ledger import services
    from ledger.models import Account

    funding, hot, spend = fresh_accounts(f"hot-{time.time_ns()}", hot_limit=True)
    services.transfer_post(
        key=f"{hot.code}-fund",
        debit_account_id=hot.pk,
        credit_account_id=funding.pk,
        amount=workers * per_worker,
        code="bench",
        effective_date=datetime.date(2026, 10, 1),
    )
    connections.close_all()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_hot_worker, [(url, w, per_worker, hot.pk, spend.pk) for w in range(workers)])
    elapsed = time.perf_counter() - started
    done = sum(r[0] for r in results)
    latencies = [latency for r in results for latency in r[2]]
    hot = Account.objects.get(pk=hot.pk)
    lost_updates = (hot.credits_posted - done) != 0
    return {
        "workers": workers,
        "transfers": done,
        "refused": sum(r[1] for r in results),
        "per_second": done / elapsed,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "lost_updates": lost_updates,
        "hot_balance_left": hot.posted_balance,
    }


def bench_batch(batches: int, size: int) -> dict:
    import datetime

    from ledger import services

    funding, hot, spend = fresh_accounts(f"batch-{time.time_ns()}")
    accounts = [services.account_open(code=f"{hot.code}-{i}", name="Batch", kind="asset").pk for i in range(50)]
    day = datetime.date(2026, 10, 1)
    started = time.perf_counter()
    for batch in range(batches):
        requests = [
            services.TransferRequest(
                key=f"{hot.code}-{batch}-{i}",
                debit_account_id=accounts[i % 50],
                credit_account_id=funding.pk,
                amount=100 + i,
                code="bench",
                effective_date=day,
            )
            for i in range(size)
        ]
        services.transfers_record(requests)
    elapsed = time.perf_counter() - started
    return {"batches": batches, "batch_size": size, "per_second": batches * size / elapsed}


def bulk_load(account_id: int, other_id: int, count: int, chunk: int = 500_000) -> float:
    """Insert `count` transfers with SQL in chunks (the apply trigger keeps counters right)."""
    from django.db import connection, transaction

    started = time.perf_counter()
    tag = time.time_ns()
    for low in range(0, count, chunk):
        high = min(count, low + chunk)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_transfer (idempotency_key, phase, debit_account_id, credit_account_id, amount, "
                "currency, code, reference, description, effective_date, recorded_at) "
                "SELECT %s || '-' || g, 'posted', %s, %s, 1 + g %% 97, 'GBP', 'bulk', '', '', "
                "date '2025-04-01' + (g %% 365), now() FROM generate_series(%s, %s) g",
                [f"bulk-{tag}", account_id, other_id, low, high - 1],
            )
    return time.perf_counter() - started


def bench_balance_read(transfers: int, reads: int = 10_000) -> dict:
    from django.db import connection

    from ledger.models import Account

    funding, hot, spend = fresh_accounts(f"read-{time.time_ns()}")
    load_seconds = bulk_load(hot.pk, funding.pk, transfers)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ledger_account")
    latencies = []
    for _ in range(reads):
        t0 = time.perf_counter()
        balance = Account.objects.get(pk=hot.pk).posted_balance
        latencies.append(time.perf_counter() - t0)
    return {
        "transfers_on_account": transfers,
        "load_seconds": load_seconds,
        "balance": balance,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def bench_verify(target_transfers: int) -> dict:
    from ledger.models import Transfer
    from ledger.verification import ledger_verify

    existing = Transfer.objects.count()
    load_seconds = 0.0
    if existing < target_transfers:
        funding, hot, spend = fresh_accounts(f"verify-{time.time_ns()}")
        load_seconds = bulk_load(hot.pk, funding.pk, target_transfers - existing)
    started = time.perf_counter()
    report = ledger_verify()
    elapsed = time.perf_counter() - started
    return {"transfers": report.transfers, "seconds": elapsed, "ok": report.ok, "load_seconds": load_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=5_000)
    parser.add_argument("--hot-per-worker", type=int, default=2_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--balance-transfers", type=int, default=1_000_000)
    parser.add_argument("--verify-transfers", type=int, default=10_000_000)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL")
    if not url:
        from config import embedded

        url = embedded.ensure_server(BASE_DIR / "var" / "pgbench", database="bench")
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", "ledger", verbosity=0)

    results = {}
    print("running: single transfers", flush=True)
    results["single"] = bench_single(args.single)
    print("running: 4 workers on one hot account", flush=True)
    results["hot_account"] = bench_hot_account(4, args.hot_per_worker, url)
    print("running: batches of 1,000", flush=True)
    results["batch"] = bench_batch(args.batches, 1_000)
    print(f"running: balance read with {args.balance_transfers:,} transfers on the account", flush=True)
    results["balance_read"] = bench_balance_read(args.balance_transfers)
    print(f"running: ledger_verify over {args.verify_transfers:,} transfers", flush=True)
    results["verify"] = bench_verify(args.verify_transfers)

    s, h, b, r, v = (results[k] for k in ("single", "hot_account", "batch", "balance_read", "verify"))
    rows = [
        (
            "single transfer via services",
            f"{s['per_second']:,.0f}/s, p99 {s['p99_ms']:.2f} ms",
            "≥ 1,200/s, p99 ≤ 5 ms",
            s["per_second"] >= 1200 and s["p99_ms"] <= 5,
        ),
        (
            "4 workers, one hot account",
            f"{h['per_second']:,.0f}/s, lost updates: {h['lost_updates']}",
            "≥ 500/s, none lost",
            h["per_second"] >= 500 and not h["lost_updates"],
        ),
        ("batch of 1,000 per transaction", f"{b['per_second']:,.0f}/s", "≥ 25,000/s", b["per_second"] >= 25_000),
        (
            f"balance read, {r['transfers_on_account']:,} transfers",
            f"p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms",
            "p99 ≤ 1 ms",
            r["p99_ms"] <= 1,
        ),
        (
            f"ledger_verify, {v['transfers']:,} transfers",
            f"{v['seconds']:.1f} s (ok: {v['ok']})",
            "≤ 60 s",
            v["seconds"] <= 60 and v["ok"],
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n| {'what':<{width}} | measured | target | met |\n|{'-' * (width + 2)}|---|---|---|")
    for what, measured, target, met in rows:
        print(f"| {what:<{width}} | {measured} | {target} | {'yes' if met else 'NO'} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ledger.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten {RESULTS / 'ledger.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
