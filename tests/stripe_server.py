"""Payment fixtures, registered as a plugin by tests/conftest.py.

`localstripe`: one localstripe process per test worker on a free loopback port, started only when a test asks
for it; it dies with the worker even if the worker is killed.
`fake_payments`: points `budgets.payments.gateway()` at the shared in-memory fake, emptied before and after.
"""

import pytest

from config import localstripe_server


@pytest.fixture(scope="session")
def localstripe():
    """The base URL of a fresh localstripe server, e.g. http://127.0.0.1:40123."""
    process, base_url = localstripe_server.start()
    yield base_url
    localstripe_server.stop(process)


@pytest.fixture
def fake_payments(settings):
    from budgets import payments

    settings.PAYMENTS_GATEWAY = "fake"
    fake = payments.fake_gateway()
    fake.reset()
    yield fake
    fake.reset()
