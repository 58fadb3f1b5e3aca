"""Budget jobs for the worker; their schedules are in config/tasks.py."""

import datetime
import logging

from django.utils import timezone
from procrastinate.contrib.django import app

from accounts.models import scheduled_jobs_user
from budgets import cash, monitoring, statement_batch, statements
from budgets.models import Budget
from ledger import matching
from ledger.exceptions import LedgerError
from ledger.models import CashAccount, StatementSource
from ledger.statements_import import ImportRefused

logger = logging.getLogger("phb.budgets")


@app.task(name="budgets.monitoring_daily", queue="budgets", queueing_lock="budgets.monitoring_daily")
def monitoring_daily(timestamp: int | None = None) -> dict[str, int]:
    """Reviews and returns scheduled, late returns escalated, surplus checked: idempotent, so a second run or a
    late one changes nothing that the first already did."""
    counts = monitoring.monitoring_run()
    logger.info("monitoring: %s", counts)
    return counts


# --- Statements (budgets/statements.py, budgets/statement_batch.py) ---------------------------------------------


@app.task(name="budgets.statement_request", queue="statements", retry=2)
def statement_request(*, budget_id: int, period_start: str, period_end: str, large_print: bool = False) -> int:
    """A statement someone asked for on its page: rendered here, never in their web request."""
    statement = statements.statement_generate(
        budget=Budget.objects.get(pk=budget_id),
        period_start=datetime.date.fromisoformat(period_start),
        period_end=datetime.date.fromisoformat(period_end),
        large_print=large_print,
        notify=True,
    )
    statements.statement_notify(statement=statement)  # made earlier by someone else and not yet announced
    return statement.pk


@app.task(name="budgets.statements_monthly", queue="statements", queueing_lock="budgets.statements_monthly")
def statements_monthly(timestamp: int | None = None) -> dict:
    """Last month's statement for every live budget, in worker processes on every core (the same code as
    `manage.py statements_generate`)."""
    when = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC) if timestamp else timezone.now()
    start, end = statements.previous_month(timezone.localtime(when).date())
    result = statement_batch.statements_batch(period_start=start, period_end=end)
    for failure in result.failed:
        logger.error("statement for budget %s, %s: %s", failure.job.budget_id, start, failure.error)
    return {
        "period": f"{start:%Y-%m}",
        "budgets": result.budgets,
        "generated": result.generated,
        "failed": len(result.failed),
        "notified": result.notified,
    }


# --- Stripe's statement (budgets/cash.py) ---------------------------------------------------------------------------

STRIPE_DAYS_BACK = 3  # fetch the last few days each morning: a missed day is caught up, and repeats add nothing


@app.task(name="budgets.stripe_statements_daily", queue="budgets", queueing_lock="budgets.stripe_statements_daily")
def stripe_statements_daily(timestamp: int | None = None) -> dict[str, dict]:
    """Bring the last days of Stripe's balance transactions and payouts onto each Stripe cash account, then
    auto-match them, as a finance officer would by "Fetch Stripe's statement". Recorded as the scheduled-jobs
    user. A refusal (Stripe unreachable, nothing new, a closed month) is logged and leaves the account as it was."""
    when = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC) if timestamp else timezone.now()
    yesterday = timezone.localtime(when).date() - datetime.timedelta(days=1)
    outcome: dict[str, dict] = {}
    for account in CashAccount.objects.filter(source=StatementSource.STRIPE, reconcile_from__lte=yesterday):
        start = max(account.reconcile_from, yesterday - datetime.timedelta(days=STRIPE_DAYS_BACK - 1))
        try:
            record = cash.stripe_statement_import(
                cash_account=account, start=start, end=yesterday, acting_user=scheduled_jobs_user()
            )
        except (ImportRefused, LedgerError) as exc:
            logger.warning("Stripe statement for %s, %s to %s: %s", account, start, yesterday, exc)
            outcome[account.name] = {"refused": str(exc)}
            continue
        matched = matching.auto_match(account)
        outcome[account.name] = {"added": record.lines_added, "matched": sum(matched.values())}
        logger.info("Stripe statement for %s: %s", account, outcome[account.name])
    return outcome
