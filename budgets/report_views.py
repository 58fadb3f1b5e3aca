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
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Organisation, OrganisationKind
from brokerage.models import Person
from brokerage.selectors import people_visible_to
from budgets import funder_payments, reports
from budgets.holder_views import one_time_key
from budgets.services import BudgetError
from config.exports import csv_response
from config.formatting import format_date, format_pence
from config.forms import DateField, PoundsField
from ledger.exceptions import LedgerError


def require_reports(request: HttpRequest) -> None:
    if not request.user.has_perm("budgets.view_reports"):
        raise Http404


ICB_INVALID = "Choose an ICB from the list"


def quarter_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=20,
        error_messages={"required": reports.QUARTER_INVALID, "max_length": reports.QUARTER_INVALID},
    )


class QuarterCleaning:
    """For forms with a `quarter` field: the Quarter it names, or the reason it names none."""

    def clean_quarter(self) -> reports.Quarter:
        try:
            return reports.Quarter.parse(self.cleaned_data["quarter"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class QuarterForm(QuarterCleaning, forms.Form):
    quarter = quarter_field("Quarter")
    icb = forms.ChoiceField(label="ICB", required=False, error_messages={"invalid_choice": ICB_INVALID})

    def __init__(self, *args, icbs: list[Organisation], **kwargs):
        super().__init__(*args, **kwargs)
        self.icbs = {str(icb.pk): icb for icb in icbs}
        self.fields["icb"].choices = [("", "All ICBs"), *((pk, icb.name) for pk, icb in self.icbs.items())]

    @property
    def offers_icbs(self) -> bool:
        """Only someone who sees people of more than one ICB has a choice to make (an approver sees their own)."""
        return len(self.icbs) > 1

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


# --- Payments from local authorities towards their recharges (budgets/funder_payments.py) -------------------------


class FunderPaymentForm(QuarterCleaning, forms.Form):
    local_authority = forms.ChoiceField(
        label="Local authority that paid",
        error_messages={
            "required": "Choose the local authority that paid",
            "invalid_choice": "Choose a local authority from the list",
        },
    )
    icb = forms.ChoiceField(
        label="ICB it paid", error_messages={"required": ICB_INVALID, "invalid_choice": ICB_INVALID}
    )
    quarter = quarter_field("Quarter it pays for")
    amount = PoundsField(
        label="Amount in pounds",
        min_value=0,
        max_digits=11,
        decimal_places=2,
        error_messages={
            "required": "Enter the amount",
            "invalid": "Enter an amount in pounds and pence, like 12500.00",
            "min_value": "The amount must be more than £0",
            "max_decimal_places": "Enter an amount in pounds and pence, like 12500.00",
            "max_digits": "The amount must be £100,000,000.00 or less",
            "max_whole_digits": "The amount must be £100,000,000.00 or less",
        },
    )
    received_on = DateField(
        label="Date received",
        help_text="For example, 15 10 2026",
        error_messages={"required": "Enter the date received", "invalid": "Enter a real date, like 15 10 2026"},
    )
    reference = forms.CharField(
        label="Reference",
        max_length=35,
        help_text="As it will show on the bank statement",
        error_messages={
            "required": "Enter the reference the payment came with",
            "max_length": "Keep the reference to 35 characters or fewer",
        },
    )
    key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, icbs: list[Organisation], **kwargs):
        super().__init__(*args, **kwargs)
        self.icbs = {str(icb.pk): icb for icb in icbs}
        authorities = Organisation.objects.filter(kind=OrganisationKind.LOCAL_AUTHORITY).order_by("name")
        self.authorities = {str(authority.pk): authority for authority in authorities}
        self.fields["local_authority"].choices = [
            ("", "Choose"),
            *((pk, la.name) for pk, la in self.authorities.items()),
        ]
        self.fields["icb"].choices = [("", "Choose"), *((pk, icb.name) for pk, icb in self.icbs.items())]
        if len(self.icbs) == 1:
            self.fields["icb"].initial = next(iter(self.icbs))

    def clean_received_on(self):
        received_on = self.cleaned_data["received_on"]
        if received_on > timezone.localdate():
            raise forms.ValidationError("The date received must be today or in the past")
        return received_on


def describe_payment(payment) -> str:
    when, amount = format_date(payment.received_on), format_pence(payment.amount_pence)
    return f"{payment.local_authority.name}, {when}, {payment.reference}, {amount}"


class FunderPaymentReversalForm(forms.Form):
    payment = forms.ChoiceField(
        label="Payment to reverse",
        error_messages={
            "required": "Choose the payment to reverse",
            "invalid_choice": "Choose a payment from the list",
        },
    )
    reason = forms.CharField(
        label="Why it is being reversed",
        max_length=500,
        error_messages={
            "required": "Say why the payment is being reversed",
            "max_length": "Keep the reason to 500 characters or fewer",
        },
    )

    def __init__(self, *args, payments, **kwargs):
        super().__init__(*args, **kwargs)
        self.payments = {str(payment.pk): payment for payment in payments if payment.reversal_id is None}
        choices = [(pk, describe_payment(payment)) for pk, payment in self.payments.items()]
        self.fields["payment"].choices = [("", "Choose"), *choices]


@login_required
def funder_payments_page(request: HttpRequest) -> HttpResponse:
    """The quarter's payments from local authorities; finance staff record them here, and reverse one recorded by
    mistake."""
    require_reports(request)
    asked = _report_request(request)
    icbs = list(asked.form.icbs.values())
    icb_ids = [asked.icb.pk] if asked.icb else [icb.pk for icb in icbs]
    payments = list(funder_payments.payments_for(asked.quarter, icb_ids=icb_ids)) if asked.quarter else []
    record_form = reversal_form = None
    if request.user.has_perm("budgets.record_funder_payments"):
        initial = {"key": one_time_key(), **({"quarter": asked.quarter.code} if asked.quarter else {})}
        record_form = FunderPaymentForm(initial=initial, icbs=icbs, prefix="pay")
        reversal_form = FunderPaymentReversalForm(payments=payments, prefix="reverse")
    if request.method == "POST":
        if record_form is None:
            raise Http404
        if request.POST.get("action") == "reverse":
            reversal_form = FunderPaymentReversalForm(request.POST, payments=payments, prefix="reverse")
            done = _reverse_payment(request, reversal_form)
        else:
            record_form = FunderPaymentForm(request.POST, icbs=icbs, prefix="pay")
            done = _record_payment(request, record_form)
        if done is not None:
            return redirect(f"{request.path}?{urlencode({'quarter': done.quarter})}")
    context = {
        "form": asked.form,
        "hint": HINT,
        "asked": asked,
        "payments": payments,
        "record_form": record_form,
        "reversal_form": reversal_form,
    }
    return render(request, "budgets/reports/funder_payments.jinja", context)


def _record_payment(request: HttpRequest, form: FunderPaymentForm):
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        return funder_payments.funder_payment_record(
            icb=form.icbs[data["icb"]],
            local_authority=form.authorities[data["local_authority"]],
            quarter=data["quarter"],
            amount_pence=int(data["amount"] * 100),
            received_on=data["received_on"],
            reference=data["reference"],
            key=data["key"],
            acting_user=request.user,
        )
    except (BudgetError, LedgerError) as exc:  # e.g. a date in a month finance has closed
        form.add_error(None, str(exc))
        return None


def _reverse_payment(request: HttpRequest, form: FunderPaymentReversalForm):
    if not form.is_valid():
        return None
    try:
        return funder_payments.funder_payment_reverse(
            payment=form.payments[form.cleaned_data["payment"]],
            reason=form.cleaned_data["reason"],
            acting_user=request.user,
        )
    except (BudgetError, LedgerError) as exc:
        form.add_error(None, str(exc))
        return None
