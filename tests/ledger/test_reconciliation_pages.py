"""The reconciliation pages: import, auto-match, resolve by hand, close the month; finance only, never a 500."""

from __future__ import annotations

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.roles import Role
from ledger.models import AccountKind, ClosedPeriod, Match, StatementLine
from tests.factories import user_with_role
from tests.ledger.helpers import open_account, post
from tests.ledger.recon_helpers import bank, golden, mapping_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def books():
    cash = bank()
    funding = open_account("recon:funding", AccountKind.EQUITY)
    open_account("recon:charges", AccountKind.EXPENSE)
    post(cash.account, funding, 500_000, reference="FUND-OCT", effective_date=datetime.date(2026, 10, 1))
    post(funding, cash.account, 123_456, reference="payrun:12", effective_date=datetime.date(2026, 10, 4))
    return cash


def upload(client, cash, name, data, **extra):
    return client.post(
        reverse("ledger:reconcile-import", args=[cash.pk]),
        {"statement": SimpleUploadedFile(name, data), "on_bad_lines": "refuse", **extra},
    )


def test_journey_through_the_pages(client, books):
    cash = books
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    assert client.get(reverse("ledger:reconcile")).status_code == 200
    response = upload(client, cash, "oct.ofx", golden("ofx_v1.ofx"))
    assert response.status_code == 302 and StatementLine.objects.count() == 3
    response = client.post(reverse("ledger:reconcile-auto-match", args=[cash.pk]), follow=True)
    assert "Matched 2 lines automatically" in response.content.decode()
    fee = StatementLine.objects.get(amount=-750)
    page = client.get(reverse("ledger:reconcile-line", args=[fee.pk]))
    assert page.status_code == 200
    missing_reason = client.post(
        reverse("ledger:reconcile-line", args=[fee.pk]),
        {"action": "create", "other_account": "recon:charges", "code": "bank_charge", "reason": ""},
    )
    assert "Enter why this transfer is being created" in missing_reason.content.decode()
    client.post(
        reverse("ledger:reconcile-line", args=[fee.pk]),
        {"action": "create", "other_account": "recon:charges", "code": "bank_charge", "reason": "Account fee"},
    )
    assert Match.objects.filter(line=fee, active=True, automatic=False).exists()
    report = client.get(reverse("ledger:reconcile-account", args=[cash.pk]), {"as_at": "2026-10-31"})
    assert "Not reconciled" not in report.content.decode()
    # Only a finance manager closes the month.
    assert client.post(reverse("ledger:period-close"), {"month": "2026-10"}).status_code == 404
    client.force_login(user_with_role(Role.FINANCE_MANAGER))
    checklist = client.get(reverse("ledger:period-close"), {"month": "2026-10"})
    assert "Reconciled" in checklist.content.decode()
    closed = client.post(reverse("ledger:period-close"), {"month": "2026-10"}, follow=True)
    assert "October 2026 is closed" in closed.content.decode()
    assert ClosedPeriod.objects.filter(month=datetime.date(2026, 10, 1)).exists()


def test_a_refused_file_lists_its_problems_and_changes_nothing(client, books):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    response = upload(client, books, "x.csv", golden("hsbc.csv"), mapping=mapping_for("lloyds.csv").pk)
    assert response.status_code == 200
    assert "no column called" in response.content.decode() and StatementLine.objects.count() == 0


def test_closing_an_unreconciled_month_is_refused(client, books):
    client.force_login(user_with_role(Role.FINANCE_MANAGER))
    response = client.post(reverse("ledger:period-close"), {"month": "2026-10"})
    assert response.status_code == 200 and "not reconciled" in response.content.decode()
    assert not ClosedPeriod.objects.exists()


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_BROKER])
def test_other_roles_get_404(client, books, role):
    client.force_login(user_with_role(role))
    for name, args in [("ledger:reconcile", []), ("ledger:reconcile-account", [books.pk]), ("ledger:period-close", [])]:
        assert client.get(reverse(name, args=args)).status_code == 404


def test_auditors_read_but_cannot_change(client, books):
    client.force_login(user_with_role(Role.AUDITOR))
    assert client.get(reverse("ledger:reconcile-account", args=[books.pk])).status_code == 200
    assert upload(client, books, "oct.ofx", golden("ofx_v1.ofx")).status_code == 404
    assert client.post(reverse("ledger:reconcile-auto-match", args=[books.pk])).status_code == 404


@pytest.mark.parametrize(
    "params", [{"as_at": "nonsense"}, {"as_at": "2026-02-30"}, {"month": "x"}, {"month": "2026-13"}]
)
def test_bad_input_is_a_form_error(client, books, params):
    client.force_login(user_with_role(Role.FINANCE_MANAGER))
    assert client.get(reverse("ledger:reconcile-account", args=[books.pk]), params).status_code == 200
    assert client.get(reverse("ledger:period-close"), params).status_code == 200
