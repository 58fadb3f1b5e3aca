"""Reads of a person's record are audited (R9): every URL that names an object is classified, every successful GET
of a person page or download by a signed-in user adds exactly one RecordView row for that user and person, nothing
else adds one, the rows cannot be changed, and a view that cannot be recorded is not shown (503)."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core.exceptions import FieldError
from django.db import DatabaseError, transaction
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.roles import Role
from brokerage import view_audit
from brokerage.models import RecordView
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def url_names_with_kwargs(resolver=None, namespace=(), inherited=frozenset()):
    """(view name, captured kwargs) for every named URL that captures something, walking includes."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        captured = set(pattern.pattern.regex.groupindex) | set(inherited)
        if isinstance(pattern, URLResolver):
            inner = namespace + ((pattern.namespace,) if pattern.namespace else ())
            yield from url_names_with_kwargs(pattern, inner, frozenset(captured))
        elif isinstance(pattern, URLPattern) and pattern.name and captured:
            yield ":".join((*namespace, pattern.name)), captured


def test_every_url_naming_an_object_is_classified_as_person_data_or_not():
    urls = dict(url_names_with_kwargs())
    assert "brokerage:person" in urls and "budgets:letter-pdf" in urls  # the walk reaches the apps' URLs
    unclassified = sorted(name for name in urls if not view_audit.is_classified(name))
    assert not unclassified, (
        f"say whether reading these shows a person's record (brokerage/view_audit.py): {unclassified}"
    )
    both = set(view_audit.PERSON_PAGES) & set(view_audit.NOT_PERSON_DATA)
    assert not both
    stale = sorted(set(view_audit.PERSON_PAGES) - set(urls)) + sorted(set(view_audit.NOT_PERSON_DATA) - set(urls))
    assert not stale, f"no such URL: {stale}"
    for name, resolver in view_audit.PERSON_PAGES.items():
        assert resolver.kwarg in urls[name], (name, resolver.kwarg)


def test_every_resolver_path_is_a_real_lookup():
    for name, resolver in view_audit.PERSON_PAGES.items():
        try:
            assert resolver.person_id({resolver.kwarg: "0"}) is None
        except FieldError as exc:  # a typo in the lookup path
            pytest.fail(f"{name}: {exc}")
    assert view_audit.PERSON.person_id({"pk": "not a number"}) is None


@pytest.fixture
def world(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    crew = agreed_crew()
    crew["budget"] = budget_in_use(crew, start=datetime.date(2026, 12, 1))
    crew["patient"] = user_with_role(Role.PATIENT)
    crew["person"].user = crew["patient"]
    crew["person"].save(update_fields=["user"])
    crew["other"] = agreed_crew()  # someone else's record, for the refusals
    return crew


def test_n_reads_by_different_users_give_exactly_n_rows_with_the_right_user_and_person(client, world):
    person, plan, budget = world["person"], world["plan"], world["budget"]
    reads = [
        (world["broker"], f"/people/{person.pk}/", "brokerage:person"),
        (world["broker"], f"/plans/{plan.pk}/history/", "brokerage:plan-history"),
        (world["coordinator"], f"/plans/{plan.pk}/", "brokerage:plan"),
        (world["coordinator"], f"/budgets/{budget.pk}/monitoring/", "budgets:monitoring"),
        (world["approver"], f"/plans/{plan.pk}/", "brokerage:plan"),
        (world["finance"], f"/budgets/{budget.pk}/", "budgets:budget"),
        (world["finance"], f"/budgets/{budget.pk}/spend.csv", "budgets:budget-spend-export"),
        (world["patient"], f"/my/budgets/{budget.pk}/", "budgets:my-budget"),
        (world["patient"], f"/my/budgets/{budget.pk}/transactions/", "budgets:my-transactions"),
        (world["broker"], f"/api/brokerage/people/{person.pk}/", "brokerage-api:person-detail"),
        (world["broker"], f"/api/brokerage/plans/{plan.pk}/", "brokerage-api:plan-detail"),
        (world["finance"], f"/api/budgets/budgets/{budget.pk}/", "budgets-api:budget-detail"),
    ]
    assert not RecordView.objects.exists()
    for user, path, _ in reads:
        client.force_login(user)
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    rows = list(RecordView.objects.order_by("id"))
    assert len(rows) == len(reads)
    for row, (user, path, name) in zip(rows, reads, strict=True):
        assert (row.user_id, row.person_id, row.path, row.what, row.method) == (user.pk, person.pk, path, name, "GET")
    # HEAD reads the record too.
    client.force_login(world["broker"])
    assert client.head(f"/people/{person.pk}/").status_code == 200
    assert RecordView.objects.filter(method="HEAD", user=world["broker"], person=person).count() == 1


def test_the_apis_lists_record_one_row_per_person_listed(client, world):
    person, other = world["person"], world["other"]["person"]
    client.force_login(world["finance"])  # a reader: finance sees every person
    lists = [
        ("/api/brokerage/people/", "brokerage-api:person-list"),
        ("/api/brokerage/plans/", "brokerage-api:plan-list"),
        ("/api/brokerage/plan-lines/", "brokerage-api:plan-line-list"),
        ("/api/budgets/budgets/", "budgets-api:budget-list"),
    ]
    for path, name in lists:
        before = RecordView.objects.count()
        response = client.get(path)
        assert response.status_code == 200, path
        added = RecordView.objects.order_by("id")[before:]
        listed = {row.person_id for row in added}
        assert all((row.user_id, row.what, row.path) == (world["finance"].pk, name, path) for row in added)
        assert person.pk in listed and len(added) == len(listed), (path, listed)
        if name != "budgets-api:budget-list":  # the other person's plan has no budget yet
            assert other.pk in listed, path
    client.force_login(world["broker"])  # sees only their own people
    before = RecordView.objects.count()
    assert client.get("/api/brokerage/people/").status_code == 200
    assert list(RecordView.objects.order_by("id")[before:].values_list("person_id", flat=True)) == [person.pk]


def test_an_api_list_whose_views_cannot_be_recorded_is_withheld(client, world, monkeypatch):
    def refuse(*args, **kwargs):
        raise DatabaseError("audit table unavailable")

    monkeypatch.setattr(RecordView.objects, "bulk_create", refuse)
    client.force_login(world["broker"])
    response = client.get("/api/brokerage/people/")
    assert response.status_code == 503 and world["person"].nhs_number not in response.content.decode()


def test_refusals_lists_writes_and_anonymous_requests_add_no_row(client, world):
    person, plan, budget = world["person"], world["plan"], world["budget"]
    other_plan = world["other"]["plan"]
    client.force_login(world["broker"])
    assert client.get(f"/plans/{other_plan.pk}/").status_code == 404  # not their record
    assert client.get("/people/").status_code == 200  # a list of several people
    assert client.get("/approvals/").status_code in (200, 404)
    client.force_login(world["patient"])
    assert client.get("/my/").status_code in (200, 302)
    assert client.get(f"/plans/{other_plan.pk}/").status_code == 404
    client.post(f"/plans/{plan.pk}/reopen/", {})  # a write is audited by its history, not here
    client.logout()
    assert client.get(f"/people/{person.pk}/").status_code == 302  # to the sign-in page
    assert client.get(f"/my/budgets/{budget.pk}/").status_code == 302
    assert not RecordView.objects.exists()


def test_a_view_that_cannot_be_recorded_is_not_shown(client, world, monkeypatch):
    def refuse(**kwargs):
        raise DatabaseError("audit table unavailable")

    monkeypatch.setattr(view_audit, "record_view", refuse)
    client.force_login(world["broker"])
    response = client.get(f"/people/{world['person'].pk}/")
    page = response.content.decode()
    assert response.status_code == 503 and "Sorry, the service is unavailable" in page
    assert world["person"].family_name not in page and world["person"].nhs_number not in page
    assert not RecordView.objects.exists()


def test_a_real_insert_failure_answers_503_and_the_next_read_is_recorded(client, world, monkeypatch):
    """The insert really reaches PostgreSQL and fails there (a value too long for its column)."""
    original = view_audit.record_view
    monkeypatch.setattr(view_audit, "record_view", lambda **kw: original(**{**kw, "method": "X" * 20}))
    client.force_login(world["coordinator"])
    assert client.get(f"/plans/{world['plan'].pk}/").status_code == 503
    monkeypatch.setattr(view_audit, "record_view", original)
    assert client.get(f"/plans/{world['plan'].pk}/").status_code == 200
    assert list(RecordView.objects.values_list("user_id", flat=True)) == [world["coordinator"].pk]


def test_record_views_cannot_be_changed_or_deleted(client, world):
    client.force_login(world["broker"])
    client.get(f"/people/{world['person'].pk}/")
    row = RecordView.objects.get()
    with pytest.raises(DatabaseError), transaction.atomic():
        RecordView.objects.filter(pk=row.pk).update(user=world["coordinator"])
    with pytest.raises(DatabaseError), transaction.atomic():
        RecordView.objects.filter(pk=row.pk).delete()
    assert RecordView.objects.get().user_id == world["broker"].pk


def test_auditors_read_the_views_in_the_admin_but_cannot_change_them(world):
    from django.contrib import admin

    model_admin = admin.site._registry[RecordView]
    assert not model_admin.has_add_permission(None)
    assert not model_admin.has_change_permission(None) and not model_admin.has_delete_permission(None)


@time_machine.travel(datetime.datetime(2026, 12, 20, 10, 0), tick=False)
def test_a_download_that_cannot_be_recorded_is_withheld_and_one_that_can_is_recorded(client, world, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from budgets.models import DirectPaymentSpend
    from tests.budgets.test_person_pages import PDF

    budget = world["budget"]
    client.force_login(world["patient"])
    dp_line = budget.lines.get(management_type="direct_payment")
    body = {"payee": "Harmony Singers", "spent_on": "2026-12-10", "amount": "6.00", "line": dp_line.pk, "key": "r"}
    posted = client.post(
        f"/my/budgets/{budget.pk}/purchases/new/", {**body, "receipt": SimpleUploadedFile("r.pdf", PDF)}
    )
    assert posted.status_code == 302
    receipt = f"/budgets/{budget.pk}/receipts/{DirectPaymentSpend.objects.get().pk}/"
    original = view_audit.record_view

    def refuse(**kwargs):
        raise DatabaseError("audit table unavailable")

    monkeypatch.setattr(view_audit, "record_view", refuse)
    withheld = client.get(receipt)
    assert withheld.status_code == 503 and PDF not in withheld.content
    monkeypatch.setattr(view_audit, "record_view", original)
    served = client.get(receipt)
    assert served.status_code == 200 and b"".join(served.streaming_content) == PDF
    assert list(RecordView.objects.values_list("what", "user_id")) == [("budgets:receipt", world["patient"].pk)]
