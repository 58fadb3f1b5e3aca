"""Backups (issue 10): `scripts/backup.py` dumps the database, and a restore lands in a new database whose ledger must
verify before it replaces anything. Runs the script as `make backup` and `make restore` do, in a child process."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from ledger.models import AccountKind, Transfer
from ledger.verification import ledger_verify
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import budget_in_use
from tests.ledger.helpers import database_url, open_account, post

BASE_DIR = Path(__file__).resolve().parents[1]


def script(*args: str, url: str | None = None, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url or database_url(), **env}
    return subprocess.run(
        [sys.executable, "scripts/backup.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )


def url_for(name: str) -> str:
    from scripts.backup import with_database

    return with_database(database_url(), name)


def admin():
    return psycopg.connect(url_for("postgres"), autocommit=True)


def databases_like(prefix: str) -> list[str]:
    with admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]).fetchall()
    return sorted(name for (name,) in rows)


@pytest.fixture
def scratch_name():
    """A database name for this test; every database starting with it is dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_bk{uuid.uuid4().hex[:6]}"
    yield name
    with admin() as conn:
        for leftover in databases_like(name):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(leftover)))


def row_counts(cursor) -> dict[str, int]:
    cursor.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname"
    )
    tables = [name for (name,) in cursor.fetchall()]
    counts = {}
    for table in tables:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        counts[table] = cursor.fetchone()[0]
    return counts


COUNTERS = (
    "SELECT code, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_account ORDER BY code"
)


def counters(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(COUNTERS).fetchall()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["restore"], "the following arguments are required: file"),
        (["restore", "scripts/backup.py"], "is not a pg_dump custom-format backup"),
        (["restore", "var/no-such.dump"], "is not a file"),
    ],
)
def test_restore_refuses_without_a_backup_file(args, error):
    # The URL is never used: each refusal comes before any connection.
    result = script(*args, url="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode != 0
    assert error in result.stderr


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
def test_backup_restores_into_a_fresh_database_whose_ledger_verifies(tmp_path, scratch_name):
    budgets = 2
    for _ in range(budgets):
        budget_in_use(agreed_crew())
    assert Transfer.objects.count() > 2 * budgets and ledger_verify().ok

    made = script("backup", "--out", str(tmp_path / "phb.dump"))
    assert made.returncode == 0, made.stderr
    assert str(tmp_path / "phb.dump") in made.stdout
    assert (tmp_path / "phb.dump").stat().st_size > 0
    assert not list(tmp_path.glob("*.partial"))

    restored = script("restore", str(tmp_path / "phb.dump"), "--into", scratch_name)
    assert restored.returncode == 0, restored.stderr
    assert "Ledger verified: no drift" in restored.stdout

    with connection.cursor() as cursor:
        source = row_counts(cursor)
    with psycopg.connect(url_for(scratch_name)) as conn, conn.cursor() as cursor:
        copy = row_counts(cursor)
    assert copy == source
    assert source["ledger_transfer"] > 0 and source["budgets_budget"] == budgets
    assert counters(url_for(scratch_name)) == counters(database_url())

    # A restore never writes over an existing database with --into.
    again = script("restore", str(tmp_path / "phb.dump"), "--into", scratch_name)
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.fixture
def app_role():
    """A group role for the app, as `manage.py db_roles` would make; dropped after the databases that use it."""
    role = f"phb_app_t{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" NOLOGIN')
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f'DROP ROLE "{role}"')


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
def test_only_a_backup_whose_ledger_verifies_replaces_the_database(tmp_path, app_role, scratch_name):
    cash = open_account("backup:cash", AccountKind.ASSET)
    income = open_account("backup:income", AccountKind.INCOME)
    for amount in (1_000, 2_500, 700):
        post(cash, income, amount)
    assert script("backup", "--out", str(tmp_path / "good.dump")).returncode == 0

    # The "live" database here is a copy, so the swap can rename it: a test cannot rename its own database.
    live = url_for(scratch_name)
    assert script("restore", str(tmp_path / "good.dump"), "--into", scratch_name).returncode == 0
    with psycopg.connect(live, autocommit=True) as conn:
        # Counters moved without a transfer (the guard trigger lets the apply trigger's flag through): drift.
        conn.execute("SET ledger.applying = 'on'")
        conn.execute("UPDATE ledger_account SET debits_posted = debits_posted + 99 WHERE code = 'backup:cash'")
    drifted = counters(live)
    assert script("backup", "--out", str(tmp_path / "bad.dump"), url=live).returncode == 0

    refused = script("restore", str(tmp_path / "bad.dump"), url=live)
    assert refused.returncode == 1
    assert "DRIFT backup:cash debits_posted" in refused.stdout
    assert "does not verify" in refused.stderr
    assert counters(live) == drifted  # untouched
    assert databases_like(scratch_name) == [scratch_name]  # the scratch copy is gone

    swapped = script("restore", str(tmp_path / "good.dump"), url=live, DATABASE_APP_ROLE=app_role)
    assert swapped.returncode == 0, swapped.stderr
    with psycopg.connect(live) as conn:
        # Restores skip grants; the app's role gets its own back (db_roles), append-only tables included.
        grants = "SELECT has_table_privilege(%(role)s, 'ledger_transfer', p) FROM unnest(ARRAY['INSERT', 'UPDATE']) p"
        assert conn.execute(grants, {"role": app_role}).fetchall() == [(True,), (False,)]
    assert counters(live) == counters(database_url())
    kept = [name for name in databases_like(scratch_name) if name != scratch_name]
    assert len(kept) == 1 and "_pre_restore_" in kept[0] and kept[0] in swapped.stdout
    assert counters(url_for(kept[0])) == drifted

    # The swap refuses while anything is connected to the database it would replace.
    with psycopg.connect(live):
        busy = script("restore", str(tmp_path / "good.dump"), url=live)
    assert busy.returncode == 1 and "stop the app" in busy.stderr
    assert len(databases_like(scratch_name)) == 2
