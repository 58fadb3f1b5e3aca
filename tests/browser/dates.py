"""NHS.UK's date input in a real browser: three boxes (Day, Month, Year) in a group named by its legend."""

from __future__ import annotations

import datetime


def fill_date(page, legend: str, day: datetime.date, *, keyboard: bool = False) -> None:
    """Type `day` into the date input whose legend is `legend`; with `keyboard`, key by key as a keyboard user does
    (into each box in turn), else with Playwright's fill."""
    group = page.get_by_role("group", name=legend, exact=True)
    for label, value in (("Day", day.day), ("Month", day.month), ("Year", day.year)):
        box = group.get_by_label(label, exact=True)
        if keyboard:
            box.focus()
            box.press("Control+A")
            page.keyboard.type(str(value))
        else:
            box.fill(str(value))
