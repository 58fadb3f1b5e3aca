"""Read replicas for reports (README "Deploying on several machines").

Reports and exports read a lot and write nothing, so on a deployment with a PostgreSQL streaming replica they can
read from it and leave the primary to the work that moves money. Set DATABASE_REPLICA_URL and the selectors marked
with `reads_from_replica` (the quarterly return, recharges, the spend export) send their reads to the 'replica' alias;
everything else, and every write, stays on 'default'. Without it the 'replica' alias is the primary under another
name and nothing is routed there. A replica lags the primary by a moment, which a quarterly report does not mind;
never mark anything that reads what it has just written, or that checks a balance before moving money.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.conf import settings

REPLICA = "replica"
_reading_reports = contextvars.ContextVar("reading_reports", default=False)

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def replica_reads():
    """Inside, reads go to the replica when one is configured (a context variable: safe across threads)."""
    token = _reading_reports.set(True)
    try:
        yield
    finally:
        _reading_reports.reset(token)


def reads_from_replica(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with replica_reads():
            return func(*args, **kwargs)

    return wrapper


class ReportReplicaRouter:
    def db_for_read(self, model, **hints):
        if settings.REPORTS_READ_FROM_REPLICA and _reading_reports.get():
            return REPLICA
        return None  # the default: the primary

    def db_for_write(self, model, **hints):
        return None  # always the primary

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the same data on both: an object read from the replica may be related to one from the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # A replica copies the primary's schema: migrations run once, on the primary.
        return False if db == REPLICA else None
