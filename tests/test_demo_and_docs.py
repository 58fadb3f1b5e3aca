"""The demo seed (every app adds its part, deterministic, safe to re-run), the state graph and the API schema."""

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.demo import DEMO_USERS, demo_email
from accounts.models import User
from accounts.roles import Role
from brokerage.models import CarePlan, PlanStatus, SignInInvitation
from budgets import card_payments, reports
from budgets import demo as budget_demo
from budgets.models import (
    Budget,
    DirectPaymentReturn,
    DirectPaymentSpend,
    FunderPayment,
    HolderSpend,
    Invoice,
    Recovery,
    ReductionNotice,
    Review,
    StopDecision,
    Suspension,
)
from ledger import matching, reconciliation
from ledger.models import Account, CashAccount
from ledger.statements_import import statement_import
from ledger.verification import ledger_verify
from providers.models import Provider
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def test_demo_seed_gives_every_role_a_sign_in_and_every_plan_state(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(budget_demo, "STATEMENT_DIR", tmp_path)
    call_command("seed_demo", "--people", "14")
    assert {u.email for u in User.objects.all()} >= {demo_email(local) for _, local, _, _ in DEMO_USERS}
    assert set(CarePlan.objects.values_list("status", flat=True)) == set(PlanStatus)
    assert Provider.objects.count() >= 10
    assert ledger_verify().ok
    money_states = {
        PlanStatus.SETTING_UP,
        PlanStatus.ACTIVE,
        PlanStatus.UNDER_REVIEW,
        PlanStatus.SUSPENDED,
        PlanStatus.STOPPING,
        PlanStatus.FINAL_AUDIT,
        PlanStatus.CLOSED,
        PlanStatus.VARIED,
    }
    for plan in CarePlan.objects.filter(status__in=money_states):
        assert Budget.objects.filter(plan=plan).exists(), plan.status  # set up for real, not just walked
    active = Budget.objects.filter(plan__status=PlanStatus.ACTIVE)
    assert active.exists() and all(budget.first_paid_on for budget in active)
    assert Invoice.objects.filter(status="paid").exists()
    assert DirectPaymentSpend.objects.exists() and HolderSpend.objects.exists()  # the payments are being spent
    # Monitoring and endings: reviews, returns, a suspension, stops, a closing, recoveries and a reduction notice.
    assert Review.objects.exists() and DirectPaymentReturn.objects.exists() and Suspension.objects.exists()
    assert StopDecision.objects.exists() and Recovery.objects.exists() and ReductionNotice.objects.exists()
    # The local authority paid last quarter's recharges: the report shows nothing left owed, and the money came in
    # on this month's bank statement with its reference.
    payment = FunderPayment.objects.get()
    [authority] = [s for s in reports.recharges(payment.quarter).statements if s.kind == "local_authority"]
    assert authority.paid == payment.amount_pence > 0 and authority.net == 0
    assert payment.reference in budget_demo.demo_statement_path(timezone.localdate()).read_text()
    demo_bank_statement_reconciles()
    # Someone invited to sign in, who has not chosen a password yet; the demo patient has a contribution to pay.
    invited = SignInInvitation.objects.get()
    assert invited.person.user == invited.user and not invited.user.has_usable_password()
    patient_budget = Budget.objects.filter(plan__person__user__email=demo_email("patient")).latest("pk")
    assert card_payments.card_payments_due(patient_budget)["contribution"] > 0
    plans_before = CarePlan.objects.count()
    call_command("seed_demo", "--people", "14")  # a second run adds nothing twice
    assert CarePlan.objects.count() == plans_before
    assert User.objects.get(email=demo_email("patient")).person.plans.exists()


def demo_bank_statement_reconciles() -> None:
    """This month's bank statement, as the demo writes it, imports; everything but the bank's service charge
    matches automatically; the charge is recorded from its line; the account then reconciles."""
    today = timezone.localdate()
    finance = User.objects.filter(role_memberships__role=Role.FINANCE_OFFICER).first()
    bank = CashAccount.objects.get(account__code="icb:bank")
    data = budget_demo.demo_statement_path(today).read_bytes()
    record = statement_import(cash_account=bank, filename="natwest.csv", data=data, acting_user=finance)
    assert record.lines_added >= 2 and data.startswith(b"\xef\xbb\xbf")
    matching.auto_match(bank)
    [charge] = matching.unmatched_lines(bank)
    assert charge.description == "SERVICE CHARGE" and charge.amount < 0
    matching.transfer_from_line(
        line=charge,
        other_account_id=Account.objects.get(code="icb:bank-charges").pk,
        code="bank_charge",
        reason="NatWest's monthly service charge",
        acting_user=finance,
    )
    assert reconciliation.report(bank, today).reconciled
    assert reconciliation.report(CashAccount.objects.get(source="stripe"), today).reconciled


def test_graph_transitions_draws_every_state(capsys):
    call_command("graph_transitions", "brokerage.CarePlan")
    dot = capsys.readouterr().out
    for status in PlanStatus:
        assert f"status.{status.value}" in dot


def test_the_openapi_schema_is_served(client):
    client.force_login(user_with_role(Role.FINANCE_OFFICER))
    response = client.get("/api/schema/")
    schema = response.content.decode()
    assert response.status_code == 200
    for path in ["/api/ledger/transfers/", "/api/brokerage/plans/{id}/transition/", "/api/brokerage/plans/{id}/fhir/"]:
        assert path in schema
