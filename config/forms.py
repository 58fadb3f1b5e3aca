"""Form fields every app's forms share."""

from __future__ import annotations

import re

from django import forms

GROUPED_POUNDS = re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")


class PoundsField(forms.DecimalField):
    """An amount in pounds and pence, read the way people type it: "£1,250.00", "1,250" and "1250.5" are all
    £1,250.50's worth of digits. Too many digits before the point gets the form's own "max_digits" message (Django's
    default talks about digits, not pounds)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("decimal_places", 2)
        messages = kwargs.get("error_messages") or {}
        super().__init__(*args, **kwargs)
        if "max_digits" in messages and "max_whole_digits" not in messages:
            self.error_messages["max_whole_digits"] = messages["max_digits"]

    def to_python(self, value):
        if isinstance(value, str):
            text = value.strip()
            text = text[1:].lstrip() if text.startswith("£") else text
            value = text.replace(",", "") if GROUPED_POUNDS.fullmatch(text) else text
        return super().to_python(value)
