"""R1 and R3: separate processes posting at once, and processes killed mid-run, never lose or duplicate money."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from ledger.models import AccountKind, Transfer
from ledger.verification import ledger_verify
from tests.ledger.helpers import database_url, open_account, post

BASE_DIR = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.dblevel, pytest.mark.django_db(transaction=True)]


def funded_accounts(count: int = 4) -> list[int]:
    funding = open_account("load:funding", AccountKind.EQUITY)
    ids = []
    for index in range(count):
        account = open_account(f"load:{index}", AccountKind.ASSET, credits_must_not_exceed_debits=True)
        post(account, funding, 200_000, "allocation", key=f"load-fund-{index}")
        ids.append(account.pk)
    return ids


def start_poster(accounts, *, seed, count, replay_rate=0.0, linked=False, prefix="p", url=None):
    env = {**os.environ, "DATABASE_URL": url or database_url(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [
        sys.executable,
        "-m",
        "tests.ledger.poster",
        "--accounts",
        ",".join(map(str, accounts)),
        "--count",
        str(count),
        "--seed",
        str(seed),
        "--replay-rate",
        str(replay_rate),
        "--prefix",
        prefix,
    ]
    if linked:
        command.append("--linked")
    return subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def invariant_queries() -> dict[str, int]:
    """Each must be 0."""
    with connection.cursor() as cursor:
        checks = {
            "linked groups not whole": "SELECT count(*) FROM (SELECT group_key FROM ledger_transfer "
            "WHERE group_key IS NOT NULL GROUP BY group_key HAVING count(*) <> 2) g",
            "duplicate keys": "SELECT count(*) - count(DISTINCT idempotency_key) FROM ledger_transfer",
            "negative counters": "SELECT count(*) FROM ledger_account WHERE least(debits_posted, credits_posted, "
            "debits_pending, credits_pending) < 0",
            "overdrawn": "SELECT count(*) FROM ledger_account WHERE credits_must_not_exceed_debits "
            "AND credits_posted + credits_pending > debits_posted",
        }
        results = {}
        for name, sql in checks.items():
            cursor.execute(sql)
            results[name] = cursor.fetchone()[0]
    report = ledger_verify()
    results["counters differ from history"] = len(report.drifted)
    results["debits differ from credits"] = abs(report.total_debits - report.total_credits)
    return results


def test_eight_processes_with_replays_lose_and_duplicate_nothing():
    accounts = funded_accounts()
    posters = [start_poster(accounts, seed=seed, count=500, replay_rate=0.1) for seed in range(8)]
    outcomes = []
    for poster in posters:
        stdout, stderr = poster.communicate(timeout=600)
        assert poster.returncode == 0, stderr[-2000:]
        outcomes += [json.loads(line) for line in stdout.splitlines()]

    assert len(outcomes) == 8 * 500
    statuses = Counter(outcome["status"] for outcome in outcomes)
    assert set(statuses) <= {"applied", "replayed", "refused"}, statuses
    assert statuses["replayed"] > 0  # shared keys really were replayed across processes
    applied_keys = {o["key"] for o in outcomes if o["status"] == "applied"}
    acknowledged = {o["key"] for o in outcomes if o["status"] in ("applied", "replayed")}
    stored = set(Transfer.objects.filter(code="load").values_list("idempotency_key", flat=True))
    assert stored == acknowledged == applied_keys  # applied = unique ids, nothing lost, nothing twice
    assert all(value == 0 for value in invariant_queries().values()), invariant_queries()


def read_acknowledged(poster, minimum: int, deadline: float) -> list[dict]:
    lines = []
    while len(lines) < minimum and time.monotonic() < deadline:
        line = poster.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize("iteration", range(3))
def test_killing_a_posting_process_leaves_every_acknowledged_transfer_and_no_half_group(iteration):
    accounts = funded_accounts()
    poster = start_poster(accounts, seed=100 + iteration, count=100_000, linked=True, prefix=f"kill{iteration}")
    wanted = random.Random(iteration).randint(20, 200)
    acknowledged = read_acknowledged(poster, wanted, time.monotonic() + 60)
    poster.send_signal(signal.SIGKILL)
    poster.communicate()
    assert len(acknowledged) >= wanted
    acknowledged_parts = {part for line in acknowledged if line["status"] == "applied" for part in line["parts"]}
    stored = set(Transfer.objects.filter(code="load").values_list("idempotency_key", flat=True))
    assert acknowledged_parts <= stored
    assert all(value == 0 for value in invariant_queries().values()), invariant_queries()
