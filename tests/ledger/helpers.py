"""Small helpers for ledger tests: open accounts and post with readable keys."""

from __future__ import annotations

import datetime
import itertools

from ledger import services
from ledger.models import Account, AccountKind

DAY = datetime.date(2026, 10, 1)
_keys = itertools.count(1)


def next_key(prefix: str = "t") -> str:
    return f"{prefix}-{next(_keys)}"


def open_account(code: str, kind: AccountKind, **flags) -> Account:
    return services.account_open(code=code, name=code.replace(":", " ").title(), kind=kind, **flags)


def post(debit: Account, credit: Account, amount: int, code: str = "movement", **kwargs):
    kwargs.setdefault("effective_date", DAY)
    kwargs.setdefault("key", next_key(code))
    return services.transfer_post(
        debit_account_id=debit.pk, credit_account_id=credit.pk, amount=amount, code=code, **kwargs
    ).transfer


def reserve(debit: Account, credit: Account, amount: int, code: str = "commitment", **kwargs):
    kwargs.setdefault("effective_date", DAY)
    kwargs.setdefault("key", next_key(code))
    return services.transfer_reserve(
        debit_account_id=debit.pk, credit_account_id=credit.pk, amount=amount, code=code, **kwargs
    ).transfer


def balances(*accounts: Account) -> list[int]:
    """Posted balances, each on its normal side, freshly read from the counters."""
    return [Account.objects.get(pk=a.pk).posted_balance for a in accounts]


def database_url() -> str:
    """A URL for the database this test runs on, for child processes."""
    from urllib.parse import quote

    from django.db import connection

    s = connection.settings_dict
    host = s["HOST"] or s.get("OPTIONS", {}).get("host", "")
    auth = quote(s["USER"] or "") + (":" + quote(s["PASSWORD"]) if s["PASSWORD"] else "")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{s['NAME']}?host={quote(host)}" + (f"&port={s['PORT']}" if s["PORT"] else "")
    return f"postgresql://{auth}@{host}:{s['PORT'] or 5432}/{s['NAME']}"
