"""Setting up reconciliation on the pages: CSV layouts (with a try-it step) and cash accounts. Finance staff add and
change, auditors only see the lists, everyone else gets a 404; every save names who made it in the history."""

from __future__ import annotations

import datetime
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from markupsafe import escape

from accounts.roles import Role
from ledger import reconciliation_setup as setup
from ledger import services
from ledger.models import AccountKind, CashAccount, CsvMapping, StatementLine
from tests.factories import user_with_role
from tests.ledger.helpers import open_account
from tests.ledger.recon_helpers import LAYOUTS, bank, golden

pytestmark = pytest.mark.django_db
TODAY = datetime.date.today()


def layout_form(filename: str, **changes) -> dict:
    data = {field: "" for field in setup.MAPPING_FIELDS}
    data.update(LAYOUTS[filename])
    data.update(changes)
    return data


def cash_form(**changes) -> dict:
    data = {
        "account": "icb:current",
        "name": "ICB current account",
        "source": "ofx",
        "csv_mapping": "",
        "reconcile_from": "2026-10-01",
        "opening_balance": "1,234.56",
        "date_window_days": "3",
    }
    data.update(changes)
    return data


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def shows_error(response, message: str) -> bool:
    html = page(response)
    return "There is a problem" in html and str(escape(message)) in html


@pytest.fixture
def officer(client):
    user = user_with_role(Role.FINANCE_OFFICER)
    client.force_login(user)
    return user


@pytest.fixture
def current():
    return open_account("icb:current", AccountKind.ASSET)


# --- CSV layouts ----------------------------------------------------------------------------------------------------


def test_a_finance_officer_adds_a_layout_with_names_trimmed_and_is_named_in_the_history(client, officer):
    data = layout_form("lloyds.csv", date_column="  Transaction Date ", name=" Lloyds ")
    response = client.post(reverse("ledger:reconcile-layout-add"), data)
    assert response.status_code == 302 and response.url == reverse("ledger:reconcile-layouts")
    mapping = CsvMapping.objects.get()
    assert (mapping.name, mapping.date_column, mapping.debit_column) == ("Lloyds", "Transaction Date", "Debit Amount")
    event = mapping.events.order_by("pgh_id").last()
    assert event.pgh_context.metadata["user"] == officer.pk
    assert event.pgh_context.metadata["action"] == "csv_mapping_save"
    listing = page(client.get(reverse("ledger:reconcile-layouts")))
    assert "Lloyds" in listing and "like 31/10/2026" in listing and "Out: Debit Amount; in: Credit Amount" in listing


@pytest.mark.parametrize(
    ("changes", "field_message"),
    [
        ({"amount_column": "", "debit_column": "", "credit_column": ""}, setup.AMOUNTS_MISSING),
        ({"credit_column": ""}, setup.CREDIT_MISSING),
        ({"debit_column": ""}, setup.DEBIT_MISSING),
        ({"amount_column": "Amount"}, setup.AMOUNTS_BOTH),
        ({"date_format": "%d/%d/%Y"}, setup.DATE_FORMAT_INVALID),  # strptime raises re.error for this one
        ({"date_format": "%d/%m"}, setup.DATE_FORMAT_INVALID),  # no year
        ({"date_format": "31/10/2026"}, setup.DATE_FORMAT_INVALID),  # no codes at all
        ({"date_format": "%Q %Y"}, setup.DATE_FORMAT_INVALID),
        ({"date_format": "%"}, setup.DATE_FORMAT_INVALID),
        ({"date_column": "   "}, "Enter the date column"),
        ({"name": ""}, "Enter a name for the layout"),
    ],
)
def test_a_wrong_layout_is_refused_with_the_reason_in_the_error_summary(client, officer, changes, field_message):
    response = client.post(reverse("ledger:reconcile-layout-add"), layout_form("lloyds.csv", **changes))
    assert shows_error(response, field_message)
    assert CsvMapping.objects.count() == 0


def test_a_layout_name_is_used_once(client, officer):
    client.post(reverse("ledger:reconcile-layout-add"), layout_form("lloyds.csv"))
    again = client.post(reverse("ledger:reconcile-layout-add"), layout_form("hsbc.csv", name="Lloyds"))
    assert shows_error(again, setup.NAME_TAKEN.format(name="Lloyds"))
    assert CsvMapping.objects.count() == 1


def test_changing_a_layout(client, officer):
    client.post(reverse("ledger:reconcile-layout-add"), layout_form("hsbc.csv"))
    mapping = CsvMapping.objects.get()
    form = page(client.get(reverse("ledger:reconcile-layout-change", args=[mapping.pk])))
    assert 'value="Narrative"' in form and 'value="%Y-%m-%d"' in form
    response = client.post(
        reverse("ledger:reconcile-layout-change", args=[mapping.pk]), layout_form("hsbc.csv", date_format="%d.%m.%Y")
    )
    assert response.status_code == 302
    mapping.refresh_from_db()
    assert mapping.date_format == "%d.%m.%Y" and CsvMapping.objects.count() == 1
    assert [e.date_format for e in mapping.events.order_by("pgh_id")] == ["%Y-%m-%d", "%d.%m.%Y"]


def test_trying_a_layout_on_a_sample_shows_the_first_lines_and_saves_nothing(client, officer):
    data = layout_form("lloyds.csv", action="try", sample=SimpleUploadedFile("oct.csv", golden("lloyds.csv")))
    html = page(client.post(reverse("ledger:reconcile-layout-add"), data))
    assert "3 lines read" in html and "Nothing was imported" in html
    assert "ICB FUNDING FUND-OCT" in html and "£5,000.00" in html and "-£1,234.56" in html and "£3,757.94" in html
    assert CsvMapping.objects.count() == 0 and StatementLine.objects.count() == 0


def test_trying_the_wrong_layout_says_why_it_cannot_read_the_file(client, officer):
    data = layout_form("lloyds.csv", action="try", sample=SimpleUploadedFile("oct.csv", golden("hsbc.csv")))
    html = page(client.post(reverse("ledger:reconcile-layout-add"), data))
    assert "Cannot be read" in html and "no column called" in html and "Whole file" not in html
    bad_dates = layout_form("hsbc.csv", date_format="%d/%m/%Y", action="try")
    bad_dates["sample"] = SimpleUploadedFile("oct.csv", golden("hsbc.csv"))
    html = page(client.post(reverse("ledger:reconcile-layout-add"), bad_dates))
    assert "0 lines read; 3 with problems" in html and str(escape("'2026-10-02' is not a date like 31/10/2026")) in html
    assert CsvMapping.objects.count() == 0


def test_trying_without_a_sample_asks_for_one(client, officer):
    response = client.post(reverse("ledger:reconcile-layout-add"), layout_form("hsbc.csv", action="try"))
    assert shows_error(response, "Choose a sample statement to try the layout on")


# --- Cash accounts --------------------------------------------------------------------------------------------------


def test_a_finance_officer_sets_up_a_cash_account(client, officer, current):
    open_account("recon:income", AccountKind.INCOME)  # not an asset: not offered
    form = page(client.get(reverse("ledger:reconcile-account-add")))
    assert 'value="icb:current"' in form and "recon:income" not in form
    response = client.post(reverse("ledger:reconcile-account-add"), cash_form())
    cash = CashAccount.objects.get()
    assert response.status_code == 302 and response.url == reverse("ledger:reconcile-account", args=[cash.pk])
    assert (cash.account, cash.name, cash.source, cash.csv_mapping) == (current, "ICB current account", "ofx", None)
    assert (cash.reconcile_from, cash.opening_balance, cash.date_window_days) == (datetime.date(2026, 10, 1), 123456, 3)
    event = cash.events.order_by("pgh_id").last()
    assert event.pgh_context.metadata["user"] == officer.pk
    listing = page(client.get(reverse("ledger:reconcile")))
    assert "ICB current account" in listing and reverse("ledger:reconcile-account-change", args=[cash.pk]) in listing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "csv"}, setup.LAYOUT_NEEDED),
        ({"date_window_days": "32"}, setup.WINDOW_RANGE),
        ({"date_window_days": "-1"}, setup.WINDOW_RANGE),
        ({"date_window_days": "two"}, setup.WINDOW_RANGE),
        ({"opening_balance": "12.345"}, "Enter the opening balance in pounds and pence, like 1,234.56 or -25.00"),
        ({"opening_balance": "abc"}, "Enter the opening balance in pounds and pence, like 1,234.56 or -25.00"),
        ({"opening_balance": "1e30"}, "Enter the opening balance in pounds and pence, like 1,234.56 or -25.00"),
        ({"opening_balance": ""}, "Enter the opening balance, or 0.00"),
        ({"reconcile_from": "0001-01-01"}, "Enter a date from 01/01/2000 to"),
        ({"reconcile_from": "2026-02-30"}, "Enter a real date, like 31 10 2026"),
        ({"account": ""}, "Choose the ledger account"),
        ({"account": "no:such"}, setup.ACCOUNT_NOT_SUITABLE),
        ({"account": "icb:closed"}, setup.ACCOUNT_NOT_SUITABLE),
        ({"account": "recon:bank"}, setup.ACCOUNT_NOT_SUITABLE),  # already a cash account
        ({"name": " "}, "Enter the name of the bank account"),
    ],
)
def test_a_wrong_cash_account_is_refused_with_the_reason(client, officer, current, changes, message):
    services.account_close(account=open_account("icb:closed", AccountKind.ASSET))
    bank()
    response = client.post(reverse("ledger:reconcile-account-add"), cash_form(**changes))
    assert shows_error(response, message)
    assert CashAccount.objects.count() == 1  # only the one bank() made


def test_a_negative_opening_balance_and_a_csv_layout(client, officer, current):
    mapping = CsvMapping.objects.create(**LAYOUTS["hsbc.csv"])
    data = cash_form(opening_balance="-£20.00", source="csv", csv_mapping=mapping.pk, date_window_days="0")
    assert client.post(reverse("ledger:reconcile-account-add"), data).status_code == 302
    cash = CashAccount.objects.get()
    assert (cash.opening_balance, cash.csv_mapping, cash.date_window_days) == (-2000, mapping, 0)


def test_changing_a_cash_account_keeps_its_ledger_account(client, officer, current):
    client.post(reverse("ledger:reconcile-account-add"), cash_form())
    cash = CashAccount.objects.get()
    other = open_account("icb:other", AccountKind.ASSET)
    url = reverse("ledger:reconcile-account-change", args=[cash.pk])
    form = page(client.get(url))
    assert 'value="1,234.56"' in form and 'name="account"' not in form and "icb:current" in form
    changed = cash_form(account=other.code, reconcile_from="2026-11-01", opening_balance="-5.00", name="Renamed")
    response = client.post(url, changed)
    assert response.status_code == 302
    cash.refresh_from_db()
    assert (cash.account, cash.name, cash.reconcile_from, cash.opening_balance) == (
        current,
        "Renamed",
        datetime.date(2026, 11, 1),
        -500,
    )
    assert [e.opening_balance for e in cash.events.order_by("pgh_id")] == [123456, -500]


def test_with_many_asset_accounts_the_code_is_typed(client, officer, current, monkeypatch):
    from ledger import setup_views

    monkeypatch.setattr(setup_views, "ACCOUNT_SELECT_LIMIT", 0)
    form = page(client.get(reverse("ledger:reconcile-account-add")))
    assert 'id="id_account" name="account" type="text"' in form
    assert client.post(reverse("ledger:reconcile-account-add"), cash_form()).status_code == 302
    assert CashAccount.objects.get().account == current


def test_only_the_organisations_accounts_are_offered_named_and_in_order_not_every_budgets(client, officer, current):
    """A cash account mirrors a bank or Stripe account whose statements finance receives: the ICB's own, not the
    internal accounts every budget opens (160 of them in the demo, so many that the list used to become a box to
    type a code into)."""
    from budgets.card_payments import stripe_balance_account
    from budgets.ending import icb_bank_account

    bank_account, stripe = icb_bank_account(), stripe_balance_account()
    for budget in range(1, 61):  # three asset accounts each, as budgets open them: 180 in all
        for purpose in ("held:icb", "held:direct-payment", "contingency"):
            services.account_open(
                code=f"budget:{budget}:{purpose}", name=purpose, kind=AccountKind.ASSET, owner_ref=f"budget:{budget}"
            )
    open_account("icb:payments-clearing", AccountKind.ASSET)
    open_account("icb:expenses", AccountKind.EXPENSE)  # not an asset
    services.account_close(account=open_account("icb:old-bank", AccountKind.ASSET))  # closed
    bank("icb:reconciled")  # already a cash account

    form = page(client.get(reverse("ledger:reconcile-account-add")))
    select = form[form.index('<select class="nhsuk-select" id="id_account"') : form.index("</select>")]
    options = re.findall(r'<option value="([^"]*)"[^>]*>\s*([^<]*?)\s*</option>', select)
    assert options == [
        ("", "Choose an account"),
        ("icb:bank", "ICB bank account (icb:bank)"),
        ("icb:current", "Icb Current (icb:current)"),
        ("icb:payments-clearing", "Icb Payments-Clearing (icb:payments-clearing)"),
        ("icb:stripe-balance", "Stripe balance (icb:stripe-balance)"),
    ], options
    assert "budget:" not in form and "a budget&#39;s own accounts are not" in form
    assert setup.offered_accounts().count() == 4 and setup.eligible_accounts().count() == 184

    # A budget's account is not one to choose here; an offered one is set up.
    refused = client.post(reverse("ledger:reconcile-account-add"), cash_form(account="budget:7:held:direct-payment"))
    assert shows_error(refused, setup.ACCOUNT_NOT_SUITABLE) and CashAccount.objects.count() == 1
    chosen = client.post(reverse("ledger:reconcile-account-add"), cash_form(account=bank_account.code, name="Bank"))
    assert chosen.status_code == 302 and CashAccount.objects.filter(account=bank_account).exists()
    again = page(client.get(reverse("ledger:reconcile-account-add")))
    assert 'value="icb:bank"' not in again and 'value="icb:stripe-balance"' in again
    assert stripe.code == "icb:stripe-balance"


# --- A layout made on the page imports a bank's file ----------------------------------------------------------------


def test_a_layout_and_cash_account_made_on_the_pages_import_the_golden_csv(client, officer, current):
    client.post(reverse("ledger:reconcile-layout-add"), layout_form("clydesdale.csv"))
    mapping = CsvMapping.objects.get()
    client.post(reverse("ledger:reconcile-account-add"), cash_form(source="csv", csv_mapping=mapping.pk))
    cash = CashAccount.objects.get()
    response = client.post(
        reverse("ledger:reconcile-import", args=[cash.pk]),
        {"statement": SimpleUploadedFile("oct.csv", golden("clydesdale.csv")), "on_bad_lines": "refuse"},
    )
    assert response.status_code == 302
    assert list(StatementLine.objects.filter(cash_account=cash).order_by("date").values_list("amount", "bank_id")) == [
        (500_000, "CB-1"),
        (-123_456, "CB-2"),
        (-750, "CB-3"),
    ]


# --- Who may ----------------------------------------------------------------------------------------------------------


def setup_urls(cash: CashAccount, mapping: CsvMapping) -> list[str]:
    return [
        reverse("ledger:reconcile-account-add"),
        reverse("ledger:reconcile-account-change", args=[cash.pk]),
        reverse("ledger:reconcile-layout-add"),
        reverse("ledger:reconcile-layout-change", args=[mapping.pk]),
    ]


def test_an_auditor_sees_the_lists_but_cannot_add_or_change(client):
    cash, mapping = bank(), CsvMapping.objects.create(**LAYOUTS["hsbc.csv"])
    client.force_login(user_with_role(Role.AUDITOR))
    accounts = page(client.get(reverse("ledger:reconcile")))
    assert "ICB bank" in accounts and "Add a cash account" not in accounts and "/settings/" not in accounts
    layouts = page(client.get(reverse("ledger:reconcile-layouts")))
    assert "HSBCnet" in layouts and "Add a CSV layout" not in layouts
    assert reverse("ledger:reconcile-layout-change", args=[mapping.pk]) not in layouts
    for url in setup_urls(cash, mapping):
        assert client.get(url).status_code == 404, url
        assert (
            client.post(url, {**cash_form(account=cash.account.code), **layout_form("lloyds.csv")}).status_code == 404
        )
    assert CashAccount.objects.count() == 1 and CsvMapping.objects.get().name == "HSBCnet"


@pytest.mark.parametrize("role", [Role.PATIENT, Role.CARE_COORDINATOR, None])
def test_everyone_else_gets_a_404(client, role):
    cash, mapping = bank(), CsvMapping.objects.create(**LAYOUTS["hsbc.csv"])
    if role:
        client.force_login(user_with_role(role))
    for url in [reverse("ledger:reconcile-layouts"), *setup_urls(cash, mapping)]:
        assert client.get(url).status_code == 404, url
        assert client.post(url, layout_form("lloyds.csv")).status_code == 404, url


# --- The services refuse on their own, without the forms --------------------------------------------------------------


def test_the_services_refuse_what_the_forms_would(current):
    officer = user_with_role(Role.FINANCE_OFFICER)
    with pytest.raises(setup.SetupRefused) as caught:
        setup.csv_mapping_save(acting_user=officer, **{**LAYOUTS["lloyds.csv"], "credit_column": " "})
    assert caught.value.field == "credit_column"
    settings = {
        "name": "ICB",
        "source": "csv",
        "csv_mapping": None,
        "reconcile_from": datetime.date(2026, 10, 1),
        "opening_balance": 0,
        "date_window_days": 3,
    }
    with pytest.raises(setup.SetupRefused, match="CSV layout"):
        setup.cash_account_save(acting_user=officer, account=current, **settings)
    settings["source"] = "ofx"
    cash = setup.cash_account_save(acting_user=officer, account=current, **settings)
    with pytest.raises(setup.SetupRefused, match="cannot be changed"):
        setup.cash_account_save(
            acting_user=officer, cash_account=cash, account=open_account("icb:x", AccountKind.ASSET), **settings
        )
    assert CashAccount.objects.get().account == current


def test_two_people_making_the_same_account_a_cash_account_get_a_message_not_an_error(current, monkeypatch):
    officer = user_with_role(Role.FINANCE_OFFICER)
    settings = {
        "name": "ICB",
        "source": "ofx",
        "csv_mapping": None,
        "reconcile_from": datetime.date(2026, 10, 1),
        "opening_balance": 0,
        "date_window_days": 3,
    }
    setup.cash_account_save(acting_user=officer, account=current, **settings)
    # The other person's check ran before this one saved: only the database's unique constraint stops them.
    monkeypatch.setattr(setup, "eligible_accounts", lambda: type(current).objects.all())
    with pytest.raises(setup.SetupRefused, match="already a cash account"):
        setup.cash_account_save(acting_user=officer, account=current, **settings)
    assert CashAccount.objects.count() == 1
