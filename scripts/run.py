"""`make run`: migrate, seed the demo, and run the web server and a task worker until Ctrl+C.

Uses DATABASE_URL when set; otherwise starts (or reuses, if it is already running) the embedded PostgreSQL
under var/pgdata, whose data persists between runs, and stops it cleanly on exit.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from config import embedded  # noqa: E402

HOST, PORT = "127.0.0.1", int(os.environ.get("PORT", "8000"))
PYTHON = sys.executable
LOCAL_STRIPE = "http://127.0.0.1:8420"  # settings.STRIPE_API_BASE when no real Stripe key is set


DEMO_MARK = BASE_DIR / "var" / "demo-seeded-by.txt"


def seed_code_fingerprint() -> str:
    """What the demo's data depends on: every app's demo module, the seed command and the migrations."""
    digest = hashlib.sha256()
    files = [*BASE_DIR.glob("*/demo.py"), *BASE_DIR.glob("*/migrations/0*.py")]
    files.append(BASE_DIR / "accounts" / "management" / "commands" / "seed_demo.py")
    for path in sorted(files):
        digest.update(str(path.relative_to(BASE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, check=True)


def main() -> int:
    env = os.environ
    use_embedded = not env.get("DATABASE_URL")
    if use_embedded:
        data_dir = embedded.DEFAULT_DATA_DIR
        already_running = embedded.is_running(data_dir)
        env["DATABASE_URL"] = embedded.ensure_server(data_dir)
        print(f"Embedded PostgreSQL {'reused' if already_running else 'started'} (data in {data_dir})")
        seeded_by = DEMO_MARK.read_text().strip() if DEMO_MARK.exists() else ""
        if seeded_by != seed_code_fingerprint():
            # The demo's people and money are seeded once; seeded by other code they would not show what this
            # code does (a patient with no budget, say), so the demo database starts afresh.
            print("The demo was seeded by other code: starting the demo database afresh")
            env["DATABASE_URL"] = embedded.recreate_database(data_dir)
            DEMO_MARK.unlink(missing_ok=True)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children: list[subprocess.Popen] = []
    exit_code = 0
    try:
        manage("migrate", "--noinput", "-v", "0")
        manage("seed_demo", "--people", env.get("DEMO_PEOPLE", "50"))
        if use_embedded:
            DEMO_MARK.write_text(seed_code_fingerprint() + "\n")
        # --- Card payments: a local Stripe server, started before the web server so it inherits the secret ---
        local_stripe = start_local_stripe(env)
        if local_stripe is not None:
            children.append(local_stripe)
        # --- end card payments ---
        web = [PYTHON, "-m", "gunicorn", "config.wsgi", "--bind", f"{HOST}:{PORT}", "--workers", "2",
               "--access-logfile", "-", "--graceful-timeout", "5", "--no-control-socket"]  # fmt: skip
        children.append(subprocess.Popen(web, cwd=BASE_DIR))
        children.append(subprocess.Popen([PYTHON, "manage.py", "procrastinate", "worker"], cwd=BASE_DIR))
        print_banner()
        if local_stripe is not None:
            print_card_banner()
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"{' '.join(child.args[1:4])} exited with {child.returncode}; stopping", file=sys.stderr)
                    stopping, exit_code = True, 1
            time.sleep(0.5)
    except subprocess.CalledProcessError as exc:
        print(f"{' '.join(exc.cmd[1:3])} failed (exit {exc.returncode}); stopping", file=sys.stderr)
        exit_code = 1
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if use_embedded:
            embedded.stop(embedded.DEFAULT_DATA_DIR)
            print("Embedded PostgreSQL stopped")
    return exit_code


def print_banner() -> None:
    import django

    django.setup()
    from accounts.demo import DEMO_PASSWORD, sign_ins

    width = max(len(role) for role, _ in sign_ins())
    print(f"\nPersonal health budgets is running at http://{HOST}:{PORT}/  (Ctrl+C to stop)\n")
    print(f"Demo sign-ins (password for all: {DEMO_PASSWORD}):")
    for role, email in sign_ins():
        print(f"  {role:<{width}}  {email}")
    print_two_factor_banner()
    from budgets.demo import demo_statement_path

    statement = demo_statement_path(datetime.date.today())
    if statement.exists():
        print(f"\nThis month's bank statement, to import under Reconciliation: {statement.relative_to(BASE_DIR)}")
    print(flush=True)


def print_two_factor_banner() -> None:
    from accounts.demo import DEMO_TOTP_SECRET, DEMO_USERS, demo_email
    from accounts.roles import MFA_ROLES

    money_staff = [role.label for role, _local, _name, _org in DEMO_USERS if role in MFA_ROLES]
    example = next(demo_email(local) for role, local, _name, _org in DEMO_USERS if role in MFA_ROLES)
    print(f"\nThese sign-ins also need a 6-digit security code (two-factor): {', '.join(money_staff)}.")
    print(f"  Add this key to an authenticator app (time based): {DEMO_TOTP_SECRET}")
    print(f"  or print the current code: .venv/bin/python manage.py demo_code {example}")


# --- Card payments: localstripe (config/localstripe_server.py) --------------------------------------------------


def start_local_stripe(env) -> subprocess.Popen | None:
    """Start localstripe on 127.0.0.1:8420 and have it send its signed webhooks to this app, unless a real Stripe
    key (or another Stripe server, or the fake gateway) is configured: the demo never calls real Stripe."""
    if (
        env.get("STRIPE_SECRET_KEY", "") not in ("", "sk_test_local")
        or env.get("STRIPE_API_BASE", LOCAL_STRIPE) != LOCAL_STRIPE
        or env.get("PAYMENTS_GATEWAY", "stripe") != "stripe"
    ):
        return None
    from config import localstripe_server

    # One secret per run, shared with the web server through the environment it inherits.
    env.setdefault("STRIPE_WEBHOOK_SECRET", f"whsec_{secrets.token_hex(16)}")
    try:
        process, base_url = localstripe_server.start(port=8420)
    except RuntimeError as exc:
        print(f"Card payments are unavailable: {exc}", file=sys.stderr)
        return None
    webhook_url = f"http://{HOST}:{PORT}/webhooks/stripe/"
    localstripe_server.register_webhook(base_url, webhook_url, env["STRIPE_WEBHOOK_SECRET"])
    return process


def print_card_banner() -> None:
    print(f"Card payments use the local Stripe server at {LOCAL_STRIPE} (localstripe), never real Stripe.")
    print("  Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0341 is declined;")
    print("  any future expiry date and any 3-digit security code.")
    print(flush=True)


# --- end card payments ------------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())
