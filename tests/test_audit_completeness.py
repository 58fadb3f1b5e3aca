"""Audit completeness (R9): every change made through the web is attributed to the named user who made it.

One person's record is taken through its life by five named users, every step through the pages (add the person,
build and submit the plan, approve, agree, set up the budget, run and pay the payment run, record a purchase, pay an
invoice, raise and complete a review, suspend and resume). Around each request the test compares what was done
with the audit rows added:
- each action added at least one history event (django-pghistory) to every table it was expected to change, and the
  events per table add up to at least the actions expected to change it;
- 100% of the events added carry a pghistory context whose metadata names the acting user and the request's path:
  no event from a web action is anonymous;
- every plan transition (PlanEvent) and every ledger transfer added names the same user (their own `by` and
  `acting_user` columns: those tables are append-only records themselves).
Reads are counted as well: every GET of a page about the person adds exactly one RecordView for the reader.

A static check goes with it: every model of our apps either keeps history, or is itself an append-only record
(a pgtrigger Protect against UPDATE and DELETE), or is named below with the reason it needs neither.
"""

from __future__ import annotations

import collections
import datetime

import pghistory.models
import pgtrigger
import pytest
import time_machine
from django.apps import apps
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import OrganisationKind
from accounts.roles import Role
from brokerage.models import CarePlan, Person, PlanEvent, PlanStatus, RecordView
from budgets.models import Budget, DirectPaymentInvoice, DirectPaymentSpend, PaymentRun, Review
from ledger.models import Transfer
from providers.models import Provider
from tests.brokerage.helpers import icb, service
from tests.budgets.test_payment_runs import add_bank_details
from tests.factories import OrganisationFactory, user_with_role

pytestmark = pytest.mark.django_db
TODAY = datetime.datetime(2026, 12, 20, 10, 0)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

# Models that keep no history of their own, and why that loses no attribution.
NO_HISTORY_NEEDED = {
    "budgets.StripeEvent": "Stripe's webhook deliveries, kept once for idempotency; no user acts",
    "budgets.StatementDownload": "itself a log of who downloaded which statement, written once",
    "ledger.Account": "its balance counters move only with append-only transfers, which name their acting user; "
    "code, kind and currency are read-only and it cannot be deleted (pgtrigger)",
}


def event_models() -> list[type[pghistory.models.Event]]:
    return [m for m in apps.get_models() if issubclass(m, pghistory.models.Event) and not m._meta.proxy]


def tracked_label(event_model) -> str:
    """The table an event model records: link tables are tracked through a proxy (brokerage/models.py)."""
    return event_model.pgh_tracked_model._meta.concrete_model._meta.label


def append_only_models() -> set[str]:
    protected = set()
    for model, trigger in pgtrigger.registered():
        if type(trigger) is pgtrigger.Protect and trigger.condition is None:
            refused = {str(operation) for operation in trigger.operation}
            if {"UPDATE", "DELETE"} <= refused:
                protected.add(model._meta.label)
    return protected


def test_every_model_of_our_apps_keeps_history_or_is_an_append_only_record():
    tracked = {tracked_label(m) for m in event_models()}
    protected = append_only_models()
    missing = []
    for app in settings.LOCAL_APPS:
        for model in apps.get_app_config(app).get_models(include_auto_created=True):
            label = model._meta.label
            if model._meta.proxy or issubclass(model, pghistory.models.Event) or label in NO_HISTORY_NEEDED:
                continue
            if model._meta.auto_created:  # many-to-many link tables
                through_of = f"{label} (link table)"
                if label not in tracked and not _link_is_exempt(model):
                    missing.append(through_of)
                continue
            if label not in tracked and label not in protected:
                missing.append(label)
    assert not missing, f"these change with no history of who changed them: {missing}"
    assert "brokerage.RecordView" in protected and "ledger.Transfer" in protected


# Link tables whose rows are reference data or are set by the admin only; everything else must be tracked.
LINK_TABLES_EXEMPT = {
    "accounts.User_groups": "Django groups are unused (roles are RoleMemberships, which are tracked)",
    "accounts.User_user_permissions": "unused: permissions come from roles (accounts/rules.py)",
}


def _link_is_exempt(model) -> bool:
    return model._meta.label in LINK_TABLES_EXEMPT


class Audit:
    """Drives the web client as named users and checks each action's audit rows as it goes."""

    def __init__(self, client):
        self.client = client
        self.expected_by_model: collections.Counter[str] = collections.Counter()
        self.events_by_model: collections.Counter[str] = collections.Counter()
        self.events_checked = 0
        self.person_reads = 0
        self.person: Person | None = None

    def _marks(self) -> dict:
        marks = {
            m: (m.objects.order_by("-pgh_id").values_list("pgh_id", flat=True).first() or 0) for m in event_models()
        }
        marks[PlanEvent] = PlanEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        marks[Transfer] = Transfer.objects.order_by("-id").values_list("id", flat=True).first() or 0
        return marks

    def act(self, user, path: str, data: dict, *, expect: set[str], status=(302,)):
        """POST as `user`; then every event added names them and `expect` (model labels) all changed."""
        self.client.force_login(user)
        marks = self._marks()
        response = self.client.post(path, data)
        assert response.status_code in status, (path, response.status_code, response.content.decode()[:2000])
        changed = collections.Counter()
        for model in event_models():
            for event in model.objects.filter(pgh_id__gt=marks[model]).select_related("pgh_context"):
                label = tracked_label(model)
                changed[label] += 1
                context = event.pgh_context
                assert context is not None, f"{path}: an anonymous {label} event (no context)"
                assert context.metadata.get("user") == user.pk, (path, label, context.metadata, user.pk)
                assert context.metadata.get("url") == path, (path, label, context.metadata)
                self.events_checked += 1
        for transition in PlanEvent.objects.filter(id__gt=marks[PlanEvent]):
            assert transition.by_id == user.pk, (path, transition)
            changed["brokerage.PlanEvent"] += 1
        for transfer in Transfer.objects.filter(id__gt=marks[Transfer]):
            assert transfer.acting_user_id == user.pk, (path, transfer)
            changed["ledger.Transfer"] += 1
        not_changed = sorted(label for label in expect if not changed[label])
        assert not not_changed, f"{path}: expected audit rows for {not_changed}, got {dict(changed)}"
        self.expected_by_model.update(expect)
        self.events_by_model.update(changed)
        return response

    def read(self, user, path: str):
        """GET a page about the person as `user`: exactly one more RecordView, naming them."""
        self.client.force_login(user)
        before = RecordView.objects.count()
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert RecordView.objects.count() == before + 1, path
        view = RecordView.objects.order_by("-id").first()
        assert (view.user_id, view.person_id, view.path) == (user.pk, self.person.pk, path)
        self.person_reads += 1
        return response


@time_machine.travel(TODAY, tick=False)
def test_every_web_action_and_read_is_attributed_to_the_named_user(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    organisation = icb("North ICB")
    broker = user_with_role(Role.CARE_BROKER, organisation=organisation)
    coordinator = user_with_role(Role.CARE_COORDINATOR, organisation=organisation)
    approver = user_with_role(Role.ICB_APPROVER, organisation=organisation)
    finance = user_with_role(Role.FINANCE_OFFICER, organisation=organisation)
    manager = user_with_role(Role.FINANCE_MANAGER, organisation=organisation)
    patient = user_with_role(Role.PATIENT)
    nursing = service("District nursing visit", "Nursing care", "Northumbria Nursing", cqc="1-1000001", rate="58.00")
    pa = service("PA hours", "Personal assistant support", "Karen Dobson", rate="14.00")
    singing = service("Singing for lung health", "Leisure and wellbeing", "Harmony Singers", rate="6.00")
    holder = OrganisationFactory(name="Independent User Trust", kind=OrganisationKind.THIRD_PARTY_HOLDER)
    audit = Audit(client)

    # --- The broker adds the person and builds the plan ---
    audit.act(
        broker,
        reverse("brokerage:person-add"),
        {
            "nhs_number": "943 476 5919",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "date_of_birth": "1950-12-10",
            "address": "1 Quayside",
            "postcode": "NE1 3DX",
            "capacity": "has_capacity",
            "cohort": "continuing_healthcare",
            "icb": organisation.pk,
            "health_monitor": "Dr Byron",
        },
        expect={"brokerage.Person", "brokerage.Person_assigned_staff"},
    )
    person = audit.person = Person.objects.get(nhs_number="9434765919")
    person.assigned_staff.add(coordinator)  # set-up outside the web: not one of the checked actions
    audit.read(broker, f"/people/{person.pk}/")
    audit.act(broker, f"/people/{person.pk}/plans/new/", {}, expect={"brokerage.CarePlan"})
    plan = CarePlan.objects.get(person=person)
    plan_url = f"/plans/{plan.pk}/"
    audit.act(broker, f"{plan_url}about/", {"about_me": "Ada loves the sea."}, expect={"brokerage.CarePlan"})
    audit.act(
        broker,
        f"{plan_url}needs-and-outcomes/",
        {"action": "add_need", "need-description": "Help getting up"},
        expect={"brokerage.Need"},
    )
    need = plan.needs.get()
    audit.act(
        broker,
        f"{plan_url}needs-and-outcomes/",
        {"action": "add_outcome", "outcome-description": "Stays at home", "outcome-needs": [need.pk]},
        expect={"brokerage.Outcome", "brokerage.Outcome_needs"},
    )
    outcome = plan.outcomes.get()
    for line in [
        {"service": nursing.pk, "description": "Nursing", "management_type": "notional", "quantity": "104"},
        {
            "service": pa.pk,
            "description": "PA mornings",
            "management_type": "third_party",
            "third_party_holder": holder.pk,
            "quantity": "364",
        },
        {"service": singing.pk, "description": "Singing", "management_type": "direct_payment", "quantity": "50"},
    ]:
        audit.act(
            broker,
            f"{plan_url}support/",
            {"action": "add_line", "outcome": outcome.pk, "frequency": "weekly", **line},
            expect={"brokerage.PlanLine"},
        )
    audit.act(
        broker,
        f"{plan_url}budget/",
        {
            "budget": "12000",
            "indicative_budget": "12000",
            "funding_icb": "12000",
            "funding_local_authority": "0",
            "funding_contribution": "0",
        },
        expect={"brokerage.CarePlan"},
    )
    audit.act(
        broker,
        f"{plan_url}payments/",
        {
            "payment_frequency": "four_weekly",
            "contingency_amount": "500",
            "contingency_description": "Agency cover",
        },
        expect={"brokerage.CarePlan"},
    )
    for risk in ("Falls", "Trips"):
        audit.act(
            broker,
            f"{plan_url}risks/",
            {"action": "add_risk", "risk": risk, "mitigation": "Grab rails"},
            expect={"brokerage.Risk"},
        )
    trips = plan.risks.get(risk="Trips")
    audit.act(broker, f"{plan_url}risks/", {"action": "remove_risk", "remove": trips.pk}, expect={"brokerage.Risk"})
    assert not plan.risks.filter(pk=trips.pk).exists()
    audit.act(
        broker,
        f"{plan_url}coordination/",
        {
            "care_coordinator": coordinator.pk,
            "health_monitor": "Dr Byron",
            "first_review_date": "2027-03-20",
            "notice_period_days": "28",
        },
        expect={"brokerage.CarePlan"},
    )
    audit.read(broker, f"{plan_url}check/")
    audit.act(broker, f"{plan_url}check/", {}, expect={"brokerage.PlanEvent"}, status=(200, 302))

    # --- The approver approves; the broker records the agreement ---
    audit.read(approver, plan_url)
    audit.act(
        approver,
        f"{plan_url}decide/",
        {"action": "approve", "approve-exception_reasons": ""},
        expect={"brokerage.PlanEvent"},
        status=(200, 302),
    )
    audit.act(
        broker,
        f"{plan_url}agreement/",
        {"agreed_by_name": "Ada Lovelace", "agreed_on": "2026-12-20", "icb_signatory": approver.pk},
        expect={"brokerage.PlanEvent", "brokerage.CarePlan"},
    )
    plan.refresh_from_db()
    assert plan.status == PlanStatus.AGREED

    # --- Finance sets the budget up, and a payment run pays the first instalments ---
    audit.act(
        finance,
        f"/plans/{plan.pk}/budget/set-up/",
        {"start_date": "2026-12-01", "confirm": "yes"},
        expect={
            "budgets.Budget",
            "budgets.BudgetLine",
            "budgets.BudgetAccount",
            "budgets.ScheduledPayment",
            "brokerage.PlanEvent",
            "ledger.Transfer",
        },
    )
    budget = Budget.objects.get(plan=plan)
    add_bank_details(budget)  # what an administrator enters in the admin before the first run (not checked here)
    audit.read(finance, f"/budgets/{budget.pk}/")
    audit.act(
        finance,
        reverse("budgets:payment-runs"),
        {"run_date": "2026-12-20"},  # today: a run's date is never in the past
        expect={"budgets.PaymentRun", "budgets.PaymentRunItem"},
    )
    run_url = reverse("budgets:payment-run", kwargs={"pk": PaymentRun.objects.get().pk})
    audit.act(manager, run_url, {"action": "approve"}, expect={"budgets.PaymentRun"}, status=(200, 302))
    audit.act(
        manager,
        run_url,
        {"action": "pay"},
        expect={"budgets.PaymentRun", "budgets.ScheduledPayment", "ledger.Transfer"},
        status=(200, 302),
    )

    # --- The person records a purchase and pays an invoice from their direct payment ---
    person.user = patient
    person.save(update_fields=["user"])  # their sign-in is linked by an administrator (not checked here)
    dp_line = budget.lines.get(management_type="direct_payment")
    audit.read(patient, f"/my/budgets/{budget.pk}/")
    audit.act(
        patient,
        f"/my/budgets/{budget.pk}/purchases/new/",
        {
            "payee": "Harmony Singers",
            "spent_on": "2026-12-10",
            "amount": "6.00",
            "line": dp_line.pk,
            "key": "purchase-1",
            "receipt": SimpleUploadedFile("receipt.pdf", PDF),
        },
        expect={"budgets.DirectPaymentSpend", "ledger.Transfer"},
    )
    spend = DirectPaymentSpend.objects.get()
    audit.read(patient, f"/budgets/{budget.pk}/receipts/{spend.pk}/")
    Provider.objects.filter(pk=singing.provider_id).update(
        account_name="HARMONY", sort_code="112233", account_number="44556677"
    )
    invoice = {
        "provider": singing.provider_id,
        "invoice_number": "HS-9",
        "amount": "12.00",
        "line": dp_line.pk,
        "key": "invoice-1",
    }
    audit.act(
        patient,
        f"/my/budgets/{budget.pk}/invoices/pay/",
        {**invoice, "step": "confirm"},
        expect={"budgets.DirectPaymentInvoice", "ledger.Transfer"},
    )
    paid = DirectPaymentInvoice.objects.get()
    audit.read(patient, f"/my/budgets/{budget.pk}/invoices/{paid.pk}/")

    # --- The coordinator raises a review, completes it, suspends and resumes the budget ---
    monitoring_url = f"/budgets/{budget.pk}/monitoring/"
    audit.read(coordinator, monitoring_url)
    audit.act(
        coordinator,
        monitoring_url,
        {"action": "trigger", "trigger-reason": "concern", "trigger-note": "Ada fell at home"},
        expect={"budgets.Review"},
    )
    review = Review.objects.get(budget=budget, reason="concern")
    audit.read(coordinator, f"/reviews/{review.pk}/")
    body = {"participants": "Ada Lovelace\nthe coordinator", "decision": "no_change"}
    body.update({f"outcome_{item.pk}": "achieved" for item in plan.outcomes.all()})
    audit.act(coordinator, f"/reviews/{review.pk}/", body, expect={"budgets.Review", "budgets.ReviewOutcome"})
    audit.act(
        coordinator,
        monitoring_url,
        {"action": "suspend", "suspend-reason": "hospital", "suspend-reasons": "In hospital"},
        expect={"budgets.Suspension", "brokerage.PlanEvent"},
    )
    audit.act(coordinator, monitoring_url, {"action": "resume"}, expect={"budgets.Suspension", "brokerage.PlanEvent"})

    # --- The totals: events per table at least the actions, every one attributed; reads counted one for one ---
    short = {
        label: (audit.events_by_model[label], expected)
        for label, expected in audit.expected_by_model.items()
        if audit.events_by_model[label] < expected
    }
    assert not short, f"fewer audit rows than actions (rows, actions): {short}"
    assert audit.events_checked >= 60  # the walk really produced history, all of it attributed
    assert RecordView.objects.filter(person=person).count() == audit.person_reads == 9
    assert set(RecordView.objects.values_list("user_id", flat=True)) == {
        broker.pk,
        approver.pk,
        finance.pk,
        patient.pk,
        coordinator.pk,
    }
