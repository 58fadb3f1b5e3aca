"""Budget jobs for the worker; their schedules are in config/tasks.py."""

import logging

from procrastinate.contrib.django import app

from budgets import monitoring

logger = logging.getLogger("phb.budgets")


@app.task(name="budgets.monitoring_daily", queue="budgets", queueing_lock="budgets.monitoring_daily")
def monitoring_daily(timestamp: int | None = None) -> dict[str, int]:
    """Reviews and returns scheduled, late returns escalated, surplus checked: idempotent, so a second run or a
    late one changes nothing that the first already did."""
    counts = monitoring.monitoring_run()
    logger.info("monitoring: %s", counts)
    return counts
