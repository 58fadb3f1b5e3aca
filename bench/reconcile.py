"""Reconciliation benchmark (DESIGN.md §5): import and auto-match 100,000 statement lines against a ledger of
1M transfers. Prints a table and writes bench/results/reconcile.json.

    .venv/bin/python bench/reconcile.py [--lines 100000] [--ledger 1000000]

The bank account carries one transfer per one-to-one line plus five per payment-run line (one line in 100 is a
run); the rest of the ledger is padding on other accounts. Half the one-to-one lines carry the transfer's
reference, the other half only amount and date. Runs on its own embedded PostgreSQL in var/pgbench (or
DATABASE_URL). Not a test: it reports figures against the target and never fails the build.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RESULTS = BASE_DIR / "bench" / "results"
START = datetime.date(2025, 4, 1)
RUN_SIZE = 5


def seed(lines: int, ledger_size: int, tag: str):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from bench.ledger import bulk_load
    from ledger import services
    from ledger.models import AccountKind, CashAccount

    bank = services.account_open(code=f"{tag}:bank", name="Bank", kind=AccountKind.ASSET)
    other = services.account_open(code=f"{tag}:other", name="Other", kind=AccountKind.EQUITY)
    pad_a = services.account_open(code=f"{tag}:pad-a", name="Pad", kind=AccountKind.ASSET)
    pad_b = services.account_open(code=f"{tag}:pad-b", name="Pad", kind=AccountKind.EQUITY)
    cash = CashAccount.objects.create(account=bank, name=f"Bench bank {tag}", reconcile_from=START)
    runs = lines // 100
    singles = lines - runs
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # One-to-one: g is even → money in with a reference; odd → money out, amount and date only.
        cursor.execute(
            "INSERT INTO ledger_transfer (idempotency_key, phase, debit_account_id, credit_account_id, amount, "
            "currency, code, reference, description, effective_date, recorded_at) "
            "SELECT %(tag)s || '-s-' || g, 'posted', CASE WHEN g %% 2 = 0 THEN %(bank)s ELSE %(other)s END, "
            "CASE WHEN g %% 2 = 0 THEN %(other)s ELSE %(bank)s END, 1000 + g, 'GBP', 'bench', "
            "CASE WHEN g %% 2 = 0 THEN 'ref-' || g ELSE '' END, '', date %(start)s + (g %% 365), now() "
            "FROM generate_series(0, %(n)s - 1) g",
            {"tag": tag, "bank": bank.pk, "other": other.pk, "start": START, "n": singles},
        )
        # Payment runs: five payments out sharing a reference, paid as one bank line.
        cursor.execute(
            "INSERT INTO ledger_transfer (idempotency_key, phase, debit_account_id, credit_account_id, amount, "
            "currency, code, reference, description, effective_date, recorded_at) "
            "SELECT %(tag)s || '-r-' || g, 'posted', %(other)s, %(bank)s, 500 + g, 'GBP', 'payment', "
            "'run-' || (g / %(size)s), '', date %(start)s + ((g / %(size)s) %% 365), now() "
            "FROM generate_series(0, %(n)s - 1) g",
            {"tag": tag, "bank": bank.pk, "other": other.pk, "start": START, "n": runs * RUN_SIZE, "size": RUN_SIZE},
        )
    on_bank = singles + runs * RUN_SIZE
    if ledger_size > on_bank:
        bulk_load(pad_a.pk, pad_b.pk, ledger_size - on_bank)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ledger_transfer")
    seconds = time.perf_counter() - started
    rows = ["Date,Narrative,Reference,Amount"]
    for g in range(singles):
        day = START + datetime.timedelta(days=g % 365 + g % 3)
        amount = (1000 + g) if g % 2 == 0 else -(1000 + g)
        rows.append(f"{day.isoformat()},LINE {g},{'ref-' + str(g) if g % 2 == 0 else ''},{amount / 100:.2f}")
    for k in range(runs):
        total = sum(500 + g for g in range(k * RUN_SIZE, (k + 1) * RUN_SIZE))
        day = START + datetime.timedelta(days=k % 365 + 1)
        rows.append(f"{day.isoformat()},BACS RUN {k},,{-total / 100:.2f}")
    user = get_user_model().objects.create(email=f"{tag}@bench.invalid", full_name="Benchmark")
    return cash, ("\n".join(rows) + "\n").encode(), user, seconds, on_bank


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--ledger", type=int, default=1_000_000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        from config import embedded

        url = embedded.ensure_server(BASE_DIR / "var" / "pgbench", database="bench")
    from bench.ledger import setup_django

    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from ledger import matching
    from ledger.models import CsvMapping, Transfer
    from ledger.statements_import import statement_import

    tag = f"recon{time.time_ns()}"
    print(f"seeding: {args.ledger:,} transfers, {args.lines:,} statement lines", flush=True)
    cash, data, user, seed_seconds, on_bank = seed(args.lines, args.ledger, tag)
    mapping = CsvMapping.objects.create(
        name=f"Bench {tag}",
        date_column="Date",
        date_format="%Y-%m-%d",
        description_column="Narrative",
        reference_column="Reference",
        amount_column="Amount",
    )
    print("running: import", flush=True)
    t0 = time.perf_counter()
    record = statement_import(cash_account=cash, filename="bench.csv", data=data, acting_user=user, mapping=mapping)
    import_seconds = time.perf_counter() - t0
    print("running: auto-match", flush=True)
    t0 = time.perf_counter()
    counts = matching.auto_match(cash)
    match_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = statement_import(cash_account=cash, filename="bench.csv", data=data, acting_user=user, mapping=mapping)
    reimport_seconds = time.perf_counter() - t0
    left = matching.unmatched_lines(cash).count()
    total = import_seconds + match_seconds
    results = {
        "ledger_transfers": Transfer.objects.count(),
        "transfers_on_bank_account": on_bank,
        "lines": record.lines_added,
        "seed_seconds": seed_seconds,
        "import_seconds": import_seconds,
        "auto_match_seconds": match_seconds,
        "total_seconds": total,
        "matched": counts,
        "unmatched_lines": left,
        "reimport_seconds": reimport_seconds,
        "reimport_added": again.lines_added,
        "target_seconds": 20,
    }
    matched = sum(counts.values())
    table = [
        (
            "ledger size (transfers)",
            f"{results['ledger_transfers']:,}",
            "≥ 1,000,000",
            results["ledger_transfers"] >= 10**6,
        ),
        (f"import {record.lines_added:,} CSV lines", f"{import_seconds:.1f} s", "", True),
        # Lines whose amount and date fit more than one transfer are left for a person, by design.
        (f"auto-match ({matched:,} matched, {left:,} ambiguous left for a person)", f"{match_seconds:.1f} s", "", True),
        ("import + auto-match", f"{total:.1f} s", "≤ 20 s", total <= 20),
        (
            f"re-import the same file ({again.lines_added} added)",
            f"{reimport_seconds:.1f} s",
            "adds 0",
            again.lines_added == 0,
        ),
    ]
    width = max(len(row[0]) for row in table)
    print(f"\n| {'what':<{width}} | measured | target | met |\n|{'-' * (width + 2)}|---|---|---|")
    for what, measured, target, met in table:
        print(f"| {what:<{width}} | {measured} | {target} | {'yes' if met else 'NO'} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconcile.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten {RESULTS / 'reconcile.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
