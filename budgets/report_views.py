"""Finance reports: the NHS England quarterly PHB return and recharges between funders, on screen and as CSV.

Finance staff, auditors and ICB approvers see them (`budgets.view_reports`), each over the people they may see
(an approver, their own ICB's); anyone else is told the page does not exist.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify

from accounts.models import Organisation
from brokerage.models import Person
from brokerage.selectors import people_visible_to
from budgets import reports
from config.exports import csv_response


def require_reports(request: HttpRequest) -> None:
    if not request.user.has_perm("budgets.view_reports"):
        raise Http404


ICB_INVALID = "Choose an ICB from the list"


class QuarterForm(forms.Form):
    quarter = forms.CharField(
        label="Quarter",
        max_length=20,
        error_messages={"required": reports.QUARTER_INVALID, "max_length": reports.QUARTER_INVALID},
    )
    icb = forms.ChoiceField(label="ICB", required=False, error_messages={"invalid_choice": ICB_INVALID})

    def __init__(self, *args, icbs: list[Organisation], **kwargs):
        super().__init__(*args, **kwargs)
        self.icbs = {str(icb.pk): icb for icb in icbs}
        self.fields["icb"].choices = [("", "All ICBs"), *((pk, icb.name) for pk, icb in self.icbs.items())]

    @property
    def offers_icbs(self) -> bool:
        """Only someone who sees people of more than one ICB has a choice to make (an approver sees their own)."""
        return len(self.icbs) > 1

    def clean_quarter(self) -> reports.Quarter:
        try:
            return reports.Quarter.parse(self.cleaned_data["quarter"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_icb(self) -> Organisation | None:
        return self.icbs.get(self.cleaned_data["icb"])


@dataclasses.dataclass
class ReportRequest:
    form: QuarterForm
    quarter: reports.Quarter | None  # None when what was asked is wrong
    icb: Organisation | None  # None for every ICB the user sees
    people: QuerySet[Person]

    @property
    def query(self) -> str:
        """The query string that asks for the same report (its CSV links)."""
        if self.quarter is None:
            return ""
        return "?" + urlencode({"quarter": self.quarter.code, **({"icb": self.icb.pk} if self.icb else {})})

    @property
    def file_suffix(self) -> str:
        return f"-{slugify(self.icb.ods_code or self.icb.name)}" if self.icb else ""


def _report_request(request: HttpRequest) -> ReportRequest:
    """The quarter asked for (the last one to have ended when none was) and, for someone who sees several ICBs'
    people, one ICB's or all of them."""
    people = people_visible_to(request.user)
    icbs = list(Organisation.objects.filter(pk__in=people.values("icb_id")).order_by("name"))
    if "quarter" not in request.GET:
        default = reports.Quarter.last_completed()
        return ReportRequest(QuarterForm(initial={"quarter": default.code}, icbs=icbs), default, None, people)
    form = QuarterForm(request.GET, icbs=icbs)
    if not form.is_valid():
        return ReportRequest(form, None, None, people)
    icb = form.cleaned_data["icb"]
    return ReportRequest(form, form.cleaned_data["quarter"], icb, people.filter(icb=icb) if icb else people)


HINT = "The year the financial year starts in, then the quarter: 2026-Q2 is July to September 2026"


def _page(request: HttpRequest, template: str, asked: ReportRequest, report) -> HttpResponse:
    context = {"form": asked.form, "report": report, "hint": HINT, "asked": asked}
    return render(request, f"budgets/reports/{template}.jinja", context)


@login_required
def phb_return(request: HttpRequest) -> HttpResponse:
    require_reports(request)
    asked = _report_request(request)
    report = reports.phb_return(asked.quarter, people=asked.people) if asked.quarter else None
    return _page(request, "phb_return", asked, report)


@login_required
def phb_return_csv(request: HttpRequest) -> HttpResponse:
    require_reports(request)
    asked = _report_request(request)
    if asked.quarter is None:
        return _page(request, "phb_return", asked, None)
    report = reports.phb_return(asked.quarter, people=asked.people)
    return csv_response(
        f"phb-return-{asked.quarter.code}{asked.file_suffix}.csv",
        reports.PHB_RETURN_CSV_HEADER,
        reports.phb_return_csv_rows(report),
    )


@login_required
def recharges(request: HttpRequest) -> HttpResponse:
    require_reports(request)
    asked = _report_request(request)
    report = reports.recharges(asked.quarter, people=asked.people) if asked.quarter else None
    return _page(request, "recharges", asked, report)


@login_required
def recharges_csv(request: HttpRequest) -> HttpResponse:
    """Every funder's statement in one file, or one funder's with `?funder=<slug>` (as linked from its statement)."""
    require_reports(request)
    asked = _report_request(request)
    if asked.quarter is None:
        return _page(request, "recharges", asked, None)
    report = reports.recharges(asked.quarter, people=asked.people)
    statements = report.statements
    filename = f"recharges-{asked.quarter.code}{asked.file_suffix}.csv"
    wanted = request.GET.get("funder")
    if wanted:
        statements = [statement for statement in report.statements if statement.slug == wanted]
        if not statements:
            raise Http404
        filename = f"recharges-{asked.quarter.code}{asked.file_suffix}-{statements[0].slug}.csv"
    return csv_response(filename, reports.RECHARGES_CSV_HEADER, reports.recharges_csv_rows(report, statements))
