"""Display helpers shared by pages, PDFs and exports."""

from __future__ import annotations

import datetime


def format_pence(pence: int | None) -> str:
    """1234567 -> '£12,345.67'; negative amounts keep a leading minus sign."""
    if pence is None:
        return ""
    sign = "-" if pence < 0 else ""
    pounds, pennies = divmod(abs(int(pence)), 100)
    return f"{sign}£{pounds:,}.{pennies:02d}"


def format_date(value: datetime.date | datetime.datetime | None) -> str:
    """NHS style: '4 March 2026'."""
    if value is None:
        return ""
    return f"{value.day} {value:%B %Y}"
