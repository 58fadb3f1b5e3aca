"""`manage.py db_roles`: the group role the application logs in through, with least privilege (R9).

Run it as the role that owns the schema (the one `migrate` runs as), after every `migrate`: it creates the NOLOGIN
group role when missing and rewrites its grants from the models, in one transaction, so it is safe to run again.

The app may SELECT and INSERT everywhere, and UPDATE and DELETE everywhere except:
- history (every django-pghistory event table) and every table an unconditional pgtrigger `Protect` trigger
  guards (ledger transfers, statement lines, closed periods, …): the operations the trigger refuses are not
  granted either, so tampering fails on privileges before it reaches a trigger the owner could disable;
- the ledger's balance counters: only the transfer trigger moves them, so `ledger_transfer_apply()` is made
  SECURITY DEFINER (running with the owner's rights, on a fixed search_path) and the app may UPDATE every
  column of `ledger_account` except the counters;
- pghistory's context rows, which pghistory updates (their metadata) but never deletes.
No TRUNCATE, TRIGGER or REFERENCES anywhere, and as a non-owner the app cannot ALTER a table (so cannot disable
its triggers). The web servers and workers log in as a role that is a member of this one (README, Deploying).

This app imports no ledger code (it is a leaf of the import graph): the ledger's tables are named as strings.
"""

from __future__ import annotations

import dataclasses
import os
import re

import pghistory.models
import pgtrigger
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction

DEFAULT_ROLE = "phb_app"
# Balance counters: only the transfer trigger (running as the owner) may change them.
OWNER_ONLY_COLUMNS = {
    "ledger_account": ("debits_pending", "debits_posted", "credits_pending", "credits_posted"),
}
# Trigger functions that write owner-only columns on the app's behalf.
DEFINER_FUNCTIONS = ("ledger_transfer_apply()",)
# pghistory upserts a context's metadata as a request goes on, and never deletes a context.
UPDATE_ONLY = {"pghistory_context": ("metadata", "updated_at")}
NO_DELETE = ("pghistory_context",)
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclasses.dataclass
class TablePolicy:
    update: bool = True
    delete: bool = True
    reason: str = ""


def write_policy() -> dict[str, TablePolicy]:
    """Tables whose UPDATE or DELETE the app must not have, from the installed models: {table: policy}."""
    policy: dict[str, TablePolicy] = {}
    for model in apps.get_models():
        if issubclass(model, pghistory.models.Event):
            policy[model._meta.db_table] = TablePolicy(update=False, delete=False, reason="history")
    for model, trigger in pgtrigger.registered():
        # ReadOnly (a Protect subclass) and conditional Protects guard some changes only: the app keeps the rest.
        if type(trigger) is not pgtrigger.Protect or trigger.condition is not None:
            continue
        refused = {str(operation) for operation in trigger.operation}
        table = policy.setdefault(model._meta.db_table, TablePolicy(reason=f"protected by {trigger.name}"))
        table.update = table.update and "UPDATE" not in refused
        table.delete = table.delete and "DELETE" not in refused
    return policy


class Command(BaseCommand):
    help = "Create the app's database group role (NOLOGIN) and grant it least privilege; run after migrate."

    def add_arguments(self, parser):
        parser.add_argument(
            "--role",
            default=os.environ.get("DATABASE_APP_ROLE") or DEFAULT_ROLE,
            help=f"the group role (default: DATABASE_APP_ROLE, else {DEFAULT_ROLE})",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the SQL instead of running it")

    def handle(self, *args, role: str, dry_run: bool = False, **options):
        self.verbosity = options.get("verbosity", 1)
        if not ROLE_NAME.match(role):
            raise CommandError(f"{role!r} is not a plain lower-case role name")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_schema(), current_database(), current_user")
            schema, database, owner = cursor.fetchone()
            if role == owner:
                raise CommandError(f"{role} is the role running this command; the app role must not own the schema")
            # Grants cannot restrict a superuser, nor a role on the tables it owns.
            cursor.execute(
                "SELECT r.rolsuper, (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid"
                " AND c.relnamespace = current_schema()::regnamespace) FROM pg_roles r WHERE r.rolname = %s",
                [role],
            )
            found = cursor.fetchone()
            role_exists = found is not None
            if found and (found[0] or found[1]):
                raise CommandError(f"{role} is a superuser or owns tables here, so no grant can restrict it")
            statements, summary = self.plan(cursor, schema=schema, database=database, role=role, create=not role_exists)
        if dry_run:
            self.stdout.write(";\n".join(statements) + ";")
            return
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        except DatabaseError as exc:
            hint = "" if role_exists else f" (to create it by hand: CREATE ROLE {role} NOLOGIN;)"
            raise CommandError(f"could not set up {role}: {exc}{hint}") from exc
        self.stdout.write(("Created" if not role_exists else "Updated") + f" {role} on {database}.{schema}: {summary}")

    def plan(self, cursor, *, schema: str, database: str, role: str, create: bool) -> tuple[list[str], str]:
        q = connection.ops.quote_name
        r, s = q(role), q(schema)
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            [schema],
        )
        tables = [name for (name,) in cursor.fetchall()]
        statements = [f"CREATE ROLE {r} NOLOGIN"] if create else []
        statements += [
            f"GRANT CONNECT ON DATABASE {q(database)} TO {r}",
            f"GRANT USAGE ON SCHEMA {s} TO {r}",
            # Start from nothing so a grant that the models no longer justify goes away.
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
            f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO {r}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {r}",
            # Tables a later migration adds are readable and writable at once; UPDATE and DELETE wait for this
            # command to run again, so a new history table is never open to tampering by default.
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT ON TABLES TO {r}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT EXECUTE ON FUNCTIONS TO {r}",
        ]
        policy = write_policy()
        full, append_only, limited = 0, [], []
        for table in tables:
            rule = policy.get(table, TablePolicy())
            columns = self.updatable_columns(cursor, schema, table, rule)
            if columns is None:
                statements.append(f"GRANT UPDATE ON {s}.{q(table)} TO {r}")
            elif columns:
                statements.append(f"GRANT UPDATE ({', '.join(map(q, columns))}) ON {s}.{q(table)} TO {r}")
            if rule.delete and table not in NO_DELETE:
                statements.append(f"GRANT DELETE ON {s}.{q(table)} TO {r}")
            if columns is None and rule.delete and table not in NO_DELETE:
                full += 1
            elif not columns and not rule.delete:
                append_only.append(table)
            else:
                limited.append(table)
        for function in DEFINER_FUNCTIONS:
            cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{schema}.{function}"])
            if cursor.fetchone()[0]:
                # A fixed search_path, with pg_temp last, so a temporary table cannot stand in for a ledger table.
                statements.append(f"ALTER FUNCTION {s}.{function} SECURITY DEFINER SET search_path = {s}, pg_temp")
        summary = (
            f"{len(tables)} tables readable and insertable; {full} fully writable; {len(limited)} partly "
            f"({', '.join(limited)}); {len(append_only)} append-only"
        )
        if self.verbosity > 1:
            summary += " (" + ", ".join(append_only) + ")"
        return statements, summary

    @staticmethod
    def updatable_columns(cursor, schema: str, table: str, rule: TablePolicy) -> list[str] | None:
        """None: every column; otherwise the columns the app may UPDATE (possibly none)."""
        if not rule.update:
            return []
        if table in UPDATE_ONLY:
            return list(UPDATE_ONLY[table])
        if table not in OWNER_ONLY_COLUMNS:
            return None
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
            " ORDER BY ordinal_position",
            [schema, table],
        )
        return [name for (name,) in cursor.fetchall() if name not in OWNER_ONLY_COLUMNS[table]]
