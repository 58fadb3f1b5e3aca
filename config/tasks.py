"""Periodic jobs, declared in one place. The tasks live in their own apps; this file only schedules them.

Procrastinate defers a periodic task once per schedule slot across all workers (the slot is recorded
in its own table), so running several workers never runs the same tick twice.
"""

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from procrastinate.contrib.django import app

from budgets import tasks as budget_tasks
from ledger import tasks as ledger_tasks


@app.task(name="config.clear_expired_sessions", queue="maintenance")
def clear_expired_sessions(timestamp: int | None = None) -> int:
    """Sessions hold who is signed in; expired ones are useless and should not linger."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


@app.task(
    name="config.retry_stalled_jobs",
    queue="maintenance",
    queueing_lock="config.retry_stalled_jobs",
    pass_context=True,
)
async def retry_stalled_jobs(context, timestamp: int | None = None) -> int:
    """A worker killed mid-job (kill -9, a lost machine) leaves its job 'doing' for ever: Procrastinate does not
    retry it by itself. Once the worker has missed its heartbeats for PROCRASTINATE_STALLED_SECONDS, put the job back
    in the queue for any live worker. Our jobs are safe to run again (each effect is keyed or skipped when done)."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings.PROCRASTINATE_STALLED_SECONDS)
    for job in stalled:
        await manager.retry_job(job)
    return len(stalled)


SCHEDULE = [
    ("17 3 * * *", "clear-expired-sessions", clear_expired_sessions),
    ("*/5 * * * *", "ledger-expire-pending", ledger_tasks.expire_pending),
    ("30 2 * * *", "ledger-verify", ledger_tasks.verify),
    ("0 4 1 * *", "budgets-statements-monthly", budget_tasks.statements_monthly),  # last month's statements
    ("0 6 * * *", "budgets-monitoring", budget_tasks.monitoring_daily),
    ("30 5 * * *", "budgets-stripe-statements", budget_tasks.stripe_statements_daily),  # yesterday's, before work
    (settings.PROCRASTINATE_STALLED_CRON, "retry-stalled-jobs", retry_stalled_jobs),  # every minute by default
]

for cron, periodic_id, task in SCHEDULE:
    app.periodic(cron=cron, periodic_id=periodic_id)(task)
