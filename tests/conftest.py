import os
import shutil

import pytest
from django.db import connection

pytest_plugins = ["tests.stripe_server"]

# Playwright's sync API runs an event loop in the test thread; Django's ORM must still be usable there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def client():
    """pytest-django's client, except that force_login of staff who approve or move money also passes their second
    factor (tests/mfa.py): the real two-factor middleware runs in every test."""
    from tests.mfa import TwoFactorClient

    return TwoFactorClient()


@pytest.fixture
def empty_job_queue(django_db_blocker):
    """Procrastinate's tables are not Django-managed, so flushing between tests leaves jobs behind."""

    def truncate():
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers CASCADE")

    truncate()
    yield
    truncate()


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Reference data comes from migrations, but flushing after a transactional test removes it: put it back."""
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("_django_db_helper")
    from providers.reference import ensure_service_categories

    ensure_service_categories()
