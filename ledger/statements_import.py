"""Bank statement import: OFX (v1 SGML and v2 XML, via ofxtools) and CSV with a saved column mapping per bank.

Parsing never writes. `lines_record` writes a parsed file in one transaction, so nothing is ever half-imported:
- idempotent: each line gets a key, the bank's transaction id (FITID) where it gives one, otherwise date, amount,
  description and running balance; a line whose key is already stored for the account is counted, not added;
- a file with bad lines is refused whole (`ImportRefused`, every bad line with its reason) unless the finance
  officer chose to skip them, in which case the good lines go in and the bad ones are listed on the import.

Problems with the file itself (not UTF-8, truncated, missing columns) always refuse it whole.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from django.db import transaction

from ledger.models import CashAccount, CsvMapping, StatementImport, StatementLine, StatementSource

MAX_LINES = 200_000
MAX_AMOUNT = 10**12
# Lines dated outside these are refused: year 1 or 9999 overflow the matching window's date arithmetic.
EARLIEST_DATE, LATEST_DATE = datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)
NOT_TEXT = "The file has a NUL character in it, so it is not a text export (perhaps UTF-16): export it again as UTF-8"
REFUSE = "refuse"
SKIP = "skip"


@dataclasses.dataclass(frozen=True)
class ParsedLine:
    line_number: int
    date: datetime.date
    amount: int
    description: str = ""
    reference: str = ""
    bank_id: str = ""
    running_balance: int | None = None

    @property
    def dedupe_key(self) -> str:
        if self.bank_id:
            return "id:" + self.bank_id[:280]
        balance = "" if self.running_balance is None else str(self.running_balance)
        text = f"{self.date.isoformat()}|{self.amount}|{self.description}|{balance}"
        return "k:" + hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class Parsed:
    lines: list[ParsedLine] = dataclasses.field(default_factory=list)
    bad_lines: list[tuple[int, str]] = dataclasses.field(default_factory=list)


class ImportRefused(Exception):
    """The file was refused whole; `problems` lists (line number or 0 for the whole file, reason)."""

    def __init__(self, problems: Sequence[tuple[int, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(_describe(n, reason) for n, reason in self.problems[:5]))


def _describe(line_number: int, reason: str) -> str:
    return f"Line {line_number}: {reason}" if line_number else reason


# --- Amounts and dates --------------------------------------------------------------------------------------------

_AMOUNT_JUNK = re.compile(r"[£,\s]")


def pence(text: str | Decimal) -> int:
    """'1,234.50' → 123450; '(12.00)' and '-12.00' → -1200. Raises ValueError with a reason."""
    if isinstance(text, Decimal):
        value = text
    else:
        raw = _AMOUNT_JUNK.sub("", text.strip())
        negative = raw.startswith("(") and raw.endswith(")")
        raw = raw.strip("()")
        if raw.upper().endswith("CR"):
            raw = raw[:-2]
        elif raw.upper().endswith("DR"):
            raw, negative = raw[:-2], not negative
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"'{text.strip()[:40]}' is not an amount of money") from None
        if negative:
            value = -value
    if not value.is_finite():
        raise ValueError(f"'{text}' is not an amount in pounds and pence")
    # Compared before rounding: quantize() of a huge exponent raises decimal.InvalidOperation, not ValueError.
    if value.copy_abs() >= MAX_AMOUNT // 100:
        raise ValueError(f"'{text}' is too large")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"'{text}' is not an amount in pounds and pence")
    result = int(value * 100)
    if abs(result) >= MAX_AMOUNT:
        raise ValueError(f"'{text}' is too large")
    return result


def _date(text: str, fmt: str) -> datetime.date:
    try:
        day = datetime.datetime.strptime(text.strip(), fmt).date()
    except ValueError:
        example = datetime.date(2026, 10, 31).strftime(fmt)
        raise ValueError(f"'{text.strip()[:40]}' is not a date like {example}") from None
    return _plausible(day)


def _plausible(day: datetime.date) -> datetime.date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"is dated {day.isoformat()}, which cannot be right for a bank statement")
    return day


# Files people pick by mistake, by their first bytes: said by name rather than by what is wrong inside them.
NOT_A_STATEMENT = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF",
    b"PK\x03\x04": "a spreadsheet or zip file (save the sheet as CSV)",
    b"\xd0\xcf\x11\xe0": "an old Excel or Word file (save it as CSV)",
}
NOT_AN_EXPORT = "This file is {kind}, not a bank statement export: download the statement as CSV or OFX"


def _refuse_nul(data: bytes) -> None:
    for magic, kind in NOT_A_STATEMENT.items():
        if data.startswith(magic):
            raise ImportRefused([(0, NOT_AN_EXPORT.format(kind=kind))])
    # PostgreSQL text cannot hold NUL, and no bank's text export has one.
    at = data.find(b"\x00")
    if at >= 0:
        raise ImportRefused([(data[:at].count(b"\n") + 1, NOT_TEXT)])


def _decode(data: bytes) -> str:
    _refuse_nul(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRefused([(line, "The file is not UTF-8 text. Save or export it from the bank as UTF-8")]) from None


def _check_duplicates(parsed: Parsed) -> Parsed:
    seen: dict[str, int] = {}
    kept = []
    for line in parsed.lines:
        first = seen.setdefault(line.dedupe_key, line.line_number)
        if first != line.line_number:
            parsed.bad_lines.append((line.line_number, f"repeats line {first}"))
        else:
            kept.append(line)
    parsed.lines = kept
    parsed.bad_lines.sort()
    return parsed


# --- CSV ----------------------------------------------------------------------------------------------------------


def parse_csv(data: bytes, mapping: CsvMapping) -> Parsed:
    text = _decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as exc:  # e.g. a header past the csv module's field size limit
        raise ImportRefused([(1, f"The file is not valid CSV ({exc})")]) from None
    if not any(header):
        raise ImportRefused([(0, "The file is empty")])
    wanted = {
        "date": mapping.date_column,
        "description": mapping.description_column,
        "amount": mapping.amount_column,
        "debit": mapping.debit_column,
        "credit": mapping.credit_column,
        "reference": mapping.reference_column,
        "balance": mapping.balance_column,
        "id": mapping.id_column,
    }
    positions = {}
    for role, column in wanted.items():
        if not column:
            continue
        if column.strip() not in header:
            found = ", ".join(f"'{name}'" for name in header if name)[:300]
            raise ImportRefused(
                [(1, f"The file has no column called '{column}' (the {mapping.name} layout). Columns found: {found}")]
            )
        positions[role] = header.index(column.strip())
    parsed = Parsed()
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(parsed.lines) + len(parsed.bad_lines) >= MAX_LINES:
                raise ImportRefused([(number, f"The file has more than {MAX_LINES:,} lines; split it")])
            if len(row) < len(header):
                parsed.bad_lines.append((number, f"has {len(row)} columns, not {len(header)}: is the file cut short?"))
                continue
            try:
                parsed.lines.append(_csv_line(number, row, positions, mapping))
            except ValueError as exc:
                parsed.bad_lines.append((number, str(exc)))
    except csv.Error as exc:
        raise ImportRefused([(reader.line_num, f"The file is not valid CSV ({exc})")]) from None
    return _check_duplicates(parsed)


def _csv_line(number: int, row: list[str], positions: dict[str, int], mapping: CsvMapping) -> ParsedLine:
    def cell(role: str) -> str:
        return row[positions[role]].strip() if role in positions else ""

    if "amount" in positions:
        if not cell("amount"):
            raise ValueError("has no amount")
        amount = pence(cell("amount"))
    else:
        debit, credit = cell("debit"), cell("credit")
        if bool(debit) == bool(credit):
            raise ValueError("needs an amount in exactly one of the money out and money in columns")
        amount = pence(credit) if credit else -abs(pence(debit))
    if amount == 0:
        raise ValueError("has an amount of zero")
    balance = cell("balance")
    return ParsedLine(
        line_number=number,
        date=_date(cell("date"), mapping.date_format),
        amount=amount,
        description=cell("description")[:300],
        reference=cell("reference")[:200],
        bank_id=cell("id")[:255],
        running_balance=pence(balance) if balance else None,
    )


# --- OFX ----------------------------------------------------------------------------------------------------------


def parse_ofx(data: bytes) -> Parsed:
    from ofxtools.models import CCSTMTRS, STMTRS
    from ofxtools.Parser import OFXTree

    _refuse_nul(data)
    tree = OFXTree()
    try:
        tree.parse(io.BytesIO(data))
        ofx = tree.convert()
        # Only bank and card statements have bank transactions (ofxtools recurses looking in an investment one).
        statements = [statement for statement in ofx.statements if isinstance(statement, (STMTRS, CCSTMTRS))]
    except Exception as exc:  # ofxtools raises many kinds; every one means the file cannot be read
        reason = str(exc).splitlines()[0][:200].rstrip(" :") if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ArithmeticError):  # decimal's own text is "[<class 'decimal.ConversionSyntax'>]"
            reason = "an amount or balance is not a number"
        raise ImportRefused([(0, f"This is not a complete OFX statement: {reason}")]) from None
    if not statements:
        raise ImportRefused([(0, "The OFX file has no bank statement in it")])
    parsed = Parsed()
    number = 0
    for statement in statements:
        for trn in statement.banktranlist or []:
            number += 1
            try:
                amount = pence(trn.trnamt)
                if amount == 0:
                    raise ValueError("has an amount of zero")
                parsed.lines.append(
                    ParsedLine(
                        line_number=number,
                        date=_plausible(trn.dtposted.date()),
                        amount=amount,
                        description=(trn.name or trn.memo or "")[:300],
                        reference=(trn.refnum or trn.checknum or "")[:200],
                        bank_id=(trn.fitid or "")[:255],
                    )
                )
            except (ValueError, TypeError, AttributeError) as exc:
                parsed.bad_lines.append((number, f"transaction {trn.fitid or number}: {exc}"))
    return _check_duplicates(parsed)


# --- Writing ------------------------------------------------------------------------------------------------------


def statement_import(
    *,
    cash_account: CashAccount,
    filename: str,
    data: bytes,
    acting_user,
    on_bad_lines: str = REFUSE,
    mapping: CsvMapping | None = None,
) -> StatementImport:
    """Parse and record a bank statement file (OFX if it looks like one, else CSV with the mapping)."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf").lstrip().upper()
    if head.startswith(b"OFXHEADER") or b"<OFX>" in head or head.startswith(b"<?XML"):
        source, parsed = StatementSource.OFX, parse_ofx(data)
    else:
        mapping = mapping or cash_account.csv_mapping
        if mapping is None:
            raise ImportRefused([(0, "Choose the bank's CSV layout for this file")])
        source, parsed = StatementSource.CSV, parse_csv(data, mapping)
    return lines_record(
        cash_account=cash_account,
        source=source,
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        parsed=parsed,
        acting_user=acting_user,
        on_bad_lines=on_bad_lines,
    )


def lines_record(
    *,
    cash_account: CashAccount,
    source: str,
    filename: str,
    sha256: str,
    parsed: Parsed,
    acting_user,
    on_bad_lines: str = REFUSE,
) -> StatementImport:
    if parsed.bad_lines and on_bad_lines != SKIP:
        raise ImportRefused(parsed.bad_lines)
    if not parsed.lines and not parsed.bad_lines:
        raise ImportRefused([(0, "The file has no statement lines in it")])
    with transaction.atomic():
        # One import at a time per account, so two people importing the same file cannot race.
        CashAccount.objects.select_for_update().filter(pk=cash_account.pk).first()
        keys = [line.dedupe_key for line in parsed.lines]
        existing: set[str] = set()
        for start in range(0, len(keys), 10_000):
            existing.update(
                StatementLine.objects.filter(
                    cash_account=cash_account, dedupe_key__in=keys[start : start + 10_000]
                ).values_list("dedupe_key", flat=True)
            )
        new = [line for line in parsed.lines if line.dedupe_key not in existing]
        record = StatementImport.objects.create(
            cash_account=cash_account,
            source=source,
            filename=filename[:255],
            sha256=sha256,
            lines_added=len(new),
            lines_already_imported=len(parsed.lines) - len(new),
            bad_lines=[list(item) for item in parsed.bad_lines],
            imported_by=acting_user,
        )
        StatementLine.objects.bulk_create(
            (
                StatementLine(
                    cash_account=cash_account,
                    statement_import=record,
                    date=line.date,
                    amount=line.amount,
                    description=line.description,
                    reference=line.reference,
                    bank_id=line.bank_id,
                    running_balance=line.running_balance,
                    dedupe_key=line.dedupe_key,
                    line_number=line.line_number,
                )
                for line in new
            ),
            batch_size=5_000,
        )
    return record
