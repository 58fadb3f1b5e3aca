"""Amounts are read the way people type them, and too many digits gets the form's own words, not Django's."""

from decimal import Decimal

import pytest
from django import forms

from config.forms import PoundsField


class AmountForm(forms.Form):
    amount = PoundsField(
        max_digits=7,
        error_messages={"invalid": "Enter an amount like 45.50", "max_digits": "The amount must be £50,000 or less"},
    )


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("1250.50", Decimal("1250.50")),
        ("£1,250.50", Decimal("1250.50")),
        ("1,250", Decimal("1250")),
        (" £ 17,000.00 ", Decimal("17000.00")),
        ("12,345", Decimal("12345")),
    ],
)
def test_pounds_are_read_with_a_pound_sign_and_thousands_commas(typed, read):
    form = AmountForm({"amount": typed})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == read


@pytest.mark.parametrize("typed", ["1,25", "12,34,567", "lots", "1.2.3", "£-", "1e5", "2E3", "NaN", "Infinity", "-inf"])
def test_anything_else_is_refused_with_the_forms_message(typed):
    form = AmountForm({"amount": typed})
    assert not form.is_valid()
    assert form.errors["amount"] == ["Enter an amount like 45.50"]


def test_too_many_pounds_gets_the_forms_message_not_djangos():
    form = AmountForm({"amount": "123456789"})
    assert not form.is_valid()
    assert form.errors["amount"] == ["The amount must be £50,000 or less"]
