"""Fuzzing the statement importers (issue 10): whatever the bytes, parsing gives lines the database can store, or
refuses with a reason for every problem; never any other exception.

The generators take a `random.Random`, so bench/fuzz_importers.py runs them over 100,000 inputs per importer at
full speed, while these tests draw them through Hypothesis (`st.randoms`, which shrinks a failure) a few hundred
times each so the suite stays fast. Parsing never writes; only the upload-page tests at the end use the database.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import random
import string
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.models import CsvMapping, StatementImport, StatementLine
from ledger.statements_import import MAX_AMOUNT, ImportRefused, Parsed, parse_csv, parse_ofx
from tests.ledger.recon_helpers import GOLDEN, LAYOUTS

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
RNG = st.randoms(use_true_random=False)
EARLIEST, LATEST = datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)
TEXT_LIMITS = {"description": 300, "reference": 200, "bank_id": 255}
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:ofxtools.*"),  # unknown tags in mutated files
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

# --- The property ---------------------------------------------------------------------------------------------------


def storable(text: str) -> bool:
    """PostgreSQL text holds no NUL, and psycopg cannot encode a lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_refused(exc: ImportRefused) -> None:
    assert exc.problems, "refused without saying why"
    for number, reason in exc.problems:
        assert isinstance(number, int) and number >= 0, exc.problems
        assert isinstance(reason, str) and reason.strip(), exc.problems
    assert str(exc).strip()


def check_parsed(parsed: Parsed) -> None:
    assert isinstance(parsed, Parsed)
    for number, reason in parsed.bad_lines:
        assert isinstance(number, int) and number > 0 and isinstance(reason, str) and reason.strip(), parsed.bad_lines
    for line in parsed.lines:
        # Every accepted line must go into StatementLine without a database error, and through matching without a
        # date overflow (matching looks a window of days either side of the line's date).
        assert EARLIEST <= line.date <= LATEST, line
        assert line.amount != 0 and abs(line.amount) < MAX_AMOUNT, line
        assert line.running_balance is None or abs(line.running_balance) < MAX_AMOUNT, line
        for field, limit in TEXT_LIMITS.items():
            value = getattr(line, field)
            assert len(value) <= limit and storable(value), line
        assert len(line.dedupe_key) <= 300 and storable(line.dedupe_key), line


def outcome(parse) -> str:
    """'accepted' or 'refused'; anything else (an AssertionError, or the importer's own exception) propagates."""
    try:
        parsed = parse()
    except ImportRefused as exc:
        check_refused(exc)
        return "refused"
    check_parsed(parsed)
    return "accepted"


# --- Pieces of text -------------------------------------------------------------------------------------------------

TRICKY = [
    "",
    " ",
    "&",
    "&amp;",
    "&#0;",
    "&#xD800;",
    "<",
    "</NAME>",
    "<OFX>",
    '"',
    '""',
    ",",
    ";",
    "\t",
    "|",
    "\n",
    "\r\n",
    "\r",
    "£",
    "é",
    "\x00",
    "\ufeff",
    "\u2028",
    '=HYPERLINK("x")',
    "x" * 400,
]
BANKISH = string.ascii_letters + string.digits + " -:/.&'"
ODD = (
    string.printable + "£éüßñ€—\u2019\u201c\u201d…\u00a0\u200b\u202e\ufeff\u2028日本😀\x01\x1b\x7f\x85\ud800"
)  # NUL: in TRICKY
TRICKY_AMOUNTS = [
    "",
    "-",
    "0",
    "0.00",
    "-0.00",
    "0.001",
    "1.005",
    "1E30",
    "-1e27",
    "1e-30",
    "1E+999999999",
    "1e-999999999",
    "NaN",
    "sNaN",
    "-Infinity",
    "9" * 40,
    "(12.00)",
    "12.00CR",
    "12.00DR",
    "£1,234.56",
    "+5",
    ".5",
    "5.",
    "1 000,00",
    "١٢٣",
]


# `noise` is the chance of a value other than a bank's usual: generated files are clean or noisy, so a fair share of
# them parse (a file with one value ofxtools cannot read is refused whole) and the rest try the edges.


def text(rng: random.Random, max_size: int = 30, noise: float = 1.0) -> str:
    if rng.random() >= noise:
        return "".join(rng.choice(BANKISH) for _ in range(rng.randint(1, max_size))).strip() or "x"
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(TRICKY)
    alphabet = BANKISH if roll < 0.7 else ODD
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_size)))


def amount_text(rng: random.Random, noise: float = 1.0, *, thousands: bool = False) -> str:
    """Pounds and pence as a bank writes them (with thousands commas only if the format has them), or not."""
    roll = rng.random() if rng.random() < noise else 0
    if roll < 0.6:
        value = (Decimal(rng.randint(-(10**8), 10**8)) / 100).quantize(Decimal("0.01"))
        return f"{value:,}" if thousands and rng.random() < 0.2 else str(value)
    if roll < 0.7:
        return str((Decimal(rng.randint(-(10**15), 10**15)) / 100).quantize(Decimal("0.01")))
    if roll < 0.8:
        digits = "".join(rng.choice(string.digits) for _ in range(rng.randint(1, 30)))
        fraction = (
            "." + "".join(rng.choice(string.digits) for _ in range(rng.randint(0, 5))) if rng.random() < 0.7 else ""
        )
        exponent = f"e{rng.randint(-40, 40)}" if rng.random() < 0.2 else ""
        return rng.choice(["", "-", "+"]) + digits + fraction + exponent
    if roll < 0.93:
        return rng.choice(TRICKY_AMOUNTS)
    return text(rng, 12)


def some_date(rng: random.Random, noise: float = 1.0) -> datetime.date:
    if rng.random() < 0.85 or rng.random() >= noise:
        low, high = datetime.date(2020, 1, 1).toordinal(), datetime.date(2030, 12, 31).toordinal()
    else:
        low, high = datetime.date.min.toordinal(), datetime.date.max.toordinal()
    return datetime.date.fromordinal(rng.randint(low, high))


def ofx_date(rng: random.Random, noise: float = 1.0) -> str:
    roll = rng.random() if rng.random() < noise else 0
    day = some_date(rng, noise)
    stamp = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    if roll < 0.75:
        return stamp
    if roll < 0.88:
        suffixes = ["120000", "120000.000", "120000.000[0:GMT]", "235959.999[-12:X]", "000000[+14]", "99", "[+99]"]
        return stamp + rng.choice(suffixes)
    if roll < 0.95:
        return rng.choice(["", "2026", "20261301", "20260230", "99999999", "2026-10-02", "-1", "0"])
    return text(rng, 20)


# --- OFX documents --------------------------------------------------------------------------------------------------

TRNTYPES = ["CREDIT", "DEBIT", "FEE", "SRVCHG", "XFER", "OTHER", "PAYMENT", "BOGUS", ""]
OPTIONAL_TAGS = {"CHECKNUM": 12, "REFNUM": 32, "NAME": 32, "MEMO": 255}  # the spec's order and longest values
DROPPABLE = [
    "SIGNONMSGSRSV1",
    "STATUS",
    "TRNUID",
    "CURDEF",
    "BANKACCTFROM",
    "CCACCTFROM",
    "BANKTRANLIST",
    "DTSTART",
    "DTEND",
    "TRNTYPE",
    "DTPOSTED",
    "TRNAMT",
    "FITID",
    "LEDGERBAL",
    "BALAMT",
    "DTASOF",
    "STMTRS",
    "OFX",
]
CODECS = ["utf-8"] * 14 + ["cp1252", "cp1252", "latin-1", "ascii", "utf-16", "utf-8-sig"]


def ofx_transaction(rng: random.Random, noise: float):
    children = [
        ("TRNTYPE", rng.choice(TRNTYPES) if rng.random() < noise * 0.2 else rng.choice(["CREDIT", "DEBIT"])),
        ("DTPOSTED", ofx_date(rng, noise)),
        ("TRNAMT", amount_text(rng, noise)),
        ("FITID", f"F{rng.getrandbits(32)}" if rng.random() >= noise * 0.15 else text(rng, 300)),
    ]
    children += [(tag, text(rng, size, noise)) for tag, size in OPTIONAL_TAGS.items() if rng.random() < 0.5]
    if rng.random() < noise * 0.03:
        rng.shuffle(children)
    return ("STMTTRN", children)


def _status():
    return ("STATUS", [("CODE", "0"), ("SEVERITY", "INFO")])


def _wrapped(messages: str, transaction: str, body) -> tuple:
    return (messages, [(transaction, [("TRNUID", "1"), _status(), body])])


def ofx_tree(kind: str, transactions: list, *, currency: str, balance: str, start: str, end: str) -> tuple:
    """An OFX document as nested (tag, text or children): a bank or card statement, or what is not one."""
    tranlist = ("BANKTRANLIST", [("DTSTART", start), ("DTEND", end), *transactions])
    balance_tag = ("LEDGERBAL", [("BALAMT", balance), ("DTASOF", end)])
    if kind == "card":
        body = ("CCSTMTRS", [("CURDEF", currency), ("CCACCTFROM", [("ACCTID", "4111")]), tranlist, balance_tag])
        messages = _wrapped("CREDITCARDMSGSRSV1", "CCSTMTTRNRS", body)
    elif kind == "investment":
        account = ("INVACCTFROM", [("BROKERID", "broker.example"), ("ACCTID", "1")])
        tranlist = ("INVTRANLIST", [("DTSTART", start), ("DTEND", end)])
        body = ("INVSTMTRS", [("DTASOF", end), ("CURDEF", currency), account, tranlist])
        messages = _wrapped("INVSTMTMSGSRSV1", "INVSTMTTRNRS", body)
    elif kind == "request":
        account = ("BANKACCTFROM", [("BANKID", "309634"), ("ACCTID", "1"), ("ACCTTYPE", "CHECKING")])
        messages = ("BANKMSGSRQV1", [("STMTTRNRQ", [("TRNUID", "1"), ("STMTRQ", [account])])])
    else:
        account = ("BANKACCTFROM", [("BANKID", "309634"), ("ACCTID", "30963412345678"), ("ACCTTYPE", "CHECKING")])
        body = ("STMTRS", [("CURDEF", currency), account, tranlist, balance_tag])
        messages = _wrapped("BANKMSGSRSV1", "STMTTRNRS", body)
    signon = ("SIGNONMSGSRSV1", [("SONRS", [_status(), ("DTSERVER", "20261101120000"), ("LANGUAGE", "ENG")])])
    return ("OFX", [signon, messages])


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(node, *, xml: bool, drop: frozenset = frozenset(), escape: bool = True) -> str:
    tag, value = node
    if tag in drop:
        return ""
    if isinstance(value, list):
        inner = "".join(render(child, xml=xml, drop=drop, escape=escape) for child in value)
        return f"<{tag}>{inner}</{tag}>\n"
    value = _escape(value) if escape else value
    return f"<{tag}>{value}</{tag}>" if xml else f"<{tag}>{value}\n"


V1_HEADER = (
    "OFXHEADER:100\nDATA:OFXSGML\nVERSION:{version}\nSECURITY:NONE\nENCODING:{encoding}\nCHARSET:{charset}\n"
    "COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n"
)
V2_HEADER = (
    '<?xml version="1.0" encoding="{encoding}" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="{version}" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)


def _usually(rng: random.Random, good: str, bad: list[str], noise: float) -> str:
    return good if rng.random() >= noise * 0.1 else rng.choice(bad)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One time in three, up to three of: cut short, a span lost or repeated, stray or flipped bytes, a huge field."""
    if rng.random() < 0.67:
        return data
    for _ in range(rng.randint(1, 3)):
        kind, at = rng.choice(["cut", "delete", "repeat", "insert", "flip", "long"]), rng.randint(0, len(data))
        if kind == "cut":
            data = data[:at]
        elif kind == "delete":
            data = data[:at] + data[at + rng.randint(1, 64) :]
        elif kind == "repeat":
            span = rng.randint(1, 200)
            data = data[:at] + data[at : at + span] * 2 + data[at + span :]
        elif kind == "insert":
            data = data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]
        elif kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ rng.randint(1, 255)]) + data[at + 1 :]
        elif kind == "long" and rng.random() < 0.1:  # past the csv module's field size limit; rare, as it is slow
            data = data[:at] + b"x" * 140_000 + data[at:]
    return data


def ofx_file(rng: random.Random) -> bytes:
    """A bank's OFX v1 (SGML) or v2 (XML) file, then perhaps broken: tags lost, wrong encoding, mangled bytes."""
    noise = rng.choice([0.0, 0.0, 0.2, 1.0])
    roll = rng.random() if rng.random() < noise else 0
    kind = "bank" if roll < 0.8 else "card" if roll < 0.88 else "investment" if roll < 0.94 else "request"
    tree = ofx_tree(
        kind,
        [ofx_transaction(rng, noise) for _ in range(rng.randint(0, 6))],
        currency=_usually(rng, "GBP", ["USD", "", "XXXX", "gbp"], noise),
        balance=amount_text(rng, noise),
        start=ofx_date(rng, noise),
        end=ofx_date(rng, noise),
    )
    drop = frozenset(rng.sample(DROPPABLE, rng.randint(1, 2))) if rng.random() < noise * 0.15 else frozenset()
    xml = rng.random() < 0.5
    if xml:
        header = V2_HEADER.format(
            encoding=_usually(rng, "UTF-8", ["utf-8", "ISO-8859-1", "bogus", "UTF-16"], noise),
            version=_usually(rng, "220", ["200", "211", "102", "999"], noise),
        )
    else:
        header = V1_HEADER.format(
            version=_usually(rng, "102", ["103", "151", "160", "220", "1"], noise),
            encoding=_usually(rng, "USASCII", ["UTF-8", "unicode", "bogus"], noise),
            charset=_usually(rng, "1252", ["NONE", "ISO-8859-1", "UTF-8", "bogus"], noise),
        )
    document = header + render(tree, xml=xml, drop=drop, escape=rng.random() >= noise * 0.05)
    codec = rng.choice(CODECS) if rng.random() < noise else "utf-8" if xml else "cp1252"
    return mutate(rng, document.encode(codec, errors="replace"))


# --- CSV files ------------------------------------------------------------------------------------------------------

# Date formats the CSV layout form accepts.
DATE_FORMATS = ["%d/%m/%Y", "%Y-%m-%d", "%d %b %Y", "%d-%m-%y", "%m/%d/%Y", "%d.%m.%Y %H:%M", "%Y%m%d", "%d %B %Y"]
ROLES = ["date", "description", "amount", "debit", "credit", "reference", "balance", "id"]
OPTIONAL_ROLES = ("reference", "balance", "id")


def csv_layout(rng: random.Random) -> CsvMapping:
    """One of the golden banks' layouts, or a made-up one (as the layout form would accept it)."""
    if rng.random() < 0.5:
        return CsvMapping(**LAYOUTS[rng.choice(sorted(LAYOUTS))])
    names: list[str] = []
    while len(names) < len(ROLES):
        name = "".join(rng.choice("ABCdef xyz_-£é") for _ in range(rng.randint(1, 8))).strip()
        if name and name not in names:
            names.append(name)
    columns = dict(zip(ROLES, names, strict=True))
    for role in OPTIONAL_ROLES:
        if rng.random() < 0.5:
            columns[role] = ""
    if rng.random() < 0.5:
        columns["debit"] = columns["credit"] = ""
    else:
        columns["amount"] = ""
    return CsvMapping(
        name="Fuzzed", date_format=rng.choice(DATE_FORMATS), **{f"{role}_column": columns[role] for role in ROLES}
    )


def csv_cell(rng: random.Random, role: str | None, mapping: CsvMapping, paid_in: bool, noise: float) -> str:
    if role == "date":
        if rng.random() >= noise * 0.1:
            return some_date(rng, noise).strftime(mapping.date_format)
        return rng.choice([*TRICKY[:8], "31/02/2026", "2026", text(rng, 12)])
    if role in ("amount", "balance"):
        return amount_text(rng, noise, thousands=True)
    if role in ("debit", "credit"):
        wanted = (role == "credit") == paid_in
        if rng.random() >= noise * 0.1:
            return amount_text(rng, noise, thousands=True).lstrip("-") if wanted else ""
        return amount_text(rng, noise, thousands=True) if rng.random() < 0.5 else ""
    return text(rng, noise=noise)


def csv_file(rng: random.Random) -> tuple[bytes, CsvMapping]:
    """A statement in a layout, then perhaps broken: columns renamed or lost, another delimiter, mangled bytes."""
    mapping, noise = csv_layout(rng), rng.choice([0.0, 0.0, 0.2, 1.0])
    columns = {role: getattr(mapping, f"{role}_column") for role in ROLES if getattr(mapping, f"{role}_column")}
    header = [*columns.values(), *rng.sample(["Type", "Sort Code", "Account Number"], rng.randint(0, 2))]
    rng.shuffle(header)
    role_of = {name: role for role, name in columns.items()}
    rows = []
    for _ in range(rng.randint(0, 8)):
        paid_in = rng.random() < 0.5
        rows.append([csv_cell(rng, role_of.get(name), mapping, paid_in, noise) for name in header])
    if rng.random() < noise * 0.1:  # a column renamed or lost
        header = [name.upper() for name in header] if rng.random() < 0.5 else header[1:]
    delimiter = rng.choice([",", ",", ";", "\t", "|"])
    out = io.StringIO(newline="")
    writer = csv.writer(
        out,
        delimiter=delimiter,
        quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]),
        escapechar="\\",
        lineterminator=rng.choice(["\r\n", "\n", "\r"]),
    )
    try:
        writer.writerows([header, *rows])
    except csv.Error:  # QUOTE_NONE cannot write every value: join the cells as a careless exporter would
        out = io.StringIO(newline="")
        out.write("\n".join(delimiter.join(row) for row in [header, *rows]))
    codec = rng.choice(CODECS) if rng.random() < noise else "utf-8"
    data = out.getvalue().encode(codec, errors="replace")
    if codec == "utf-8" and rng.random() < 0.3:
        data = codecs.BOM_UTF8 + data
    return mutate(rng, data), mapping


NOISE_TEXT = string.printable.encode() + b'<>/&;,|"' * 8 + "£é".encode()


def any_bytes(rng: random.Random) -> bytes:
    """Noise: any bytes, bytes without NUL (which is refused first), or text-like; sometimes behind the start of
    an OFX or CSV file, so it gets past the first checks."""
    prefix = rng.choice([b"", b"", b"OFXHEADER:100\n", b"<OFX>", b'<?xml version="1.0"?>', b"Date,Narrative,"])
    size, kind = rng.randint(0, 4096), rng.random()
    if kind < 0.3:
        body = rng.randbytes(size)
    elif kind < 0.6:
        body = rng.randbytes(size).replace(b"\x00", b"\x01")
    else:
        body = bytes(rng.choice(NOISE_TEXT) for _ in range(size))
    return prefix + body


# --- The tests ------------------------------------------------------------------------------------------------------

HSBC = CsvMapping(**LAYOUTS["hsbc.csv"])
V1 = (GOLDEN / "ofx_v1.ofx").read_bytes()
HSBC_HEAD = b"Date,Narrative,Reference,Amount\n"


def sgml(kind: str) -> bytes:
    header = V1_HEADER.format(version="102", encoding="USASCII", charset="1252")
    tree = ofx_tree(kind, [], currency="GBP", balance="0.00", start="20261001", end="20261031")
    return (header + render(tree, xml=False)).encode()


def test_the_golden_files_pass_the_property():
    for name in ("lloyds.csv", "hsbc.csv", "clydesdale.csv"):
        assert outcome(lambda n=name: parse_csv((GOLDEN / n).read_bytes(), CsvMapping(**LAYOUTS[n]))) == "accepted"
    for name in ("ofx_v1.ofx", "ofx_v2.ofx"):
        assert outcome(lambda n=name: parse_ofx((GOLDEN / n).read_bytes())) == "accepted"


def test_the_property_catches_what_the_database_would_refuse():
    from ledger.statements_import import ParsedLine

    with pytest.raises(AssertionError):
        check_parsed(Parsed(lines=[ParsedLine(1, datetime.date(2026, 10, 1), 100, description="a\x00b")]))
    with pytest.raises(AssertionError):
        check_parsed(Parsed(lines=[ParsedLine(1, datetime.date(1, 1, 1), 100)]))
    with pytest.raises(AssertionError):
        check_refused(ImportRefused([(3, " ")]))


# Regressions the fuzzing found: each crashed the importer, or gave a line the database or matching could not take,
# before the fixes in ledger/statements_import.py.
REGRESSIONS = {
    "ofx amount with a huge exponent": lambda: parse_ofx(V1.replace(b"5000.00", b"1E30")),
    "ofx amount of 40 digits": lambda: parse_ofx(V1.replace(b"5000.00", b"9" * 40)),
    "ofx NUL in a name": lambda: parse_ofx(V1.replace(b"ICB FUNDING", b"ICB\x00FUNDING")),
    "ofx dated in year 1": lambda: parse_ofx(V1.replace(b"<DTPOSTED>20261002", b"<DTPOSTED>00010101")),
    "ofx dated in 9999": lambda: parse_ofx(V1.replace(b"<DTPOSTED>20261002", b"<DTPOSTED>99991231")),
    "ofx investment statement": lambda: parse_ofx(sgml("investment")),
    "csv amount with a huge exponent": lambda: parse_csv(HSBC_HEAD + b"2026-10-01,x,y,1e30\n", HSBC),
    "csv amount past the decimal range": lambda: parse_csv(HSBC_HEAD + b"2026-10-01,x,y,1E+999999999\n", HSBC),
    "csv balance with a huge exponent": lambda: parse_csv(
        b"Transaction Date,Transaction Description,Debit Amount,Credit Amount,Balance\n01/01/2020,x,,0.01,1E30\n",
        CsvMapping(**LAYOUTS["lloyds.csv"]),
    ),
    "csv header past the field limit": lambda: parse_csv(b"Date," + b"x" * 140_000 + b"\n", HSBC),
    "csv NUL in the details": lambda: parse_csv(HSBC_HEAD + b"2026-10-01,a\x00b,y,1.00\n", HSBC),
    "csv dated in year 1": lambda: parse_csv(HSBC_HEAD + b"0001-01-01,x,y,1.00\n", HSBC),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_what_the_fuzzing_found_is_refused_with_a_reason(name):
    parse = REGRESSIONS[name]
    if outcome(parse) == "accepted":  # the file was read, and the bad line is listed with its reason
        parsed = parse()
        assert parsed.bad_lines


def test_files_that_are_not_bank_statements_say_what_they_are():
    with pytest.raises(ImportRefused, match="no bank statement"):
        parse_ofx(sgml("investment"))
    with pytest.raises(ImportRefused, match="not a complete OFX statement"):
        parse_ofx(sgml("request"))
    with pytest.raises(ImportRefused, match=r"NUL character .* UTF-16"):  # it used to say the columns were missing
        parse_csv((HSBC_HEAD + b"2026-10-01,x,y,1.00\n").decode().encode("utf-16-le"), HSBC)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40)
    with pytest.raises(ImportRefused, match="This file is a PNG image, not a bank statement export"):
        parse_csv(png, HSBC)
    with pytest.raises(ImportRefused, match="This file is a PDF, not a bank statement export"):
        parse_ofx(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")


def test_an_ofx_amount_that_is_not_a_number_is_named_in_words():
    with pytest.raises(ImportRefused, match="an amount or balance is not a number"):
        parse_ofx(V1.replace(b"<TRNAMT>5000.00", b"<TRNAMT>twelve"))


def test_amounts_too_large_for_the_decimal_context_have_a_reason():
    from ledger.statements_import import pence

    for text_value in ("1e30", "1E+999999999", "-" + "9" * 40, Decimal("1E+30")):
        with pytest.raises(ValueError, match="too large"):
            pence(text_value)
    assert pence("9,999,999,999.99") == 999_999_999_999


@FUZZ
@given(st.binary(max_size=4096) | RNG.map(any_bytes))
@example(b"")
@example(b"\x00\x00")
@example(b"OFXHEADER:100\n\n<OFX>")
def test_arbitrary_bytes_are_parsed_or_refused_with_reasons(data):
    outcome(lambda: parse_ofx(data))
    outcome(lambda: parse_csv(data, HSBC))


@FUZZ
@given(RNG.map(ofx_file))
def test_plausible_ofx_with_mutations_is_parsed_or_refused_with_reasons(data):
    outcome(lambda: parse_ofx(data))


@FUZZ
@given(RNG.map(csv_file))
def test_plausible_csv_with_mutations_is_parsed_or_refused_with_reasons(file_and_layout):
    outcome(lambda: parse_csv(*file_and_layout))


def test_the_generators_reach_both_outcomes():
    """Fuzzing is worth something only if a good share of the generated files parse and a good share do not."""
    rng = random.Random(10)
    ofx, csv_ = [ofx_file(rng) for _ in range(300)], [csv_file(rng) for _ in range(300)]
    for outcomes in (
        [outcome(lambda d=d: parse_ofx(d)) for d in ofx],
        [outcome(lambda p=p: parse_csv(*p)) for p in csv_],
    ):
        assert 0.2 < outcomes.count("accepted") / len(outcomes) < 0.8, outcomes.count("accepted")


# --- Through the upload page: broken files answer 200 with the reasons and write nothing ---------------------------

BROKEN_FILES = {
    "nul.csv": HSBC_HEAD + b"2026-10-01,a\x00b,y,1.00\n",
    "huge.csv": HSBC_HEAD + b"2026-10-01,x,y,1e30\n",
    "header.csv": b"Date," + b"x" * 140_000 + b"\n",
    "utf16.csv": (HSBC_HEAD + b"2026-10-01,x,y,1.00\n").decode().encode("utf-16"),
    "ancient.ofx": V1.replace(b"<DTPOSTED>20261002", b"<DTPOSTED>00010101"),
    "cut.ofx": V1[:500],
    "investment.ofx": sgml("investment"),
    "noise.bin": bytes(range(256)) * 4,
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_broken_files_through_the_upload_page(client, name):
    from accounts.roles import Role
    from tests.factories import user_with_role
    from tests.ledger.recon_helpers import bank, mapping_for

    cash = bank()
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    response = client.post(
        reverse("ledger:reconcile-import", args=[cash.pk]),
        {
            "statement": SimpleUploadedFile(name, BROKEN_FILES[name]),
            "mapping": mapping_for("hsbc.csv").pk,
            "on_bad_lines": "refuse",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "There is a problem" in page and "The file was not imported" in page
    assert StatementImport.objects.count() == 0 and StatementLine.objects.count() == 0
