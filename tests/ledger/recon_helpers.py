"""Fixtures for reconciliation tests: a bank cash account with an income and an expense account beside it."""

from __future__ import annotations

import datetime
from pathlib import Path

from ledger.models import AccountKind, CashAccount, CsvMapping
from tests.ledger.helpers import open_account

GOLDEN = Path(__file__).parent / "golden"

LAYOUTS = {
    "lloyds.csv": {
        "name": "Lloyds",
        "date_column": "Transaction Date",
        "date_format": "%d/%m/%Y",
        "description_column": "Transaction Description",
        "debit_column": "Debit Amount",
        "credit_column": "Credit Amount",
        "balance_column": "Balance",
    },
    "hsbc.csv": {
        "name": "HSBCnet",
        "date_column": "Date",
        "date_format": "%Y-%m-%d",
        "description_column": "Narrative",
        "reference_column": "Reference",
        "amount_column": "Amount",
    },
    "clydesdale.csv": {
        "name": "Clydesdale",
        "date_column": "Posted",
        "date_format": "%d %b %Y",
        "description_column": "Details",
        "debit_column": "Paid out",
        "credit_column": "Paid in",
        "id_column": "Id",
    },
}


def mapping_for(filename: str) -> CsvMapping:
    layout = LAYOUTS[filename]
    return CsvMapping.objects.get_or_create(name=layout["name"], defaults=layout)[0]


def bank(code: str = "recon:bank", **kwargs) -> CashAccount:
    account = open_account(code, AccountKind.ASSET)
    kwargs.setdefault("reconcile_from", datetime.date(2026, 10, 1))
    return CashAccount.objects.create(account=account, name=kwargs.pop("name", "ICB bank"), **kwargs)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()
