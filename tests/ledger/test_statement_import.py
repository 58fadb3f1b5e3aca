"""Importing bank statements: golden OFX v1/v2 and three bank CSV layouts, idempotency, and broken files."""

from __future__ import annotations

import datetime

import pytest

from accounts.roles import Role
from ledger.models import StatementImport, StatementLine
from ledger.statements_import import SKIP, ImportRefused, statement_import
from tests.factories import user_with_role
from tests.ledger.recon_helpers import bank, golden, mapping_for

pytestmark = pytest.mark.django_db

OCTOBER = [
    (datetime.date(2026, 10, 2), 500_000),
    (datetime.date(2026, 10, 5), -123_456),
    (datetime.date(2026, 10, 31), -750),
]


@pytest.fixture
def officer():
    return user_with_role(Role.FINANCE_OFFICER)


def lines(cash):
    return list(StatementLine.objects.filter(cash_account=cash).order_by("date", "id").values_list("date", "amount"))


@pytest.mark.parametrize("filename", ["ofx_v1.ofx", "lloyds.csv", "hsbc.csv", "clydesdale.csv"])
def test_golden_files_give_the_same_three_lines(filename, officer):
    cash = bank()
    mapping = mapping_for(filename) if filename.endswith(".csv") else None
    record = statement_import(
        cash_account=cash, filename=filename, data=golden(filename), acting_user=officer, mapping=mapping
    )
    assert (record.lines_added, record.lines_already_imported, record.bad_lines) == (3, 0, [])
    assert lines(cash) == OCTOBER


def test_ofx_v2_keeps_fitid_reference_and_text_as_given(officer):
    cash = bank()
    statement_import(cash_account=cash, filename="v2.ofx", data=golden("ofx_v2.ofx"), acting_user=officer)
    first, second = StatementLine.objects.filter(cash_account=cash).order_by("date")
    assert (first.bank_id, first.reference, first.amount, first.description) == (
        "V2-0001",
        "FUND-OCT",
        500_000,
        "ICB FUNDING",
    )
    assert (second.amount, second.date) == (-25_000, datetime.date(2026, 10, 6))


def test_lloyds_keeps_the_running_balance(officer):
    cash = bank()
    statement_import(
        cash_account=cash,
        filename="l.csv",
        data=golden("lloyds.csv"),
        acting_user=officer,
        mapping=mapping_for("lloyds.csv"),
    )
    assert list(StatementLine.objects.order_by("date").values_list("running_balance", flat=True)) == [
        500_000,
        376_544,
        375_794,
    ]


@pytest.mark.parametrize("filename", ["ofx_v1.ofx", "lloyds.csv", "hsbc.csv", "clydesdale.csv"])
def test_reimporting_the_same_file_adds_nothing(filename, officer):
    cash = bank()
    mapping = mapping_for(filename) if filename.endswith(".csv") else None
    statement_import(cash_account=cash, filename=filename, data=golden(filename), acting_user=officer, mapping=mapping)
    again = statement_import(
        cash_account=cash, filename=filename, data=golden(filename), acting_user=officer, mapping=mapping
    )
    assert (again.lines_added, again.lines_already_imported) == (0, 3)
    assert lines(cash) == OCTOBER


def test_an_overlapping_file_adds_only_the_new_lines(officer):
    cash = bank()
    mapping = mapping_for("lloyds.csv")
    first_two = b"\n".join(golden("lloyds.csv").split(b"\n")[:3]) + b"\n"
    statement_import(cash_account=cash, filename="a.csv", data=first_two, acting_user=officer, mapping=mapping)
    record = statement_import(
        cash_account=cash, filename="b.csv", data=golden("lloyds.csv"), acting_user=officer, mapping=mapping
    )
    assert (record.lines_added, record.lines_already_imported) == (1, 2)
    assert lines(cash) == OCTOBER


def refused(cash, officer, data, filename="bad.csv", mapping="lloyds.csv"):
    with pytest.raises(ImportRefused) as caught:
        statement_import(
            cash_account=cash, filename=filename, data=data, acting_user=officer, mapping=mapping_for(mapping)
        )
    assert StatementLine.objects.count() == 0 and StatementImport.objects.count() == 0
    return caught.value.problems


def test_a_truncated_ofx_file_is_refused_whole(officer):
    cash = bank()
    problems = refused(cash, officer, golden("ofx_v1.ofx")[:700], filename="cut.ofx")
    assert problems[0][0] == 0 and "not a complete OFX statement" in problems[0][1]


def test_a_truncated_ofx_v2_file_is_refused_whole(officer):
    cash = bank()
    problems = refused(cash, officer, golden("ofx_v2.ofx")[:-300], filename="cut.ofx")
    assert "not a complete OFX statement" in problems[0][1]


def test_a_truncated_csv_names_the_cut_line(officer):
    cash = bank()
    data = golden("lloyds.csv").rstrip(b"\n")[:-30]
    assert refused(cash, officer, data) == [(4, "has 4 columns, not 8: is the file cut short?")]


def test_the_wrong_encoding_is_refused_with_the_line(officer):
    cash = bank()
    data = golden("lloyds.csv").replace(b"ACCOUNT FEE", "CAFÉ FEE".encode("cp1252"))
    problems = refused(cash, officer, data)
    assert problems == [(4, "The file is not UTF-8 text. Save or export it from the bank as UTF-8")]


def test_the_wrong_columns_name_what_is_missing(officer):
    cash = bank()
    problems = refused(cash, officer, golden("hsbc.csv"))
    assert problems[0][0] == 1
    assert "no column called 'Transaction Date' (the Lloyds layout)" in problems[0][1]
    assert "'Narrative'" in problems[0][1]


def test_duplicate_lines_inside_a_file_are_named(officer):
    cash = bank()
    rows = golden("clydesdale.csv").split(b"\n")
    data = b"\n".join([*rows[:3], rows[2], *rows[3:]])
    assert refused(cash, officer, data, mapping="clydesdale.csv") == [(4, "repeats line 3")]


def test_bad_values_are_all_listed_then_skipped_on_request(officer):
    cash = bank()
    data = (
        b"Date,Narrative,Reference,Amount\n"
        b"2026-10-02,ICB FUNDING,FUND-OCT,5000.00\n"
        b"31/10/2026,WRONG DATE,,1.00\n"
        b"2026-10-03,NO MONEY,,abc\n"
        b"2026-10-04,HALF PENNY,,1.005\n"
    )
    problems = refused(cash, officer, data, mapping="hsbc.csv")
    assert [n for n, _ in problems] == [3, 4, 5]
    assert "'31/10/2026' is not a date like 2026-10-31" in problems[0][1]
    assert "'abc' is not an amount of money" in problems[1][1]
    record = statement_import(
        cash_account=cash,
        filename="x.csv",
        data=data,
        acting_user=officer,
        mapping=mapping_for("hsbc.csv"),
        on_bad_lines=SKIP,
    )
    assert record.lines_added == 1 and [n for n, _ in record.bad_lines] == [3, 4, 5]
    assert lines(cash) == [(datetime.date(2026, 10, 2), 500_000)]


@pytest.mark.parametrize(
    "data", [b"", b"\xef\xbb\xbf", b"OFXHEADER:100\n\n<OFX>", b"\x00\xff\xfe garbage", b"a,b\n1,2\n"]
)
def test_nonsense_is_refused_not_crashed(data, officer):
    cash = bank()
    with pytest.raises(ImportRefused):
        statement_import(
            cash_account=cash, filename="x", data=data, acting_user=officer, mapping=mapping_for("hsbc.csv")
        )
