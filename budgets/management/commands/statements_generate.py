"""`manage.py statements_generate [--period 2026-10] [--workers 2]`: every live budget's statement for a month.

Safe to stop at any point and run again: stored statements are skipped, unsent notifications are sent.
"""

import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from budgets import statement_batch, statements


class Command(BaseCommand):
    help = "Render and store every live budget's statement for a month (default: last month), then email each person."

    def add_arguments(self, parser):
        parser.add_argument("--period", help="the month, like 2026-10 (default: last month)")
        parser.add_argument(
            "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per core)"
        )

    def handle(self, *args, period: str | None, workers: int, **options):
        try:
            start, end = statements.month_period(period) if period else statements.previous_month(timezone.localdate())
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if end >= timezone.localdate():
            raise CommandError(f"{start:%B %Y} is not over yet: its statements would miss the rest of the month")
        interactive = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        result = (self._with_progress_bar if interactive else self._with_lines)(start, end, workers)
        for failure in result.failed:
            self.stderr.write(f"Budget {failure.job.budget_id}: {failure.error}")
        self.stdout.write(
            f"Statements for {start:%B %Y}: {result.budgets} budgets, {result.generated} made now, "
            f"{result.budgets - result.generated - len(result.failed)} already there, {len(result.failed)} failed, "
            f"{result.notified} people told, in {result.seconds:.1f} s"
        )
        if result.failed:
            sys.exit(1)

    def _with_lines(self, start, end, workers):
        done = 0

        def on_start(to_do, already):
            self.stdout.write(f"{to_do} statements to make for {start:%B %Y} ({already} already made)")

        def on_outcome(outcome):
            nonlocal done
            done += 1
            state = f"failed: {outcome.error}" if outcome.error else f"{outcome.pages} pages"
            self.stdout.write(f"[{done}] budget {outcome.job.budget_id}: {state}")

        return statement_batch.statements_batch(
            period_start=start, period_end=end, workers=workers, on_start=on_start, on_outcome=on_outcome
        )

    def _with_progress_bar(self, start, end, workers):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        ) as progress:
            task = progress.add_task(f"Statements for {start:%B %Y}", total=None)

            def on_start(to_do, already):
                progress.update(task, total=to_do)

            def on_outcome(outcome):
                progress.advance(task)

            return statement_batch.statements_batch(
                period_start=start, period_end=end, workers=workers, on_start=on_start, on_outcome=on_outcome
            )
