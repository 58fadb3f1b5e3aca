"""Finance exports of spend by plan line, as CSV or Excel: one across every budget, and one per budget from its page.

Finance staff and auditors (`ledger.view_account`) may download them; anyone else gets 404. Rows name the budget by
its ledger reference and the plan line by its description, never the person.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from budgets import selectors
from budgets.models import Budget
from config.db_router import reads_from_replica
from config.exports import pounds, table_response

HEADER = [
    "Budget reference",
    "Budget status",
    "Budget start date",
    "Plan line",
    "Management type",
    "Ledger account",
    "Planned (£)",
    "Committed (£)",
    "Spent (£)",
    "Remaining (£)",
]


def _require_finance(request: HttpRequest) -> None:
    if not request.user.is_authenticated or not request.user.has_perm("ledger.view_account"):
        raise Http404


def _rows(pairs: Iterable[tuple[Budget, selectors.LineFigures]]):
    # The same figures as the budget page's "By plan line, for the year" table.
    for budget, line in pairs:
        yield (
            budget.owner_ref,
            budget.plan.get_status_display(),
            budget.start_date,
            line.description,
            line.management_type,
            line.account_code,
            pounds(line.planned),
            pounds(line.committed),
            pounds(line.spent),
            pounds(line.remaining),
        )


@reads_from_replica  # every budget's figures, read only: a read replica when there is one
def spend_all_export(request: HttpRequest, fmt: str) -> HttpResponse:
    _require_finance(request)
    return table_response(
        fmt,
        f"budget-spend-{timezone.localdate().isoformat()}",
        HEADER,
        _rows(selectors.line_figures_all()),
        sheet_title="Spend by plan line",
    )


def spend_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    _require_finance(request)
    try:
        budget = selectors.budget_for(user=request.user, pk=pk)
    except Budget.DoesNotExist as exc:
        raise Http404 from exc
    return table_response(
        fmt,
        f"budget-{budget.pk}-spend-{timezone.localdate().isoformat()}",
        HEADER,
        _rows((budget, line) for line in selectors.line_figures(budget)),
        sheet_title=f"Budget {budget.pk} spend",
    )
