"""Finance page to bring Stripe's balance transactions and payouts onto the Stripe cash account."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone

from budgets.cash import NoMovements, stripe_statement_import
from config.forms import DateField
from ledger.exceptions import LedgerError
from ledger.models import CashAccount, StatementSource
from ledger.statements_import import ImportRefused

DATE_INVALID = "Enter a real date, like 31 10 2026"
MAX_DAYS = 93  # a quarter at most per fetch, so one request stays quick


class StripeImportForm(forms.Form):
    start = DateField(
        label="From",
        help_text="For example, 1 10 2026",
        error_messages={"invalid": DATE_INVALID, "required": "Enter the first day to fetch"},
    )
    end = DateField(
        label="To",
        help_text="For example, 31 10 2026",
        error_messages={"invalid": DATE_INVALID, "required": "Enter the last day to fetch"},
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if start > end:
                self.add_error("end", "The last day must be the same as or after the first day")
            elif (end - start).days >= MAX_DAYS:
                self.add_error("end", f"Fetch at most {MAX_DAYS} days at a time")
            elif end > timezone.localdate():
                self.add_error("end", "The last day cannot be in the future")
        return data


def stripe_import(request: HttpRequest, pk: int) -> HttpResponse:
    # 404, not 403, for anyone who may not change the ledger, as on the other finance pages.
    if not request.user.is_authenticated or not request.user.has_perm("ledger.add_transfer"):
        raise Http404
    cash = get_object_or_404(CashAccount, pk=pk, source=StatementSource.STRIPE)
    today = timezone.localdate()
    initial = {"start": today.replace(day=1) if today.day > 1 else today - datetime.timedelta(days=1), "end": today}
    form = StripeImportForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            record = stripe_statement_import(
                cash_account=cash,
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                acting_user=request.user,
            )
        except NoMovements as exc:
            messages.info(request, f"{exc.problems[0][1]}: there was nothing to fetch.")
            return redirect("ledger:reconcile-account", pk=cash.pk)
        except ImportRefused as exc:
            form.add_error(None, str(exc))
        except LedgerError as exc:  # e.g. a fee dated in a closed month
            form.add_error(None, f"Nothing was imported: {exc}")
        else:
            text = (
                f"Fetched {record.lines_added} new line{pluralize(record.lines_added)} from Stripe; "
                f"{record.lines_already_imported} {pluralize(record.lines_already_imported, 'was,were')} already here"
            )
            if record.bad_lines:
                text += f"; {len(record.bad_lines)} were left out: " + "; ".join(r for _n, r in record.bad_lines[:3])
            messages.success(request, text + ".")
            return redirect("ledger:reconcile-account", pk=cash.pk)
    return render(request, "budgets/stripe_import.jinja", {"cash": cash, "form": form})
