#!/usr/bin/env bash
# `make test`: installs the system packages the tests need when missing (Debian's chromium, PostgreSQL 15,
# WeasyPrint's libraries, poppler-utils), runs the whole suite on the embedded PostgreSQL, then runs the database-level
# tests again on Debian's PostgreSQL 15 (the oldest server we support) on a private socket.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG15_BIN=/usr/lib/postgresql/15/bin
as_root=""
[ "$(id -u)" = 0 ] || as_root=sudo

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -x "$PG15_BIN/postgres" ] || missing+=(postgresql-15)
"$PY" -c "import weasyprint" >/dev/null 2>&1 || missing+=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)  # statement tests rasterise PDFs
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing from Debian: ${missing[*]}"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pg15_dir=""
cleanup() {
  "$PY" -m config.embedded stop --data var/pgtest >/dev/null 2>&1 || true
  if [ -n "$pg15_dir" ] && [ -f "$pg15_dir/data/postmaster.pid" ]; then
    run_pg15 "$PG15_BIN/pg_ctl" -D "$pg15_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  [ -n "$pg15_dir" ] && rm -rf "$pg15_dir"
}
trap cleanup EXIT

# PostgreSQL refuses to run as root; as root, run the Debian server as its own `postgres` user.
run_pg15() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p var
echo "== Whole suite on the embedded PostgreSQL =="
embedded_url=$("$PY" -m config.embedded start --data var/pgtest)
set +e
DATABASE_URL="$embedded_url" "$PY" -m pytest -n 2 "$@"
suite_status=$?
set -e

echo "== Database-level tests on Debian PostgreSQL 15 =="
pg15_dir=$(mktemp -d /tmp/phb-pg15.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres:postgres "$pg15_dir"
run_pg15 "$PG15_BIN/initdb" -D "$pg15_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
run_pg15 "$PG15_BIN/pg_ctl" -D "$pg15_dir/data" -l "$pg15_dir/server.log" -w \
  -o "-c listen_addresses='' -k $pg15_dir -c fsync=off -c max_connections=200" start >/dev/null
set +e
DATABASE_URL="postgresql://postgres@/postgres?host=$pg15_dir" "$PY" -m pytest -n 2 -m dblevel "$@"
pg15_status=$?
set -e

echo "embedded PostgreSQL suite: exit $suite_status; PostgreSQL 15 database-level tests: exit $pg15_status"
[ "$suite_status" = 0 ] && [ "$pg15_status" = 0 ]
