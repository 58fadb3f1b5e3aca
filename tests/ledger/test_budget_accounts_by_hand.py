"""A budget's ledger accounts are moved only by budgets' services (plan-line coding, payable states, funds, the
mixing flag). The ledger's tools that post by hand (the transfers API and recording a statement line's missing
transfer) refuse them, record nothing, and still serve every other account, the ICB's own included."""

from __future__ import annotations

import datetime
import html

import pytest
from django.urls import reverse

from accounts.roles import Role
from ledger import exceptions as errors
from ledger import matching, selectors
from ledger.models import Account, AccountKind, CashAccount, Match, Phase, StatementLine, Transfer
from ledger.statements_import import statement_import
from tests.factories import user_with_role
from tests.ledger.helpers import open_account, post, reserve
from tests.ledger.recon_helpers import bank, golden

pytestmark = pytest.mark.django_db

REFUSED = "AccountMovedByOwner"


@pytest.fixture
def chart():
    """The ICB's own accounts (owner "icb": postable by hand) beside budget 9's, as budgets' services open them."""
    icb_funding = open_account("icb:funding", AccountKind.EQUITY, owner_ref="icb")
    icb_charges = open_account("icb:bank-charges", AccountKind.EXPENSE, owner_ref="icb")
    held = open_account(
        "budget:9:held:direct-payment", AccountKind.ASSET, owner_ref="budget:9", credits_must_not_exceed_debits=True
    )
    funding = open_account("budget:9:funding:icb", AccountKind.EQUITY, owner_ref="budget:9")
    spend = open_account("budget:9:spend:line:1", AccountKind.EXPENSE, owner_ref="budget:9")
    # Budgets' services call the same ledger services without by_hand: these go through.
    allocation = post(held, funding, 10_000, "allocation", key="budget:9:allocation:held")
    commitment = reserve(spend, held, 1_000, "commitment", key="budget:9:commitment:1")
    post(icb_charges, icb_funding, 5_000, "allocation")
    return {
        "icb_funding": icb_funding,
        "icb_charges": icb_charges,
        "held": held,
        "funding": funding,
        "spend": spend,
        "allocation": allocation,
        "commitment": commitment,
    }


@pytest.fixture
def finance_client(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    return client


def ledger_state() -> tuple:
    """Every transfer and every counter: unchanged means nothing was recorded."""
    counters = Account.objects.order_by("code").values_list(
        "code", "debits_posted", "credits_posted", "debits_pending", "credits_pending"
    )
    return Transfer.objects.count(), list(counters)


def api_post(client, path, body, key):
    return client.post(path, body, content_type="application/json", headers={"Idempotency-Key": key})


# --- The API ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pending", [False, True])
@pytest.mark.parametrize(("debit", "credit"), [("held", "icb_funding"), ("icb_charges", "held")])
def test_the_api_refuses_a_transfer_to_or_from_a_budget_account(finance_client, chart, debit, credit, pending):
    before = ledger_state()
    body = {"debit_account": chart[debit].pk, "credit_account": chart[credit].pk, "amount": 100, "code": "top_up"}
    response = api_post(finance_client, "/api/ledger/transfers/", {**body, "pending": pending}, "by-hand-1")
    assert response.status_code == 422
    assert response.json() == {
        "error": REFUSED,
        "detail": errors.MOVED_BY_BUDGET.format(code="budget:9:held:direct-payment"),
    }
    assert ledger_state() == before
    assert not Transfer.objects.filter(idempotency_key="by-hand-1").exists()


def test_replaying_a_budgets_own_transfer_by_hand_is_refused_not_answered(finance_client, chart):
    allocation = chart["allocation"]
    body = {
        "debit_account": allocation.debit_account_id,
        "credit_account": allocation.credit_account_id,
        "amount": allocation.amount,
        "code": allocation.code,
        "effective_date": allocation.effective_date.isoformat(),
    }
    response = api_post(finance_client, "/api/ledger/transfers/", body, allocation.idempotency_key)
    assert response.status_code == 422 and response.json()["error"] == REFUSED


@pytest.mark.parametrize(
    ("transfer", "action"), [("allocation", "reverse"), ("commitment", "post"), ("commitment", "void")]
)
def test_the_api_refuses_to_reverse_post_or_void_a_budget_transfer(finance_client, chart, transfer, action):
    before = ledger_state()
    held_before = Account.objects.get(pk=chart["held"].pk)
    response = api_post(finance_client, f"/api/ledger/transfers/{chart[transfer].pk}/{action}/", {}, "undo-by-hand")
    assert response.status_code == 422
    assert response.json()["error"] == REFUSED
    assert "record its money on the budget's pages" in response.json()["detail"]
    assert ledger_state() == before
    held = Account.objects.get(pk=chart["held"].pk)
    assert (held.posted_balance, held.available_balance) == (held_before.posted_balance, 9_000)
    assert not chart["commitment"].resolutions.exists() and not chart["allocation"].reversals.exists()


def test_the_api_still_moves_money_between_other_accounts_whatever_their_owner(finance_client, chart):
    charges, funding = chart["icb_charges"], chart["icb_funding"]
    body = {"debit_account": charges.pk, "credit_account": funding.pk, "amount": 250, "code": "bank_charge"}
    created = api_post(finance_client, "/api/ledger/transfers/", body, "icb-1")
    assert created.status_code == 201
    assert Account.objects.get(pk=charges.pk).posted_balance == 5_250
    reversed_ = api_post(finance_client, f"/api/ledger/transfers/{created.json()['id']}/reverse/", {}, "icb-1-undo")
    assert reversed_.status_code == 201
    held = api_post(finance_client, "/api/ledger/transfers/", {**body, "pending": True}, "icb-2")
    assert held.status_code == 201
    posted = api_post(finance_client, f"/api/ledger/transfers/{held.json()['id']}/post/", {}, "icb-2-post")
    assert posted.status_code == 201
    assert Account.objects.get(pk=charges.pk).posted_balance == 5_250


def test_the_accounts_finance_may_name_leave_out_only_budget_accounts(chart):
    Account.objects.filter(pk=chart["icb_funding"].pk).update(closed=True)
    codes = set(selectors.accounts_postable_by_hand().values_list("code", flat=True))
    assert codes == {"icb:bank-charges"}


# --- Recording a statement line's missing transfer ----------------------------------------------------------------


@pytest.fixture
def fee(chart):
    """October's bank statement: its 7.50 account fee is missing from the ledger."""
    cash = bank("icb:bank")
    officer = user_with_role(Role.FINANCE_OFFICER)
    statement_import(cash_account=cash, filename="oct.ofx", data=golden("ofx_v1.ofx"), acting_user=officer)
    return StatementLine.objects.get(cash_account=cash, amount=-750)


def record(client, line, other_account: str):
    return client.post(
        reverse("ledger:reconcile-line", args=[line.pk]),
        {"action": "create", "other_account": other_account, "code": "bank_charge", "reason": "October fee"},
    )


def test_the_line_page_offers_no_budget_account(finance_client, fee):
    page = finance_client.get(reverse("ledger:reconcile-line", args=[fee.pk])).content.decode()
    assert 'value="icb:bank-charges"' in page and 'value="icb:funding"' in page
    assert "budget:9:" not in page


@pytest.mark.parametrize("code", ["budget:9:funding:icb", "budget:9:spend:line:1"])
def test_a_forged_budget_account_is_a_form_error_and_records_nothing(finance_client, fee, code):
    before = ledger_state()
    response = record(finance_client, fee, code)
    page = response.content.decode()
    assert response.status_code == 200
    assert "There is a problem" in page and "Choose an account from the list" in page
    assert ledger_state() == before and not Match.objects.filter(line=fee).exists()


def test_the_line_page_still_records_a_transfer_to_another_account(finance_client, chart, fee):
    response = record(finance_client, fee, "icb:bank-charges")
    assert response.status_code == 302
    match = Match.objects.get(line=fee, active=True)
    transfer = match.links.get().transfer
    assert (transfer.debit_account_id, transfer.amount) == (chart["icb_charges"].pk, 750)
    assert Account.objects.get(pk=chart["icb_charges"].pk).posted_balance == 5_750


def test_the_service_refuses_a_budget_account_whichever_side_it_is_on(finance_client, chart, fee):
    """The page's choices are one guard; the service is the other, for any caller."""
    officer = user_with_role(Role.FINANCE_OFFICER)
    before = ledger_state()
    with pytest.raises(errors.AccountMovedByOwner, match="belongs to a budget"):
        matching.transfer_from_line(
            line=fee, other_account_id=chart["funding"].pk, code="bank_charge", reason="Fee", acting_user=officer
        )
    assert ledger_state() == before and not Match.objects.filter(line=fee).exists()

    # A budget's own account reconciled as a cash account: its lines are matched here, never created here.
    cash = CashAccount.objects.create(account=chart["held"], name="Direct-payment account", reconcile_from=fee.date)
    statement_import(cash_account=cash, filename="oct.ofx", data=golden("ofx_v1.ofx"), acting_user=officer)
    line = StatementLine.objects.get(cash_account=cash, amount=-750)
    page = finance_client.get(reverse("ledger:reconcile-line", args=[line.pk])).content.decode()
    assert "record money missing from it on the budget's pages" in page and 'value="create"' not in page
    before = ledger_state()
    response = record(finance_client, line, "icb:bank-charges")
    page = html.unescape(response.content.decode())
    assert response.status_code == 200 and "There is a problem" in page
    assert errors.MOVED_BY_BUDGET.format(code="budget:9:held:direct-payment") in page
    assert ledger_state() == before and not Match.objects.filter(line=line).exists()


# --- A real budget --------------------------------------------------------------------------------------------------


def test_every_account_a_real_budget_opens_is_refused_and_the_icbs_are_not(finance_client):
    """budgets marks each account it opens for a budget `budget:<id>`, at set-up and on first use later (card
    payments, recovery, uncoded spending...); the ICB's bank and Stripe accounts it opens are owned by "icb"."""
    from budgets import card_payments, ending
    from budgets import services as budgets
    from tests.brokerage.helpers import agreed_crew

    crew = agreed_crew()
    budget = budgets.budget_set_up(
        plan=crew["plan"], acting_user=crew["finance"], start_date=datetime.date(2026, 12, 1)
    )
    card = card_payments.card_account(budget, "contribution")
    owned = Account.objects.filter(owner_ref=budget.owner_ref)
    assert owned.count() == budget.accounts.count() >= 7 and owned.filter(pk=card.pk).exists()
    assert all(account.code.startswith(f"{budget.owner_ref}:") and account.moved_by_owner for account in owned)
    postable = selectors.accounts_postable_by_hand()
    assert not postable.filter(owner_ref__startswith="budget:").exists()
    icb = [ending.icb_bank_account(), card_payments.stripe_balance_account()]
    assert postable.filter(pk__in=[a.pk for a in icb]).count() == 2 and not any(a.moved_by_owner for a in icb)

    before = ledger_state()
    opening = Transfer.objects.filter(phase=Phase.POSTED, credit_account__owner_ref=budget.owner_ref).first()
    commitment = Transfer.objects.get(phase=Phase.PENDING, debit_account__owner_ref=budget.owner_ref)
    held = Account.objects.get(code=f"{budget.owner_ref}:held:icb")
    for path, body in [
        (f"/api/ledger/transfers/{opening.pk}/reverse/", {}),
        (f"/api/ledger/transfers/{commitment.pk}/void/", {}),
        ("/api/ledger/transfers/", {"debit_account": icb[0].pk, "credit_account": held.pk, "amount": 1, "code": "x"}),
    ]:
        response = api_post(finance_client, path, body, f"by-hand:{path}")
        assert (response.status_code, response.json()["error"]) == (422, REFUSED), path
    assert ledger_state() == before
