"""Shared budget fixtures: journey 1's three-line plan, agreed and ready to set up."""

import pytest

from tests.brokerage.helpers import agreed_crew


@pytest.fixture
def agreed():
    return agreed_crew()
