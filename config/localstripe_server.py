"""Run localstripe, a local fake of the Stripe API, on 127.0.0.1 for tests and the demo.

localstripe is GPL-3.0, so it only ever runs in its own process: nothing else imports it. Each process starts
empty and keeps its state in memory, and stops by itself when its parent process dies.

Usage: python -m config.localstripe_server --port N [--parent-pid P]
From Python: `process, base_url = start()`, `register_webhook(base_url, url, secret)`, `stop(process)`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
INSTANCE_PATH = "/_config/instance"  # /_config/ routes need no API key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--parent-pid", type=int, help="stop when this process ends (default: our parent)")
    parser.add_argument("--instance", default="", help="token answered at /_config/instance, to tell instances apart")
    args = parser.parse_args(argv)

    from aiohttp import web
    from localstripe import resources, server

    # Stock localstripe pickles its whole state to one fixed file in /tmp on every write and reloads it unless
    # told --from-scratch; parallel instances would share (and clobber) it. Keep every instance in memory only.
    resources.Store.dump_to_disk = lambda self: None
    resources.store.clear()

    async def instance(request: web.Request) -> web.Response:
        return web.Response(text=args.instance)

    server.app.router.add_get(INSTANCE_PATH, instance)
    _exit_with_parent(args.parent_pid or os.getppid())
    web.run_app(server.app, host=HOST, port=args.port, print=None, access_log=None)


def _exit_with_parent(parent_pid: int) -> None:
    direct_parent = parent_pid == os.getppid()

    def alive() -> bool:
        if direct_parent and os.getppid() != parent_pid:  # re-parented: the parent is gone
            return False
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True

    def watch() -> None:
        while alive():
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # aiohttp's run_app shuts down cleanly on SIGTERM
        time.sleep(5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(port: int | None = None, *, timeout: float = 20.0, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """Start localstripe in a child process on `port` (default: a free one); return it and its base URL.

    A free port can be taken by someone else before the child binds it, so the child answers a random token and
    we wait for our own token, trying another port if the child dies.
    """
    output = ""
    for _ in range(1 if port else attempts):
        chosen = port or free_port()
        token = secrets.token_hex(8)
        command = [sys.executable, "-m", "config.localstripe_server", "--port", str(chosen)]
        command += ["--parent-pid", str(os.getpid()), "--instance", token]
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(command, cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=log)  # noqa: S603 - our own module, fixed arguments
            base_url = f"http://{HOST}:{chosen}"
            if _wait_for(process, base_url, token, timeout):
                return process, base_url
            stop(process)
            log.seek(0)
            output = log.read().decode(errors="replace")
    raise RuntimeError(f"localstripe did not start:\n{output}")


def _wait_for(process: subprocess.Popen, base_url: str, token: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _call("GET", base_url + INSTANCE_PATH, timeout=1) == token:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


def stop(process: subprocess.Popen, timeout: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def register_webhook(
    base_url: str, url: str, secret: str, *, events: list[str] | None = None, webhook_id: str = "phb"
) -> None:
    """Have localstripe POST signed events to `url` (all types unless `events` is given).

    Registering the same `webhook_id` again replaces it; there is no way to remove one.
    """
    body: dict[str, object] = {"url": url, "secret": secret}
    if events is not None:
        body["events"] = events
    _call("POST", f"{base_url}/_config/webhooks/{webhook_id}", body)


def flush(base_url: str) -> None:
    """Forget every object (customers, intents, refunds...); webhooks stay registered."""
    _call("DELETE", f"{base_url}/_config/data")


def _call(method: str, url: str, body: dict | None = None, timeout: float = 5) -> str:
    """One JSON request to a localstripe server; returns the response text, raises on an HTTP error."""
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"localstripe only runs on loopback, not {url}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method=method)  # noqa: S310 - loopback http only, checked above
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - as above
        return response.read().decode()


if __name__ == "__main__":
    main()
