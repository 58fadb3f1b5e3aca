"""Monthly statement batches: every live budget's statement rendered in worker processes, one per core.

WeasyPrint's layout is single-threaded and holds the GIL (tech.md §4: "more CPU cores won't help" within a process),
so the batch uses a process pool. Workers are spawned (never forked from a process holding database connections
and threads), set Django up themselves, and are recycled after `RECYCLE_AFTER` statements because WeasyPrint does
not give memory back to the OS. Each statement commits on its own (`statements.statement_generate`), so a batch
killed at any point is simply run again: what exists is skipped, and notifications not yet sent are sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from urllib.parse import quote

from django.conf import settings
from django.db import connection

# Workers are spawned: they unpickle this module's functions before Django is set up, so nothing here may import
# models at module level (budgets.statements and budgets.models are imported where they are used).
RECYCLE_AFTER = 200


@dataclasses.dataclass(frozen=True)
class Job:
    budget_id: int
    period_start: datetime.date
    period_end: datetime.date
    large_print: bool = False


@dataclasses.dataclass(frozen=True)
class Outcome:
    job: Job
    statement_id: int | None
    pages: int
    created: bool
    notified: bool
    seconds: float
    worker_pid: int
    worker_peak_rss_kib: int
    error: str = ""
    cpu_seconds: float = 0.0  # this worker's CPU time for the statement (the database server's is not in it)


@dataclasses.dataclass
class BatchResult:
    period_start: datetime.date
    period_end: datetime.date
    budgets: int = 0
    already_done: int = 0
    generated: int = 0
    failed: list[Outcome] = dataclasses.field(default_factory=list)
    notified: int = 0
    seconds: float = 0.0
    peak_rss_kib_by_worker: dict[int, int] = dataclasses.field(default_factory=dict)


# --- Worker processes ------------------------------------------------------------------------------------------


def database_url() -> str:
    """The URL of the database this process is using (in tests, the test database), for the workers."""
    s = connection.settings_dict
    options = s.get("OPTIONS", {})
    host = s["HOST"] or options.get("host", "")
    auth = quote(s["USER"] or "") + (":" + quote(s["PASSWORD"]) if s["PASSWORD"] else "")
    if host.startswith("/"):
        port = f"&port={s['PORT']}" if s["PORT"] else ""
        return f"postgresql://{auth}@/{quote(s['NAME'])}?host={quote(host)}{port}"
    return f"postgresql://{auth}@{host}:{s['PORT'] or 5432}/{quote(s['NAME'])}"


def worker_environment() -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }


def _worker_start(environment: dict[str, str]) -> None:
    os.environ.update(environment)
    import django

    django.setup()
    from multiprocessing.util import Finalize

    from django.db import connections

    # One connection for the worker's life. The site's CONN_MAX_AGE of 0 would make close_old_connections() (run
    # before each statement, to drop a connection the server has broken) reconnect every time: a new PostgreSQL
    # backend, with cold catalogue caches, for every statement.
    connections["default"].settings_dict["CONN_MAX_AGE"] = None
    # Every statement asks the database the same twenty-odd questions. Bound on the server, psycopg prepares each the
    # second time it is asked, so PostgreSQL plans it once per worker rather than once per statement: planning was
    # half of the database's work (measured: 6.7 -> 2.7 ms of its CPU a statement, on the same two cores).
    connections["default"].settings_dict.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=1)
    # A worker that is recycled or shut down closes its connection, so the server sees a goodbye, not a dropped
    # socket (a worker whose batch was killed leaves by os._exit: the server notices the socket close instead).
    Finalize(None, connections.close_all, exitpriority=10)
    _exit_with_parent()
    from budgets import statements

    statements.warm_up()
    # WeasyPrint allocates objects by the hundred thousand, so Python's cycle collector kept rescanning everything
    # Django and WeasyPrint loaded at start-up: about a fifth of a statement's time. Freeze what is loaded now and
    # collect less often between statements (measured: 260 -> 228 ms of CPU a statement, 10 MiB more memory), and not
    # at all during one (`_collected_after`).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


@contextlib.contextmanager
def _collected_after():
    """No cycle collection while a statement is made, one when it is done. Collections during it traversed
    WeasyPrint's live box tree and styles again and again (about 8 ms a statement even at a threshold of 20,000);
    afterwards only the statement's cyclic garbage is left, a few thousand objects. Measured in the benchmark, runs
    of each way taken in turn: 13.5 -> 14.7 statements a second on 2 cores."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def _exit_with_parent() -> None:
    """A batch killed with SIGKILL cannot stop its workers, and they would wait on its queue for ever: each worker
    watches for its parent to go and leaves at once (whatever it was rendering is simply done again next run)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        from budgets import statements

        statements.release_fonts()  # os._exit skips exit handlers: remove the temporary font files first
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _generate(job: Job) -> Outcome:
    from django.db import close_old_connections

    close_old_connections()  # a connection the server dropped since the last statement is replaced, not reused
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        from budgets import statements
        from budgets.models import Budget

        with _collected_after():
            statement, created = statements.statement_generate_once(
                budget=Budget.objects.select_related("plan__person__user").get(pk=job.budget_id),
                period_start=job.period_start,
                period_end=job.period_end,
                large_print=job.large_print,
                notify=True,
            )
        notified = created and statement.notified_at is not None
        if not created:
            notified = statements.statement_notify(statement=statement)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        return Outcome(
            job, statement.pk, statement.pages, created, notified, seconds, os.getpid(), _peak_rss_kib(), "", cpu
        )
    except Exception as exc:  # one budget's failure must not stop everyone else's statement
        seconds = time.perf_counter() - started
        return Outcome(job, None, 0, False, False, seconds, os.getpid(), _peak_rss_kib(), repr(exc))


def _warm(_: int) -> int:
    time.sleep(0.05)  # long enough that every worker gets one, so all have started
    return os.getpid()


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def start_pool(workers: int) -> ProcessPoolExecutor:
    """Spawned workers, each with Django set up and WeasyPrint loaded; waits until all have started."""
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_start,
        initargs=(worker_environment(),),
        max_tasks_per_child=RECYCLE_AFTER,
    )
    list(pool.map(_warm, range(workers * 2)))
    return pool


def run_jobs(
    pool: ProcessPoolExecutor, jobs: Iterable[Job], on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    futures: list[Future] = [pool.submit(_generate, job) for job in jobs]
    outcomes = []
    for future in as_completed(futures):
        outcome = future.result()
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes


# --- The batch -------------------------------------------------------------------------------------------------


def jobs_for(period_start: datetime.date, period_end: datetime.date) -> tuple[list[Job], int]:
    """(jobs still to do, how many budgets are done already) for every live budget's statement of the period."""
    from budgets import statements
    from budgets.models import Statement

    budget_ids = list(statements.live_budgets(period_end).values_list("pk", flat=True))
    done = set(
        Statement.objects.filter(
            budget_id__in=budget_ids, period_start=period_start, period_end=period_end, large_print=False
        ).values_list("budget_id", flat=True)
    )
    return [Job(pk, period_start, period_end) for pk in budget_ids if pk not in done], len(done)


def notify_the_rest(period_start: datetime.date, period_end: datetime.date) -> int:
    """Statements a killed batch stored but did not get to announce."""
    from budgets import statements
    from budgets.models import Statement

    waiting = Statement.objects.filter(period_start=period_start, period_end=period_end, notified_at=None)
    return sum(statements.statement_notify(statement=statement) for statement in waiting)


def statements_batch(
    *,
    period_start: datetime.date,
    period_end: datetime.date,
    workers: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> BatchResult:
    """Render and store every live budget's statement for the period that is not stored yet, and tell each person
    theirs is ready. Safe to run again at any time, also after a kill."""
    started = time.perf_counter()
    result = BatchResult(period_start, period_end)
    result.notified += notify_the_rest(period_start, period_end)
    jobs, result.already_done = jobs_for(period_start, period_end)
    result.budgets = len(jobs) + result.already_done
    if on_start:
        on_start(len(jobs), result.already_done)
    if jobs:
        workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        pool = start_pool(workers)
        try:
            outcomes = run_jobs(pool, jobs, on_outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for outcome in outcomes:
            if outcome.error:
                result.failed.append(outcome)
                continue
            result.generated += outcome.created
            result.already_done += not outcome.created
            result.notified += outcome.notified
            peak = result.peak_rss_kib_by_worker.get(outcome.worker_pid, 0)
            result.peak_rss_kib_by_worker[outcome.worker_pid] = max(peak, outcome.worker_peak_rss_kib)
    result.seconds = time.perf_counter() - started
    return result
