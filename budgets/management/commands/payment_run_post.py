"""`manage.py payment_run_post RUN_ID --as EMAIL`: pay an approved run (safe to run again after a crash)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from budgets.models import PaymentRun
from budgets.payment_runs import payment_run_post
from budgets.services import BudgetError


class Command(BaseCommand):
    help = "Post every payment of an approved payment run; already-paid items are skipped."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument("--as", dest="email", required=True, help="the finance user making the payments")

    def handle(self, *args, run_id: int, email: str, **options):
        try:
            run = PaymentRun.objects.get(pk=run_id)
            user = User.objects.get(email__iexact=email)
            run = payment_run_post(run=run, acting_user=user)
        except (PaymentRun.DoesNotExist, User.DoesNotExist, BudgetError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Payment run {run.pk}: {run.get_status_display().lower()}, {run.items.count()} payments")
