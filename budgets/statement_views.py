"""Statement pages: the list of a budget's statements, a statement as a web page, and its stored PDF. The person
and those acting for them reach them under /my/, their coordinator and finance from the budget page; anyone else
gets 404. A PDF that is not stored yet is asked for and made by a worker, never in the request."""

from __future__ import annotations

import datetime
import logging

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from procrastinate.exceptions import AlreadyEnqueued

from accounts.roles import FINANCE_ROLES, Role
from budgets import person_selectors, statements, tasks
from budgets.models import Budget, Statement, StatementDownload
from config.forms import DateField

security = logging.getLogger("phb.security")

URL_NAMES = {
    "my": {
        "list": "budgets:my-statements",
        "page": "budgets:my-statement",
        "pdf": "budgets:my-statement-pdf",
        "request": "budgets:my-statement-request",
        "budget": "budgets:my-budget",
    },
    "staff": {
        "list": "budgets:statements",
        "page": "budgets:statement",
        "pdf": "budgets:statement-pdf",
        "request": "budgets:statement-request",
        "budget": "budgets:budget",
    },
}
REQUESTED = "The PDF is being made. It will be ready in a few minutes: come back to this page to download it."
ALREADY_REQUESTED = "The PDF has already been asked for. It will be ready in a few minutes."
NOT_READY = "The PDF of this statement has not been made yet. You can ask for it below."
NOT_OVER = "You can ask for a PDF once the period is over. Until then, this page shows the figures so far."
MONTHS_LISTED = 24


def _budget(request: HttpRequest, pk: int, side: str) -> Budget:
    user = request.user
    if side == "my":
        budgets = person_selectors.budgets_for_person_pages(user)
    elif user.has_role(Role.CARE_COORDINATOR, *FINANCE_ROLES):
        budgets = Budget.objects.all()
    else:
        budgets = Budget.objects.none()
    budget = (
        budgets.select_related("plan__person", "plan__care_coordinator", "plan__person__care_coordinator")
        .filter(pk=pk)
        .first()
    )
    if budget is None or not user.has_perm("budgets.view_statements", budget):
        security.warning("statement refused: user %s, budget %s (%s)", user.pk, pk, request.path)
        raise Http404
    return budget


class PeriodForm(forms.Form):
    period = forms.CharField(label="Month", required=False, max_length=7, help_text="For example 2026-10")
    # NHS.UK's three boxes; the links on these pages (and older bookmarks) send one ISO date a field, still read.
    start = DateField(
        label="From",
        required=False,
        help_text="For example, 1 10 2026",
        error_messages={"invalid": "Enter a real start date, like 1 10 2026"},
    )
    end = DateField(
        label="To",
        required=False,
        help_text="For example, 31 10 2026",
        error_messages={"invalid": "Enter a real end date, like 31 10 2026"},
    )
    large_print = forms.BooleanField(label="Large print", required=False)

    def clean(self):
        data = super().clean()
        if data.get("period"):
            try:
                data["start"], data["end"] = statements.month_period(data["period"])
            except ValueError as exc:
                self.add_error("period", str(exc))
        elif "start" in data and "end" in data:
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                self.add_error(None if start or end else "start", "Enter the start and the end of the period")
            elif end < start:
                self.add_error("end", "The end date must be on or after the start date")
            elif (end - start).days >= statements.MAX_PERIOD_DAYS:
                self.add_error("end", "A statement can cover at most a year")
        return data

    def query(self) -> str:
        data = self.cleaned_data
        query = f"start={data['start']}&end={data['end']}"
        return query + ("&large_print=on" if data.get("large_print") else "")


def _period(request: HttpRequest, source) -> PeriodForm:
    form = PeriodForm(source)
    form.is_valid()
    return form


def _months(budget: Budget, today: datetime.date) -> list[tuple[datetime.date, datetime.date]]:
    months = []
    month = today.replace(day=1)
    first = budget.start_date.replace(day=1)
    while month >= first and len(months) < MONTHS_LISTED:
        months.append(statements.month_period(f"{month:%Y-%m}"))
        month = (month - datetime.timedelta(days=1)).replace(day=1)
    return months


def _log(request: HttpRequest, budget: Budget, start, end, kind: str, statement: Statement | None) -> None:
    StatementDownload.objects.create(
        statement=statement, budget=budget, period_start=start, period_end=end, format=kind, user=request.user
    )


@login_required
def statement_list(request: HttpRequest, pk: int, side: str) -> HttpResponse:
    return _list_page(request, _budget(request, pk, side), side, PeriodForm(request.GET or None))


def _list_page(request: HttpRequest, budget: Budget, side: str, form: PeriodForm) -> HttpResponse:
    """The list of a budget's statements; also where a period that cannot be shown is explained."""
    today = timezone.localdate()
    stored = {(s.period_start, s.period_end, s.large_print): s for s in budget.statements.all()}
    months = [
        {
            "start": start,
            "end": end,
            "over": end < today,
            "standard": stored.pop((start, end, False), None),
            "large": stored.pop((start, end, True), None),
        }
        for start, end in _months(budget, today)
    ]
    return render(
        request,
        "budgets/statements/list.jinja",
        {
            "budget": budget,
            "months": months,
            "others": sorted(stored.values(), key=lambda s: (s.period_start, s.period_end), reverse=True),
            "form": form,
            "names": URL_NAMES[side],
        },
    )


@login_required
def statement_page(request: HttpRequest, pk: int, side: str) -> HttpResponse:
    budget = _budget(request, pk, side)
    form = _period(request, request.GET)
    if not form.is_valid():
        return _list_page(request, budget, side, form)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    data = statements.statement_data(budget, start, end)
    standard = statements.statement_get(budget=budget, period_start=start, period_end=end)
    large = statements.statement_get(budget=budget, period_start=start, period_end=end, large_print=True)
    _log(request, budget, start, end, "html", standard)
    return render(
        request,
        "budgets/statements/page.jinja",
        {
            **statements.statement_context(data),
            "budget": budget,
            "standard": standard,
            "large": large,
            "over": end < timezone.localdate(),
            "period_query": f"start={start}&end={end}",
            "names": URL_NAMES[side],
        },
    )


@login_required
def statement_pdf(request: HttpRequest, pk: int, side: str) -> HttpResponse:
    budget = _budget(request, pk, side)
    form = _period(request, request.GET)
    if not form.is_valid():
        raise Http404
    start, end, large_print = form.cleaned_data["start"], form.cleaned_data["end"], form.cleaned_data["large_print"]
    statement = statements.statement_get(budget=budget, period_start=start, period_end=end, large_print=large_print)
    if statement is None:
        messages.info(request, NOT_READY)
        return redirect(reverse(URL_NAMES[side]["page"], kwargs={"pk": budget.pk}) + "?" + form.query())
    _log(request, budget, start, end, "pdf", statement)
    variant = "-large-print" if large_print else ""
    response = FileResponse(statement.pdf.open("rb"), content_type="application/pdf", as_attachment=True)
    response["Content-Disposition"] = f'attachment; filename="statement-{start}-to-{end}{variant}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def statement_request(request: HttpRequest, pk: int, side: str) -> HttpResponse:
    budget = _budget(request, pk, side)
    form = _period(request, request.POST)
    if not form.is_valid():
        return _list_page(request, budget, side, form)
    start, end, large_print = form.cleaned_data["start"], form.cleaned_data["end"], form.cleaned_data["large_print"]
    page = reverse(URL_NAMES[side]["page"], kwargs={"pk": budget.pk}) + "?" + form.query()
    if end >= timezone.localdate():
        messages.info(request, NOT_OVER)
    elif statements.statement_get(budget=budget, period_start=start, period_end=end, large_print=large_print):
        pass  # made since the page was shown: its download link is there now
    else:
        lock = f"statement:{budget.pk}:{start}:{end}:{'large' if large_print else 'standard'}"
        try:
            tasks.statement_request.configure(queueing_lock=lock).defer(
                budget_id=budget.pk, period_start=start.isoformat(), period_end=end.isoformat(), large_print=large_print
            )
            messages.info(request, REQUESTED)
        except AlreadyEnqueued:
            messages.info(request, ALREADY_REQUESTED)
    return redirect(page)
