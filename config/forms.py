"""Form fields every app's forms share."""

from __future__ import annotations

import datetime
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
            if any(letter in value for letter in "eEnN"):  # "1e5", "NaN", "Infinity": Decimal reads them, people don't
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class NHSDateInput(forms.Widget):
    """NHS.UK's date input: day, month and year boxes, the design system's pattern for dates people know or can
    read off a letter (a browser's date picker is hard to type into and to use with a screen reader). The boxes post
    `name[day]`, `name[month]` and `name[year]`; they reach the field as an ISO date, so DateField's own checks and
    messages apply. A single ISO value posted under the field's own name (older pages, scripts) is read as before."""

    PARTS = ("day", "month", "year")
    NOT_A_DATE = "not a date"  # what three boxes that cannot make a date become: the field's "invalid" message

    def _keys(self, name: str) -> list[str]:
        return [f"{name}[{part}]" for part in self.PARTS]

    def value_from_datadict(self, data, files, name):
        keys = self._keys(name)
        if not any(key in data for key in keys):
            return data.get(name)
        day, month, year = (str(data.get(key, "")).strip() for key in keys)
        if not (day or month or year):
            return ""
        if not (day.isdigit() and month.isdigit() and year.isdigit() and len(year) == 4):
            return self.NOT_A_DATE
        return f"{year}-{int(month):02d}-{int(day):02d}"

    def value_omitted_from_data(self, data, files, name):
        return name not in data and not any(key in data for key in self._keys(name))

    def boxes(self, bound_field) -> dict[str, str]:
        """What each box shows: what was typed, on a form sent back with errors; else the field's date."""
        name, data = bound_field.html_name, bound_field.form.data
        if bound_field.form.is_bound and any(key in data for key in self._keys(name)):
            return dict(zip(self.PARTS, (str(data.get(key, "")) for key in self._keys(name)), strict=True))
        value = bound_field.value()
        if isinstance(value, str):
            try:
                value = datetime.date.fromisoformat(value)
            except ValueError:
                value = None
        if isinstance(value, datetime.date):
            return {"day": str(value.day), "month": str(value.month), "year": str(value.year)}
        return dict.fromkeys(self.PARTS, "")


class DateField(forms.DateField):
    """A date typed into NHS.UK's three boxes (NHSDateInput)."""

    widget = NHSDateInput
