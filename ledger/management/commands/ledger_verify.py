"""`manage.py ledger_verify`: re-sum all history, compare with the counters; exit 1 on any drift."""

import sys

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.verification import ledger_verify


class Command(BaseCommand):
    help = "Re-sum every transfer and compare with the balance counters; exit non-zero on drift."

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    def handle(self, *args, no_progress=False, **options):
        show_progress = sys.stdout.isatty() and not no_progress
        with Progress(
            TextColumn("Verifying the ledger"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} ids"),
            TimeElapsedColumn(),
            disable=not show_progress,
        ) as progress:
            task = progress.add_task("verify", total=None)
            report = ledger_verify(on_progress=lambda done, total: progress.update(task, completed=done, total=total))
        self.stdout.write(
            f"{report.transfers:,} transfers over {report.accounts:,} accounts; "
            f"debits {report.total_debits:,}p, credits {report.total_credits:,}p"
        )
        for code, counter, counted, stored in report.drifted[:50]:
            self.stdout.write(f"DRIFT {code} {counter}: history says {counted:,}p, counter holds {stored:,}p")
        if report.total_debits != report.total_credits:
            self.stdout.write("DRIFT total debits and credits differ")
        if not report.ok:
            raise CommandError(f"ledger drift found on {len(report.drifted)} counters")
        self.stdout.write(self.style.SUCCESS("Ledger verified: no drift"))
