"""Ledger jobs for the worker; their schedules are in config/tasks.py."""

import logging

from procrastinate.contrib.django import app

from ledger import services
from ledger.verification import ledger_verify

logger = logging.getLogger("phb.ledger")


@app.task(name="ledger.expire_pending", queue="ledger", queueing_lock="ledger.expire_pending")
def expire_pending(timestamp: int | None = None) -> int:
    return services.pending_expire_due()


@app.task(name="ledger.verify", queue="ledger", queueing_lock="ledger.verify")
def verify(timestamp: int | None = None) -> bool:
    report = ledger_verify()
    if not report.ok:
        logger.error("ledger drift on %d counters; run manage.py ledger_verify for details", len(report.drifted))
    return report.ok
