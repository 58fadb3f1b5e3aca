"""BACS Standard 18 payment files (direct credits with a contra), and the bank bulk-payment CSV.

Fixed-width records: 80-character labels (VOL1, HDR1, HDR2, UHL1 ... EOF1, EOF2, UTL1) around 100-character
data records. Amounts are pence, 11 digits, zero-filled; names and references are upper case in the BACS
character set, 18 characters. The app only produces the file; a bureau or Bacstel-IP submits it. The same
run always gives the same bytes, so a re-run can be checked against the first.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import re

from config.exports import safe_cell

DIRECT_CREDIT = "99"
CONTRA_DEBIT = "17"
_NOT_BACS = re.compile(r"[^A-Z0-9 .&/\-]")


@dataclasses.dataclass(frozen=True)
class Originator:
    service_user_number: str  # 6 digits, issued by the sponsoring bank
    name: str
    sort_code: str
    account_number: str


@dataclasses.dataclass(frozen=True)
class Credit:
    sort_code: str
    account_number: str
    account_name: str
    amount_pence: int
    reference: str


def bacs_text(value: str, width: int) -> str:
    """Upper case, BACS characters only, cut or padded to `width`."""
    return _NOT_BACS.sub(" ", value.upper())[:width].ljust(width)


def digits(value: str, width: int) -> str:
    cleaned = re.sub(r"\D", "", value)
    if len(cleaned) != width:
        raise ValueError(f"expected {width} digits, got {value!r}")
    return cleaned


def julian(day: datetime.date) -> str:
    """BACS dates are ' YYDDD' (a space, the year, the day of the year)."""
    return f" {day:%y}{day.timetuple().tm_yday:03d}"


def _record(fields: list[str], width: int) -> str:
    line = "".join(fields)
    if len(line) != width:
        raise AssertionError(f"record is {len(line)} characters, not {width}: {line!r}")
    return line


def _file_labels(kind: str, sun: str, serial: str, day: datetime.date) -> list[str]:
    """HDR1/HDR2 before the records and EOF1/EOF2 after them carry the same fields."""
    return [
        _record([f"{kind}1", "A", sun, "S", " ", serial, "000100010001", julian(day), julian(day), "000000",
                 " " * 20, " " * 11], 80),
        _record([f"{kind}2", "F", "02000", "00100", " " * 35, "00", " " * 28], 80),
    ]  # fmt: skip


def standard18(*, originator: Originator, credits: list[Credit], processing_day: datetime.date, serial: str) -> bytes:
    sun = digits(originator.service_user_number, 6)
    serial = digits(serial, 6)
    origin_sort, origin_account = digits(originator.sort_code, 6), digits(originator.account_number, 8)
    lines = [
        _record(["VOL1", serial, " ", " " * 20, " " * 6, sun.ljust(14), " " * 28, "1"], 80),
        *_file_labels("HDR", sun, serial, processing_day),
        _record(
            ["UHL1", julian(processing_day), "999999", "    ", "00", "0", "000", " " * 6, "1DAILY  ", "000", " " * 37],
            80,
        ),
    ]
    total = 0
    for credit in credits:
        if credit.amount_pence <= 0 or credit.amount_pence >= 10**11:
            raise ValueError("each credit must be between 1p and £999,999,999.99")
        total += credit.amount_pence
        lines.append(
            _record(
                [
                    digits(credit.sort_code, 6),
                    digits(credit.account_number, 8),
                    "0",
                    DIRECT_CREDIT,
                    origin_sort,
                    origin_account,
                    " " * 4,
                    f"{credit.amount_pence:011d}",
                    bacs_text(originator.name, 18),
                    bacs_text(credit.reference, 18),
                    bacs_text(credit.account_name, 18),
                ],
                100,
            )
        )
    lines.append(
        _record(
            [
                origin_sort,
                origin_account,
                "0",
                CONTRA_DEBIT,
                origin_sort,
                origin_account,
                " " * 4,
                f"{total:011d}",
                bacs_text("CONTRA", 18),
                bacs_text(f"PAYMENT RUN {serial}", 18),
                bacs_text(originator.name, 18),
            ],
            100,
        )
    )
    count = f"{len(credits):07d}"
    lines += [
        *_file_labels("EOF", sun, serial, processing_day),
        _record(["UTL1", f"{total:013d}", f"{total:013d}", "0000001", count, " " * 10, " " * 26], 80),
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def bulk_payment_csv(credits: list[Credit], *, payment_date: datetime.date) -> bytes:
    """A bank bulk-payment upload: one row a payee, amounts in pounds, UTF-8 with a BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["Sort code", "Account number", "Account name", "Amount", "Reference", "Payment date"])
    for credit in credits:
        writer.writerow(
            [
                digits(credit.sort_code, 6),
                digits(credit.account_number, 8),
                safe_cell(credit.account_name),
                f"{credit.amount_pence // 100}.{credit.amount_pence % 100:02d}",
                safe_cell(credit.reference),
                payment_date.isoformat(),
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
