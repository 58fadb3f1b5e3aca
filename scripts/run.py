"""`make run`: migrate, seed the demo, and run the web server and a task worker until Ctrl+C.

Uses DATABASE_URL when set; otherwise starts (or reuses) the embedded PostgreSQL under var/ and stops it
cleanly on exit if this script started it.
"""

from __future__ import annotations

import os
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


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, check=True)


def main() -> int:
    env = os.environ
    started_embedded = False
    if not env.get("DATABASE_URL"):
        data_dir = embedded.DEFAULT_DATA_DIR
        already_running = embedded.is_running(data_dir)
        env["DATABASE_URL"] = embedded.ensure_server(data_dir)
        started_embedded = not already_running
        print(f"Embedded PostgreSQL {'started' if started_embedded else 'reused'} (data in {data_dir})")
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    manage("migrate", "--noinput", "-v", "0")
    manage("seed_demo", "--people", env.get("DEMO_PEOPLE", "50"))

    children = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"{HOST}:{PORT}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
            ],
            cwd=BASE_DIR,
        ),
        subprocess.Popen([PYTHON, "manage.py", "procrastinate", "worker"], cwd=BASE_DIR),
    ]

    from accounts.demo import DEMO_PASSWORD, sign_ins  # after Django's settings are importable

    width = max(len(role) for role, _ in sign_ins())
    print(f"\nPersonal health budgets is running at http://{HOST}:{PORT}/  (Ctrl+C to stop)\n")
    print(f"Demo sign-ins (password for all: {DEMO_PASSWORD}):")
    for role, email in sign_ins():
        print(f"  {role:<{width}}  {email}")
    print(flush=True)

    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"{child.args[2]} exited with {child.returncode}; stopping", file=sys.stderr)
                    stopping, exit_code = True, 1
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if started_embedded:
            embedded.stop(embedded.DEFAULT_DATA_DIR)
            print("Embedded PostgreSQL stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
