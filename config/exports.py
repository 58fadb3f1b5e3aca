"""Table downloads as CSV or Excel (XLSX) that open cleanly and cannot smuggle formulas (OWASP CSV injection).

A view defines its table once (header and rows of str, int, Decimal pounds or dates) and `table_response`
answers it in the format asked for. Money goes out as Decimal pounds in columns headed "(£)".
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.http import Http404, HttpResponse
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("csv", "xlsx")
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONEY_FORMAT = "#,##0.00"
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
_UNSAFE_SHEET_TITLE = re.compile(r"[\[\]:*?/\\]")


def pounds(pence: int) -> Decimal:
    """Exact pounds with two decimal places (1234 -> Decimal("12.34"))."""
    return Decimal(int(pence)).scaleb(-2)


def _is_number(value) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def safe_cell(value) -> str | int | Decimal:
    """Numbers stay numbers; text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if _is_number(value):
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.write("\ufeff")  # the BOM tells Excel the file is UTF-8
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return response


def _xlsx_cell(sheet, value):
    if _is_number(value):
        if isinstance(value, int):
            return value
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = MONEY_FORMAT
        return cell
    if value is None or isinstance(value, datetime.date):
        return value  # openpyxl writes dates as real dates, formatted yyyy-mm-dd
    text = str(value)
    if not text.startswith(FORMULA_PREFIXES):
        return text
    # openpyxl would store "=..." as a formula; force a plain string, and mark it quote-prefixed so Excel keeps
    # it text even when someone edits the cell. The value itself stays exactly as recorded.
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    cell.quotePrefix = True
    return cell


def xlsx_response(filename: str, header: Sequence[str], rows: Iterable[Sequence], *, sheet_title: str) -> HttpResponse:
    # Write-only mode streams rows to a temporary file, so a long export does not hold every cell in memory.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_UNSAFE_SHEET_TITLE.sub(" ", sheet_title)[:31] or "Export")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for title in header:
        cell = WriteOnlyCell(sheet, value=str(title))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def table_response(
    fmt: str, filename_stem: str, header: Sequence[str], rows: Iterable[Sequence], *, sheet_title: str | None = None
) -> HttpResponse:
    """One table, answered as `fmt` ("csv" or "xlsx"); any other format is not found."""
    if fmt not in FORMATS:
        raise Http404
    filename = f"{_UNSAFE_FILENAME.sub('-', filename_stem).strip('-') or 'export'}.{fmt}"
    if fmt == "csv":
        return csv_response(filename, header, rows)
    return xlsx_response(filename, header, rows, sheet_title=sheet_title or filename_stem)
