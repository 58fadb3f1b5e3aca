"""Finance reports: the NHS England quarterly PHB return and recharges between funders, on screen and as CSV.

Finance staff, auditors and ICB approvers see them (`budgets.view_reports`), each over the people they may see
(an approver, their own ICB's); anyone else is told the page does not exist.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from brokerage.selectors import people_visible_to
from budgets import reports
from config.exports import csv_response


def require_reports(request: HttpRequest) -> None:
    if not request.user.has_perm("budgets.view_reports"):
        raise Http404


class QuarterForm(forms.Form):
    quarter = forms.CharField(
        label="Quarter",
        max_length=20,
        error_messages={"required": reports.QUARTER_INVALID, "max_length": reports.QUARTER_INVALID},
    )

    def clean_quarter(self) -> reports.Quarter:
        try:
            return reports.Quarter.parse(self.cleaned_data["quarter"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


def _quarter_from(request: HttpRequest) -> tuple[QuarterForm, reports.Quarter | None]:
    """The quarter asked for, or the last one to have ended when none was; None when what was asked is wrong."""
    if "quarter" not in request.GET:
        default = reports.Quarter.last_completed()
        return QuarterForm(initial={"quarter": default.code}), default
    form = QuarterForm(request.GET)
    return form, (form.cleaned_data["quarter"] if form.is_valid() else None)


HINT = "The year the financial year starts in, then the quarter: 2026-Q2 is July to September 2026"


def _phb_return_page(request: HttpRequest, form: QuarterForm, report) -> HttpResponse:
    return render(request, "budgets/reports/phb_return.jinja", {"form": form, "report": report, "hint": HINT})


@login_required
def phb_return(request: HttpRequest) -> HttpResponse:
    require_reports(request)
    form, quarter = _quarter_from(request)
    report = reports.phb_return(quarter, people=people_visible_to(request.user)) if quarter else None
    return _phb_return_page(request, form, report)


@login_required
def phb_return_csv(request: HttpRequest) -> HttpResponse:
    require_reports(request)
    form, quarter = _quarter_from(request)
    if quarter is None:
        return _phb_return_page(request, form, None)
    report = reports.phb_return(quarter, people=people_visible_to(request.user))
    return csv_response(
        f"phb-return-{quarter.code}.csv", reports.PHB_RETURN_CSV_HEADER, reports.phb_return_csv_rows(report)
    )


def _recharges_page(request: HttpRequest, form: QuarterForm, report) -> HttpResponse:
    return render(request, "budgets/reports/recharges.jinja", {"form": form, "report": report, "hint": HINT})


@login_required
def recharges(request: HttpRequest) -> HttpResponse:
    require_reports(request)
    form, quarter = _quarter_from(request)
    report = reports.recharges(quarter, people=people_visible_to(request.user)) if quarter else None
    return _recharges_page(request, form, report)


@login_required
def recharges_csv(request: HttpRequest) -> HttpResponse:
    """Every funder's statement in one file, or one funder's with `?funder=<slug>` (as linked from its statement)."""
    require_reports(request)
    form, quarter = _quarter_from(request)
    if quarter is None:
        return _recharges_page(request, form, None)
    report = reports.recharges(quarter, people=people_visible_to(request.user))
    statements = report.statements
    filename = f"recharges-{quarter.code}.csv"
    wanted = request.GET.get("funder")
    if wanted:
        statements = [statement for statement in report.statements if statement.slug == wanted]
        if not statements:
            raise Http404
        filename = f"recharges-{quarter.code}-{statements[0].slug}.csv"
    return csv_response(filename, reports.RECHARGES_CSV_HEADER, reports.recharges_csv_rows(report, statements))
