"""Fuzzing the file importers (issue 10): OFX and CSV bank statements and receipt uploads, 100,000 generated files
each. Prints a table and writes bench/results/fuzz_importers.json.

    .venv/bin/python bench/fuzz_importers.py [--inputs 100000] [--seed 10] [--only ofx,csv,...]

The target: 0 unexpected errors, and every refusal carries a reason a person can read. An unexpected error is any
exception other than the importer's refusal (ImportRefused, or the form's ValidationError for receipts), or an
answer the database or matching could not take (a NUL in the text, a date in year 1, an amount too large...): the
checks are the tests' own (tests/ledger/test_import_fuzz.py, tests/budgets/test_receipt_fuzz.py), and so are the
generators, so this needs the test extras. Input n of importer X comes from random.Random(f"{seed}:{X}:{n}"), so any
input the table reports can be made again from its number. Parsing never writes: Django is set up with a database
address that is never connected to. Not a test: it reports figures and never fails the build.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import re
import sys
import time
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RESULTS = BASE_DIR / "bench" / "results"
SAMPLES = 5  # unexpected errors kept per importer, to reproduce


def setup_django() -> None:
    # Parsing needs the models' classes, never a connection: an address nothing listens on proves it.
    os.environ["DATABASE_URL"] = "postgresql://fuzz@127.0.0.1:9/never-connected"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def importers() -> dict:
    """name → (generate(rng) → input, judge(input) → (outcome, refusal reason or None), digest(input) → bytes)."""
    from ledger.statements_import import ImportRefused, parse_csv, parse_ofx
    from tests.budgets import test_receipt_fuzz as receipts
    from tests.ledger import test_import_fuzz as statements

    def statement_judge(parse):
        def judge(value):
            try:
                parsed = parse(value)
            except ImportRefused as exc:
                statements.check_refused(exc)
                return "refused", exc.problems[0][1]
            statements.check_parsed(parsed)
            return ("accepted, bad lines listed" if parsed.bad_lines else "accepted"), None

        return judge

    def receipt_judge(value):
        from django import forms

        verdict = receipts.outcome(*value)
        if verdict == "refused":
            try:
                receipts.receipt_check(receipts.PurchaseForm, "receipt", *value)
            except forms.ValidationError as exc:
                return verdict, exc.messages[0]
        return verdict, None

    def csv_digest(value):
        data, mapping = value
        layout = [getattr(mapping, f"{role}_column") for role in statements.ROLES]
        return data + repr((mapping.date_format, layout)).encode()

    return {
        "ofx": (statements.ofx_file, statement_judge(parse_ofx), bytes),
        "csv": (statements.csv_file, statement_judge(lambda value: parse_csv(*value)), csv_digest),
        "ofx-bytes": (statements.any_bytes, statement_judge(parse_ofx), bytes),
        "csv-bytes": (statements.any_bytes, statement_judge(lambda data: parse_csv(data, statements.HSBC)), bytes),
        "receipts": (receipts.receipt_file, receipt_judge, lambda value: repr(value).encode()),
    }


DESCRIPTIONS = {
    "ofx": "OFX v1/v2 statements, mutated",
    "csv": "CSV statements in a layout, mutated",
    "ofx-bytes": "OFX importer, arbitrary bytes",
    "csv-bytes": "CSV importer, arbitrary bytes",
    "receipts": "receipt uploads (both forms)",
}


def fuzz(name: str, generate, judge, digest, *, inputs: int, seed: int) -> dict:
    counts: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    distinct: set[bytes] = set()
    unexpected: list[dict] = []
    slowest = (0.0, -1)
    started = time.perf_counter()
    for n in range(inputs):
        value = generate(random.Random(f"{seed}:{name}:{n}"))
        distinct.add(hashlib.blake2b(digest(value), digest_size=16).digest())
        t0 = time.perf_counter()
        try:
            verdict, reason = judge(value)
        except Exception as exc:  # counting every kind is the point
            counts["unexpected"] += 1
            if len(unexpected) < SAMPLES:
                unexpected.append({"input": n, "error": type(exc).__name__, "message": str(exc)[:300]})
        else:
            counts[verdict] += 1
            if reason is not None:
                reasons[re.sub(r"'[^']*'|\d+", "…", reason)[:90]] += 1
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, (elapsed, n))
        if (n + 1) % 20_000 == 0:
            print(f"  {name}: {n + 1:,} inputs, {counts['unexpected']} unexpected", file=sys.stderr, flush=True)
    return {
        "what": DESCRIPTIONS[name],
        "inputs": inputs,
        "distinct_inputs": len(distinct),
        "accepted": counts["accepted"] + counts["accepted, bad lines listed"],
        "accepted_with_bad_lines_listed": counts["accepted, bad lines listed"],
        "refused_with_reason": counts["refused"],
        "unexpected_errors": counts["unexpected"],
        "unexpected_samples": unexpected,
        "seconds": time.perf_counter() - started,
        "slowest_input": {"input": slowest[1], "ms": round(slowest[0] * 1000, 1)},
        "top_refusal_reasons": dict(reasons.most_common(8)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="per importer")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(DESCRIPTIONS))
    args = parser.parse_args()
    setup_django()
    warnings.simplefilter("ignore")  # ofxtools warns about every unknown tag in a mutated file
    chosen = importers()
    if args.only:
        chosen = {name: chosen[name] for name in args.only.split(",")}
    results = {}
    for name, (generate, judge, digest) in chosen.items():
        print(f"running: {name} ({args.inputs:,} inputs)", flush=True)
        results[name] = fuzz(name, generate, judge, digest, inputs=args.inputs, seed=args.seed)
    total_unexpected = sum(row["unexpected_errors"] for row in results.values())
    print(
        "\n| importer | inputs | distinct | accepted (bad lines listed) | refused with reason | unexpected errors "
        "| seconds | slowest input |\n|---|---|---|---|---|---|---|---|"
    )
    for row in results.values():
        print(
            f"| {row['what']} | {row['inputs']:,} | {row['distinct_inputs']:,} | {row['accepted']:,} "
            f"({row['accepted_with_bad_lines_listed']:,}) | {row['refused_with_reason']:,} | "
            f"{row['unexpected_errors']} | {row['seconds']:.0f} | {row['slowest_input']['ms']:.0f} ms |"
        )
    print(f"\nunexpected errors in all: {total_unexpected} (target 0)")
    for name, row in results.items():
        for sample in row["unexpected_samples"]:
            print(f"  {name} input {sample['input']}: {sample['error']}: {sample['message']}")
    RESULTS.mkdir(exist_ok=True)
    output = {
        "seed": args.seed,
        "inputs_per_importer": args.inputs,
        "unexpected_errors": total_unexpected,
        "target_unexpected_errors": 0,
        "importers": results,
    }
    (RESULTS / "fuzz_importers.json").write_text(json.dumps(output, indent=2, ensure_ascii=False))
    print(f"\nwritten {RESULTS / 'fuzz_importers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
