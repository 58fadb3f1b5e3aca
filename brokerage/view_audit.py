"""Who looked at whose record (R9): one `RecordView` row for every successful read of a page about one person.

`RecordViewMiddleware` runs after every request. For a GET or HEAD that a signed-in user gets a 2xx answer to, it
looks the URL's name up in `PERSON_PAGES`, finds whose record the URL's kwargs identify and records the view. The
pages recorded are those about one person: their record, plans, budgets, statements, letters, receipts and other
downloads, and the API's detail endpoints. The API's list endpoints, which return whole records, record one row
per person on the page returned (`AuditedList`). Pages listing several people by name (the people list, the
approvals queue, dashboards, finance lists and exports across budgets) are not recorded per person.

Every URL with a captured kwarg must be named either in `PERSON_PAGES` or in `NOT_PERSON_DATA` (a test walks the
URL conf), so a new object page cannot be added without deciding whether reading it is audited.

Fail closed: if the view cannot be recorded (the database refuses the insert), the page is not shown and the user
gets a 503 "try again" page instead; a record is never shown unaudited.

Resolvers find the person through the models by label (`apps.get_model`) so brokerage imports nothing from budgets
(budgets depends on brokerage, not the other way round).
"""

from __future__ import annotations

import dataclasses
import logging

from django.apps import apps
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)

AUDITED_METHODS = ("GET", "HEAD")


@dataclasses.dataclass(frozen=True)
class PersonOf:
    """How to find the person from a URL: the kwarg holding an object's pk, the model, and the path from that
    model to the person's id (a values() lookup)."""

    kwarg: str
    model: str
    person_field: str

    def person_id(self, kwargs: dict) -> int | None:
        try:
            pk = int(kwargs[self.kwarg])
        except (KeyError, TypeError, ValueError):
            return None
        model = apps.get_model(self.model)
        return model.objects.filter(pk=pk).values_list(self.person_field, flat=True).first()


PERSON = PersonOf("pk", "brokerage.Person", "id")
PLAN = PersonOf("pk", "brokerage.CarePlan", "person_id")
BUDGET = PersonOf("pk", "budgets.Budget", "plan__person_id")

# URL name -> how to find the person whose record the page shows.
PERSON_PAGES: dict[str, PersonOf] = {
    "brokerage:person": PERSON,
    "brokerage:plan-start": PERSON,
    "brokerage:person-acting": PERSON,
    "brokerage:person-representative-add": PERSON,
    "brokerage:person-connected-add": PERSON,
    "brokerage:representative-end": PersonOf("pk", "brokerage.Representative", "person_id"),
    "brokerage:person-invite": PERSON,
    "brokerage:representative-invite": PersonOf("pk", "brokerage.Representative", "person_id"),
    "brokerage:connected-person-necessity": PersonOf("pk", "brokerage.ConnectedPerson", "person_id"),
    "brokerage:person-change": PERSON,
    "brokerage:connected-person-withdraw": PersonOf("pk", "brokerage.ConnectedPerson", "person_id"),
    "brokerage:plan-line-change": PersonOf("pk", "brokerage.PlanLine", "plan__person_id"),
    **{
        f"brokerage:{name}": PLAN
        for name in (
            "plan",
            "plan-needs",
            "plan-support",
            "plan-risks",
            "plan-check",
            "plan-decide",
            "plan-reopen",
            "plan-agreement",
            "plan-history",
            "plan-reconsideration",
            "plan-section",
        )
    },
    "budgets:set-up": PersonOf("plan_pk", "brokerage.CarePlan", "person_id"),
    # Budget pages: the other kwargs (invoice_pk, spend_pk, letter_pk...) are checked by the view to belong to
    # the budget, and only a 2xx answer is recorded.
    **{
        f"budgets:{name}": BUDGET
        for name in (
            "budget",
            "dedicated-account",
            "my-budget",
            "my-transactions",
            "my-purchase",
            "my-pay-invoice",
            "my-invoice",
            "receipt",
            "monitoring",
            "my-returns",
            "my-consent",
            "my-reconsider",
            "held-budget",
            "invoice-record",
            "card-pay",
            "card-payment",
            "my-statements",
            "my-statement",
            "my-statement-pdf",
            "my-statement-request",
            "statements",
            "statement",
            "statement-pdf",
            "statement-request",
            "reduction-notice",
            "recovery-new",
            "recovery",
            "final-audit",
            "letter",
            "letter-pdf",
            "budget-spend-export",
            "purchase-check",
            "holder-spend-check",
        )
    },
    "budgets:review": PersonOf("pk", "budgets.Review", "budget__plan__person_id"),
    "budgets:invoice-reject": PersonOf("pk", "budgets.Invoice", "budget_line__budget__plan__person_id"),
    # The API's detail endpoints.
    "brokerage-api:person-detail": PERSON,
    "brokerage-api:plan-detail": PLAN,
    "brokerage-api:plan-fhir": PLAN,
    "brokerage-api:plan-transition": PLAN,
    "brokerage-api:plan-line-detail": PersonOf("pk", "brokerage.PlanLine", "plan__person_id"),
    "budgets-api:budget-detail": BUDGET,
    "budgets-api:invoice-detail": PersonOf("pk", "budgets.Invoice", "budget_line__budget__plan__person_id"),
    "budgets-api:invoice-approve": PersonOf("pk", "budgets.Invoice", "budget_line__budget__plan__person_id"),
    # The admin site's pages for a person and a plan.
    "admin:brokerage_person_change": PersonOf("object_id", "brokerage.Person", "id"),
    "admin:brokerage_person_history": PersonOf("object_id", "brokerage.Person", "id"),
    "admin:brokerage_careplan_change": PersonOf("object_id", "brokerage.CarePlan", "person_id"),
    "admin:brokerage_careplan_history": PersonOf("object_id", "brokerage.CarePlan", "person_id"),
}

# URL names with kwargs that do not identify one person's record, and why.
NOT_PERSON_DATA: dict[str, str] = {
    "accounts:password-reset-confirm": "a reset token, not a record",
    "accounts:invitation": "an invitation token, not a record",
    "accounts:role-dashboard": "a role's dashboard (lists)",
    "providers:provider": "a provider in the directory",
    "budgets:holder-bank": "a third-party holder organisation's bank details",
    "budgets:payment-run": "a finance payment run across budgets",
    "budgets:payment-run-bacs": "a finance payment run across budgets",
    "budgets:payment-run-csv": "a finance payment run across budgets",
    "budgets:stripe-import": "a cash account's Stripe import",
    "budgets:spend-export": "a finance export across every budget",
    "budgets-api:payment-run-detail": "a finance payment run across budgets",
    "budgets-api:payment-run-approve": "a finance payment run across budgets",
    "budgets-api:payment-run-pay": "a finance payment run across budgets",
    "budgets-api:payment-run-take-out": "a finance payment run across budgets",
    "ledger:account-statement": "a ledger account (finance)",
    "ledger:statement-export": "a ledger account (finance)",
    "ledger:transfers-export": "the ledger's transfers (finance)",
    "ledger:reconcile-account": "an ICB cash account",
    "ledger:reconcile-import": "an ICB cash account",
    "ledger:reconcile-auto-match": "an ICB cash account",
    "ledger:reconcile-line": "a bank statement line",
    "ledger:reconcile-account-change": "an ICB cash account",
    "ledger:reconcile-layout-change": "a CSV layout",
    "ledger-api:account-detail": "a ledger account (finance)",
    "ledger-api:account-statement": "a ledger account (finance)",
    "ledger-api:transfer-detail": "a ledger transfer (finance)",
    "ledger-api:transfer-post-pending": "a ledger transfer (finance)",
    "ledger-api:transfer-reverse": "a ledger transfer (finance)",
    "ledger-api:transfer-void": "a ledger transfer (finance)",
}
# Every other admin page (users, organisations, history tables, this audit itself) is for superusers and auditors.
NOT_PERSON_DATA_PREFIXES = ("admin:",)


def person_of(view_name: str) -> PersonOf | None:
    return PERSON_PAGES.get(view_name)


def is_classified(view_name: str) -> bool:
    return view_name in PERSON_PAGES or view_name in NOT_PERSON_DATA or view_name.startswith(NOT_PERSON_DATA_PREFIXES)


def record_view(*, user, person_id: int, what: str, path: str, method: str) -> None:
    from brokerage.models import RecordView

    # A savepoint when the request runs inside a transaction: a refused insert cannot poison what follows.
    with transaction.atomic():
        RecordView.objects.create(user=user, person_id=person_id, what=what[:100], path=path[:500], method=method)


class AuditedList:
    """For DRF list endpoints that return people's records: one RecordView per person on the page returned (R9),
    as the detail endpoints record one. `person_id_of(item)` finds the person of each listed item. Fail closed like
    the middleware: if the views cannot be recorded, the list is withheld (503)."""

    @staticmethod
    def person_id_of(item) -> int | None:
        return item.pk

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._listed = page
        return page

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        listed = getattr(self, "_listed", None) or []
        person_ids = sorted({self.person_id_of(item) for item in listed} - {None})
        if not person_ids or not 200 <= response.status_code < 300:
            return response
        from brokerage.models import RecordView

        what = request.resolver_match.view_name if request.resolver_match else "api-list"
        try:
            with transaction.atomic():
                RecordView.objects.bulk_create(
                    RecordView(user=request.user, person_id=pk, what=what[:100], path=request.path[:500], method="GET")
                    for pk in person_ids
                )
        except DatabaseError:
            logger.exception("Could not record %s listing %s; the list was withheld", request.user.pk, request.path)
            from rest_framework.response import Response

            return Response({"detail": "Sorry, the service is unavailable: try again shortly"}, status=503)
        return response


class RecordViewMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method not in AUDITED_METHODS or not 200 <= response.status_code < 300:
            return response
        user = getattr(request, "user", None)
        match = getattr(request, "resolver_match", None)
        if user is None or not user.is_authenticated or match is None:
            return response
        resolver = person_of(match.view_name)
        if resolver is None:
            return response
        try:
            person_id = resolver.person_id(match.kwargs)
            if person_id is not None:
                record_view(
                    user=user, person_id=person_id, what=match.view_name, path=request.path, method=request.method
                )
        except DatabaseError:
            logger.exception("Could not record %s viewing %s; the page was withheld", user.pk, request.path)
            # A download that was about to stream: release its file (response.close() would also signal the end
            # of the request, closing the database connection under the 503 page).
            stream = getattr(response, "file_to_stream", None)
            if stream is not None:
                stream.close()
            return render(request, "503.html", status=503)
        return response
