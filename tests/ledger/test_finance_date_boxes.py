"""The finance pages' dates are NHS.UK's three boxes (day, month, year), as on every other form: the account
statement's and the exports' From and To, the trial balance's and the reconciliation's As at, a cash account's
Reconcile from, the Stripe import's days, and a budget's statements for other dates. A date that is not one gets
the error summary, linked to the Day box, and the boxes keep what was typed. The filters are GET forms: their
URLs can be bookmarked, and the links these pages make (and older bookmarks) with one ISO date a field still
work."""

import datetime
import html
import re

import pytest
from django.urls import reverse

from accounts.roles import Role
from ledger.models import AccountKind, CashAccount, StatementSource
from ledger.views import DATE_INVALID
from tests.factories import user_with_role
from tests.ledger.helpers import open_account, post
from tests.ledger.recon_helpers import bank

pytestmark = pytest.mark.django_db


def boxes(name: str, day: str, month: str, year: str) -> dict[str, str]:
    return {f"{name}[day]": day, f"{name}[month]": month, f"{name}[year]": year}


def date_boxes(page: str, name: str) -> dict[str, str]:
    """What each of the field's three boxes shows; the Day box carries the field's id."""
    assert re.search(rf'<input[^>]*id="id_{name}"[^>]*name="{name}\[day\]"', page), f"no day box for {name}"
    return dict(re.findall(rf'name="{name}\[(day|month|year)\]"[^>]*value="([^"]*)"', page))


def error_linked_to_day_box(page: str, name: str, message: str) -> bool:
    return (
        "nhsuk-error-summary" in page
        and f'href="#id_{name}"' in page
        and f'id="id_{name}-error"' in page
        and html.escape(message) in page
    )


@pytest.fixture
def finance_client(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    return client


@pytest.fixture
def cash():
    funding = open_account("boxes:funding", AccountKind.EQUITY)
    account = open_account("boxes:cash", AccountKind.ASSET)
    post(account, funding, 10_000, "allocation", effective_date=datetime.date(2026, 10, 5), description="October in")
    post(account, funding, 2_500, "allocation", effective_date=datetime.date(2026, 11, 5), description="November in")
    return account


def test_the_account_statement_filters_by_the_boxes_and_old_links_still_work(finance_client, cash):
    url = reverse("ledger:account-statement", kwargs={"pk": cash.pk})
    blank = finance_client.get(url).content.decode()
    assert 'type="date"' not in blank
    assert date_boxes(blank, "start") == {"day": "", "month": "", "year": ""} and date_boxes(blank, "end")
    assert re.search(r'<fieldset[^>]*role="group"', blank) and "For example, 1 10 2026" in blank

    typed = {**boxes("start", "1", "10", "2026"), **boxes("end", "31", "10", "2026")}
    page = finance_client.get(url, typed).content.decode()
    assert "1 October 2026 to 31 October 2026" in page and "October in" in page and "November in" not in page
    assert date_boxes(page, "start") == {"day": "1", "month": "10", "year": "2026"}
    # The download links carry the dates as one ISO value each, which the exports read.
    assert "?start=2026-10-01&amp;end=2026-10-31" in page
    # A bookmark made before the boxes: the same statement.
    old = finance_client.get(url, {"start": "2026-10-01", "end": "2026-10-31"}).content.decode()
    assert "1 October 2026 to 31 October 2026" in old and "October in" in old
    assert date_boxes(old, "end") == {"day": "31", "month": "10", "year": "2026"}


@pytest.mark.parametrize(
    "typed",
    [
        boxes("start", "31", "2", "2026"),  # no 31 February
        boxes("start", "1", "13", "2026"),
        boxes("start", "1", "10", "26"),  # a year needs its 4 numbers
        boxes("start", "first", "10", "2026"),
        boxes("start", "1", "", "2026"),
    ],
)
def test_a_statement_date_that_is_not_one_is_linked_to_its_day_box_and_kept(finance_client, cash, typed):
    url = reverse("ledger:account-statement", kwargs={"pk": cash.pk})
    response = finance_client.get(url, typed)
    page = response.content.decode()
    assert response.status_code == 200 and error_linked_to_day_box(page, "start", DATE_INVALID)
    assert date_boxes(page, "start") == {part: typed[f"start[{part}]"] for part in ("day", "month", "year")}
    export = reverse("ledger:statement-export", kwargs={"pk": cash.pk, "fmt": "csv"})
    refused = finance_client.get(export, typed)
    assert refused.status_code == 400 and error_linked_to_day_box(refused.content.decode(), "start", DATE_INVALID)


def test_the_end_before_the_start_is_said_beside_the_end(finance_client, cash):
    url = reverse("ledger:account-statement", kwargs={"pk": cash.pk})
    typed = {**boxes("start", "31", "10", "2026"), **boxes("end", "1", "10", "2026")}
    page = finance_client.get(url, typed).content.decode()
    assert error_linked_to_day_box(page, "end", "The end date must be the same as or after the start date")


def test_the_trial_balance_as_at_in_boxes_for_the_page_and_its_downloads(finance_client, cash):
    url = reverse("ledger:trial-balance")
    page = finance_client.get(url).content.decode()
    assert 'type="date"' not in page and date_boxes(page, "as_at") == {"day": "", "month": "", "year": ""}
    page = finance_client.get(url, boxes("as_at", "20", "10", "2026")).content.decode()
    assert "Trial balance as at 20 October 2026" in page and "£100.00" in page and "£125.00" not in page
    assert f'href="{reverse("ledger:trial-balance-csv")}?as_at=2026-10-20"' in page
    csv_boxes = finance_client.get(reverse("ledger:trial-balance-csv"), boxes("as_at", "20", "10", "2026"))
    csv_old = finance_client.get(reverse("ledger:trial-balance-csv"), {"as_at": "2026-10-20"})
    assert csv_boxes.status_code == 200 and csv_boxes.content == csv_old.content
    assert "trial-balance-2026-10-20" in csv_boxes["Content-Disposition"]
    bad = finance_client.get(url, boxes("as_at", "30", "2", "2026")).content.decode()
    assert error_linked_to_day_box(bad, "as_at", DATE_INVALID)
    assert date_boxes(bad, "as_at") == {"day": "30", "month": "2", "year": "2026"}
    refused = finance_client.get(reverse("ledger:trial-balance-xlsx"), boxes("as_at", "30", "2", "2026"))
    assert refused.status_code == 400 and error_linked_to_day_box(refused.content.decode(), "as_at", DATE_INVALID)


def test_the_transfers_export_takes_the_boxes_and_keeps_them_when_refused(finance_client, cash):
    page = finance_client.get(reverse("ledger:exports")).content.decode()
    assert 'type="date"' not in page and date_boxes(page, "start")["day"] == "1"  # this month so far
    url = reverse("ledger:transfers-export", kwargs={"fmt": "csv"})
    typed = {**boxes("start", "1", "10", "2026"), **boxes("end", "31", "10", "2026")}
    response = finance_client.get(url, typed)
    assert response.status_code == 200 and "transfers-2026-10-01-to-2026-10-31.csv" in response["Content-Disposition"]
    assert "October in" in response.content.decode() and "November in" not in response.content.decode()
    old = finance_client.get(url, {"start": "2026-10-01", "end": "2026-10-31"})
    assert old.content == response.content
    refused = finance_client.get(url, {**typed, **boxes("end", "30", "9", "2026")})
    page = refused.content.decode()
    assert refused.status_code == 400
    assert error_linked_to_day_box(page, "end", "The end date must be the same as or after the start date")
    assert date_boxes(page, "end") == {"day": "30", "month": "9", "year": "2026"}


def test_the_reconciliation_as_at_in_boxes(finance_client):
    cash_account = bank()
    url = reverse("ledger:reconcile-account", args=[cash_account.pk])
    page = finance_client.get(url, boxes("as_at", "31", "10", "2026")).content.decode()
    assert 'type="date"' not in page and "Reconciliation as at 31 October 2026" in page
    assert date_boxes(page, "as_at") == {"day": "31", "month": "10", "year": "2026"}
    assert "Reconciliation as at 31 October 2026" in finance_client.get(url, {"as_at": "2026-10-31"}).content.decode()
    bad = finance_client.get(url, boxes("as_at", "31", "11", "2026")).content.decode()
    assert error_linked_to_day_box(bad, "as_at", DATE_INVALID)
    assert date_boxes(bad, "as_at") == {"day": "31", "month": "11", "year": "2026"}


def cash_account_form(**changes) -> dict:
    data = {
        "account": "icb:current",
        "name": "ICB current account",
        "source": "ofx",
        "csv_mapping": "",
        **boxes("reconcile_from", "1", "10", "2026"),
        "opening_balance": "0.00",
        "date_window_days": "3",
    }
    data.update(changes)
    return data


def test_a_cash_account_reconciles_from_a_date_typed_in_boxes(finance_client):
    open_account("icb:current", AccountKind.ASSET)
    add = reverse("ledger:reconcile-account-add")
    form = finance_client.get(add).content.decode()
    assert 'type="date"' not in form and date_boxes(form, "reconcile_from")
    refused = finance_client.post(add, cash_account_form(**boxes("reconcile_from", "31", "9", "2026")))
    page = refused.content.decode()
    assert refused.status_code == 200 and error_linked_to_day_box(page, "reconcile_from", DATE_INVALID)
    assert date_boxes(page, "reconcile_from") == {"day": "31", "month": "9", "year": "2026"}
    assert not CashAccount.objects.exists()
    assert finance_client.post(add, cash_account_form()).status_code == 302
    cash_account = CashAccount.objects.get()
    assert cash_account.reconcile_from == datetime.date(2026, 10, 1)
    change = finance_client.get(reverse("ledger:reconcile-account-change", args=[cash_account.pk])).content.decode()
    assert date_boxes(change, "reconcile_from") == {"day": "1", "month": "10", "year": "2026"}


def test_the_stripe_import_days_are_boxes(finance_client, time_machine):
    time_machine.move_to(datetime.datetime(2026, 11, 25, 12, 0), tick=False)
    stripe = CashAccount.objects.create(
        account=open_account("boxes:stripe", AccountKind.ASSET),
        name="Stripe",
        source=StatementSource.STRIPE,
        reconcile_from=datetime.date(2026, 10, 1),
    )
    url = reverse("budgets:stripe-import", args=[stripe.pk])
    page = finance_client.get(url).content.decode()
    assert 'type="date"' not in page
    assert date_boxes(page, "start") == {"day": "1", "month": "11", "year": "2026"}
    assert date_boxes(page, "end") == {"day": "25", "month": "11", "year": "2026"}
    typed = {**boxes("start", "1", "11", "2026"), **boxes("end", "31", "11", "2026")}
    refused = finance_client.post(url, typed).content.decode()
    assert error_linked_to_day_box(refused, "end", DATE_INVALID)  # there is no 31 November
    assert date_boxes(refused, "end") == {"day": "31", "month": "11", "year": "2026"}


def test_a_statement_for_other_dates_is_asked_for_in_boxes(client, settings, tmp_path, time_machine):
    from tests.brokerage.helpers import agreed_crew
    from tests.budgets.test_person_pages import budget_in_use

    time_machine.move_to(datetime.datetime(2026, 11, 25, 12, 0), tick=False)
    settings.MEDIA_ROOT = tmp_path / "media"
    crew = agreed_crew()
    budget = budget_in_use(crew, start=datetime.date(2026, 10, 1))
    client.force_login(crew["finance"])
    listing = client.get(reverse("budgets:statements", kwargs={"pk": budget.pk})).content.decode()
    assert 'type="date"' not in listing and date_boxes(listing, "start") and date_boxes(listing, "end")
    url = reverse("budgets:statement", kwargs={"pk": budget.pk})
    typed = {**boxes("start", "1", "10", "2026"), **boxes("end", "15", "10", "2026")}
    page = client.get(url, typed)
    assert page.status_code == 200 and "15 October 2026" in page.content.decode()
    bad = client.get(url, {**typed, **boxes("end", "32", "10", "2026")}).content.decode()
    assert error_linked_to_day_box(bad, "end", "Enter a real end date, like 31 10 2026")
    assert date_boxes(bad, "end") == {"day": "32", "month": "10", "year": "2026"}
    old = client.get(url, {"start": "2026-10-01", "end": "2026-10-15"})
    assert old.status_code == 200 and "15 October 2026" in old.content.decode()
