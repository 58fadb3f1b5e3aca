"""A separate process that posts transfers through the services, for concurrency and crash tests.

    python -m tests.ledger.poster --accounts 1,2,3,4 --count 500 --seed 3 [--replay-rate 0.1] [--linked]

DATABASE_URL names the database. Each outcome is printed as a JSON line *after* its commit returns, so a
parent that kills this process knows exactly which transfers were acknowledged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import sys

SHARED_KEYS = 50  # keys that every process may replay


def payload_for(key: str, accounts: list[int]) -> tuple[int, int, int]:
    """The same key always means the same transfer, whichever process sends it."""
    rng = random.Random(key)
    debit, credit = rng.sample(accounts, 2)
    return debit, credit, rng.randint(1, 500)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", required=True)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay-rate", type=float, default=0.0)
    parser.add_argument("--linked", action="store_true", help="post linked pairs (all or none)")
    parser.add_argument("--prefix", default="p")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from ledger import exceptions as errors
    from ledger import services

    accounts = [int(a) for a in args.accounts.split(",")]
    rng = random.Random(args.seed)
    day = datetime.date(2026, 10, 1)
    for index in range(args.count):
        if rng.random() < args.replay_rate:
            key = f"{args.prefix}-shared-{rng.randrange(SHARED_KEYS)}"
        else:
            key = f"{args.prefix}-{args.seed}-{index}"
        requests = []
        for part in ("a", "b") if args.linked else ("",):
            part_key = f"{key}{part}"
            debit, credit, amount = payload_for(part_key, accounts)
            requests.append(
                services.TransferRequest(
                    key=part_key,
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount=amount,
                    code="load",
                    effective_date=day,
                )
            )
        try:
            results = services.transfers_record(requests)
            status = "replayed" if all(r.replayed for r in results) else "applied"
        except errors.InsufficientFunds:
            status = "refused"
        except errors.LedgerError as exc:
            status = f"error: {exc}"
        except Exception as exc:
            print(json.dumps({"key": key, "status": f"crashed: {type(exc).__name__}"}), flush=True)
            return 3
        print(json.dumps({"key": key, "status": status, "parts": [r.key for r in requests]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
