"""R9, audit rows cannot be altered: `manage.py db_roles` gives the app's database role everything the app needs and
nothing that could rewrite history. The app itself runs as that role (a child process doing a budget's set-up and
payments, ledger postings and an account closure); then every way of tampering is tried as the same role."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pghistory.models
import psycopg
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from psycopg import errors

from accounts.management.commands.db_roles import write_policy
from ledger.models import Transfer
from tests.ledger.helpers import database_url

BASE_DIR = Path(__file__).resolve().parents[1]
PASSWORD = "app-role-test-password"

# The app's own code, as the app role: journey 1's budget set up and paid, ledger postings, an account closed, a role
# membership removed (a tracked DELETE), all under a pghistory context, then the ledger verified.
APP_WORK = """
import datetime, json
import django
django.setup()
import pghistory
from django.core.management import call_command
from accounts.models import RoleMembership
from ledger import services
from ledger.models import Account, AccountKind
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import budget_in_use

with pghistory.context(source="db_roles test"):
    crew = agreed_crew()
    budget = budget_in_use(crew)
    cash = services.account_open(code="roles:cash", name="Cash", kind=AccountKind.ASSET)
    income = services.account_open(code="roles:income", name="Income", kind=AccountKind.INCOME)
    spare = services.account_open(code="roles:spare", name="Spare", kind=AccountKind.ASSET)
    for n, amount in enumerate((1_250, 4_000)):
        services.transfer_post(key=f"roles-{n}", debit_account_id=cash.pk, credit_account_id=income.pk, amount=amount,
                               code="movement", effective_date=datetime.date(2026, 10, 1))
    services.account_close(account=spare)
    RoleMembership.objects.filter(user=crew["finance"]).delete()
call_command("ledger_verify", "--no-progress")
print(json.dumps({"budget": budget.pk, "cash": Account.objects.get(pk=cash.pk).posted_balance,
                  "closed": Account.objects.get(pk=spare.pk).closed}))
"""

TAMPERING = [
    "UPDATE ledger_transfer SET description = 'edited'",
    "DELETE FROM ledger_transfer",
    "TRUNCATE ledger_transfer CASCADE",
    "UPDATE ledger_statementline SET description = 'edited'",
    "DELETE FROM ledger_closedperiod",
    "UPDATE accounts_userevent SET pgh_label = 'edited'",
    "DELETE FROM accounts_userevent",
    "TRUNCATE accounts_userevent",
    "DELETE FROM accounts_rolemembershipevent",
    "UPDATE brokerage_careplanevent SET pgh_label = 'edited'",
    "DELETE FROM budgets_scheduledpaymentevent",
    "DELETE FROM pghistory_context",
    "DELETE FROM ledger_account",
    "DELETE FROM ledger_matchedtransfer",
    # The counters change only through transfers, even with the flag the apply trigger sets.
    "SELECT set_config('ledger.applying', 'on', false); UPDATE ledger_account SET credits_posted = credits_posted + 1",
    # Only the owner may switch a table's triggers off, and only a superuser all triggers at once.
    "ALTER TABLE ledger_transfer DISABLE TRIGGER ALL",
    "ALTER TABLE accounts_userevent DISABLE TRIGGER USER",
    "DROP TRIGGER ledger_transfer_apply ON ledger_transfer",
    "SET session_replication_role = replica",
]

# Plain app writes stay allowed: the restrictions are targeted.
ALLOWED = [
    "UPDATE ledger_account SET name = name || '' WHERE code = 'roles:cash'",
    "UPDATE ledger_match SET active = active",
    "UPDATE accounts_user SET full_name = full_name",
    "DELETE FROM django_session",
]


def history_tables() -> list[str]:
    return [m._meta.db_table for m in apps.get_models() if issubclass(m, pghistory.models.Event)]


def role_url(role: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(database_url())
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{role}:{PASSWORD}@{host}").geturl()


@pytest.fixture
def roles():
    """A group role set up by db_roles and a LOGIN role in it, as in production; both dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    group, login = f"phb_app_t{suffix}", f"phb_web_t{suffix}"
    yield group, login
    with connection.cursor() as cursor:
        for role in (login, group):
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone():
                cursor.execute(f'DROP OWNED BY "{role}"')
                cursor.execute(f'DROP ROLE "{role}"')
        # Leave the function as the migration made it, for the tests that follow on this database.
        cursor.execute("ALTER FUNCTION ledger_transfer_apply() SECURITY INVOKER RESET ALL")


def test_every_history_table_is_append_only_for_the_app():
    policy = write_policy()
    history = history_tables()
    assert len(history) > 20
    for table in [*history, "ledger_transfer", "ledger_statementline", "ledger_closedperiod"]:
        assert (policy[table].update, policy[table].delete) == (False, False), table
    for table in ("ledger_account", "ledger_match", "ledger_matchedtransfer"):
        assert (policy[table].update, policy[table].delete) == (True, False), table
    assert "budgets_budget" not in policy


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
def test_the_app_role_can_run_the_app_but_not_rewrite_history(roles, capsys):
    group, login = roles
    call_command("db_roles", "--role", group)
    call_command("db_roles", "--role", group)  # idempotent
    output = capsys.readouterr().out
    assert f"Created {group}" in output and f"Updated {group}" in output
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{login}" LOGIN PASSWORD \'{PASSWORD}\' IN ROLE "{group}"')
        cursor.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [group])
        assert cursor.fetchone() == (False,)

    env = {**os.environ, "DATABASE_URL": role_url(login), "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    work = subprocess.run([sys.executable, "-c", APP_WORK], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert work.returncode == 0, work.stderr[-3000:]
    assert "Ledger verified: no drift" in work.stdout
    result = json.loads(work.stdout.strip().splitlines()[-1])
    assert result == {"budget": result["budget"], "cash": 5_250, "closed": True}
    assert Transfer.objects.filter(idempotency_key__startswith="roles-").count() == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_rolemembershipevent WHERE pgh_label = 'delete'")
        assert cursor.fetchone()[0] >= 1  # the app's DELETE was audited
        cursor.execute("SELECT count(*) FROM pghistory_context WHERE metadata->>'source' = 'db_roles test'")
        assert cursor.fetchone()[0] == 1

    refused, allowed_failed = [], []
    with psycopg.connect(role_url(login), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (login,)
        for statement in TAMPERING:
            try:
                conn.execute(statement)
            except errors.InsufficientPrivilege:
                refused.append(statement)
        for statement in ALLOWED:
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                allowed_failed.append(f"{statement}: {exc}")
    assert refused == TAMPERING  # each one refused for want of privilege, not by a trigger the owner could drop
    assert allowed_failed == []

    # Every history table, checked from the catalogue: no UPDATE, DELETE or TRUNCATE through membership either.
    history = history_tables()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t FROM unnest(%s::text[]) t WHERE has_table_privilege(%s, t, 'UPDATE, DELETE, TRUNCATE')",
            [history, login],
        )
        assert cursor.fetchall() == []
        cursor.execute("SELECT has_table_privilege(%s, 'budgets_budget', 'UPDATE, DELETE')", [login])
        assert cursor.fetchone() == (True,)


@pytest.mark.django_db
def test_db_roles_refuses_to_restrict_the_role_running_it():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="must not own the schema"):
        call_command("db_roles", "--role", owner)
    with pytest.raises(CommandError, match="not a plain lower-case role name"):
        call_command("db_roles", "--role", 'x"; DROP TABLE ledger_transfer; --')
