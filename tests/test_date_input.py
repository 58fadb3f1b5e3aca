"""Dates are typed into NHS.UK's three boxes (day, month, year), checked by Django's DateField, and a form sent back
with an error shows what was typed, its message, and an error-summary link that lands on the day box."""

import datetime
import re

import pytest
from django import forms
from django.template import engines

from config.forms import DateField


class PaidForm(forms.Form):
    spent_on = DateField(
        label="Date paid",
        help_text="For example, 15 12 2026",
        error_messages={"required": "Enter the date you paid", "invalid": "Enter a real date, like 15 12 2026"},
    )


def boxes(day="", month="", year="") -> dict:
    return {"spent_on[day]": day, "spent_on[month]": month, "spent_on[year]": year}


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        (boxes("15", "12", "2026"), datetime.date(2026, 12, 15)),
        (boxes(" 1 ", "2", "2027"), datetime.date(2027, 2, 1)),
        (boxes("09", "03", "1984"), datetime.date(1984, 3, 9)),
        ({"spent_on": "2026-12-15"}, datetime.date(2026, 12, 15)),  # one ISO value, as scripts and older pages post
    ],
)
def test_three_boxes_make_a_date(typed, read):
    form = PaidForm(typed)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["spent_on"] == read


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (boxes(), "Enter the date you paid"),
        ({}, "Enter the date you paid"),
        (boxes("31", "2", "2026"), "Enter a real date, like 15 12 2026"),  # no 31 February
        (boxes("15", "13", "2026"), "Enter a real date, like 15 12 2026"),
        (boxes("15", "12", "26"), "Enter a real date, like 15 12 2026"),  # a year needs its 4 numbers
        (boxes("15", "", "2026"), "Enter a real date, like 15 12 2026"),
        (boxes("fifteen", "12", "2026"), "Enter a real date, like 15 12 2026"),
        (boxes("-1", "12", "2026"), "Enter a real date, like 15 12 2026"),
    ],
)
def test_boxes_that_make_no_date_get_the_field_s_own_message(typed, message):
    form = PaidForm(typed)
    assert not form.is_valid()
    assert form.errors["spent_on"] == [message]


def render(form) -> str:
    template = engines["jinja2"].from_string(
        '{% from "macros/forms.jinja" import error_summary, fields %}{{ error_summary(form) }}{{ fields(form) }}'
    )
    return template.render({"form": form})


def test_the_boxes_are_a_labelled_group_and_an_error_keeps_what_was_typed():
    page = render(PaidForm(boxes("31", "2", "2026")))
    assert re.search(r'<fieldset[^>]*role="group"', page) and "Date paid" in page
    for name, value in (("day", "31"), ("month", "2"), ("year", "2026")):
        box = re.search(rf'<input[^>]*name="spent_on\[{name}\]"[^>]*>', page).group(0)
        assert f'value="{value}"' in box and "nhsuk-input--error" in box and 'inputmode="numeric"' in box
    assert re.search(r'<input[^>]*id="id_spent_on"[^>]*name="spent_on\[day\]"', page)  # the summary's link target
    assert 'href="#id_spent_on"' in page and 'id="id_spent_on-error"' in page
    assert page.count("Enter a real date, like 15 12 2026") == 2  # in the summary and by the boxes
    for label in ("Day", "Month", "Year"):
        assert re.search(rf"<label[^>]*>\s*{label}\s*</label>", page)


def test_an_unbound_form_shows_its_initial_date_in_the_boxes():
    page = render(PaidForm(initial={"spent_on": datetime.date(2026, 12, 1)}))
    values = re.findall(r'name="spent_on\[(day|month|year)\]"[^>]*value="([^"]*)"', page)
    assert dict(values) == {"day": "1", "month": "12", "year": "2026"}
