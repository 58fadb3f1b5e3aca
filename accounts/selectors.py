"""Reads for the accounts pages."""

from __future__ import annotations

from django.urls import reverse

from accounts.models import User
from accounts.roles import DASHBOARD_PRECEDENCE, Role

# What each role does in the service, shown on its dashboard (DESIGN.md §1).
ROLE_PURPOSE = {
    Role.CARE_BROKER: "Find the people you support, build care and support plans with them and submit them.",
    Role.CARE_COORDINATOR: "Coordinate the care of the people assigned to you and keep their reviews on time.",
    Role.ICB_APPROVER: "Approve or return care and support plans, and decide reductions, suspensions and recoveries.",
    Role.PATIENT: "See your care and support plan, your budget and how it has been spent.",
    Role.REPRESENTATIVE: "See and manage the budgets of the people you represent.",
    Role.NOMINEE: "See and manage the direct payments you receive on someone's behalf.",
    Role.THIRD_PARTY_STAFF: "See the budgets your organisation holds, and record spending and returns.",
    Role.FINANCE_OFFICER: "Run payments, pay provider invoices and reconcile the accounts.",
    Role.FINANCE_MANAGER: "Approve payment runs, close periods and oversee the accounts.",
    Role.AUDITOR: "Read the accounts, the evidence behind them, and each plan's history of who changed what.",
    Role.ADMINISTRATOR: "Manage users, roles, organisations and reference data.",
}


def dashboard_links(*, user: User, role: Role) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    if role == Role.ADMINISTRATOR and user.is_staff:
        links.append({"href": reverse("admin:index"), "text": "Administration: users, roles and organisations"})
    if role in (Role.FINANCE_OFFICER, Role.FINANCE_MANAGER):
        # Less frequent finance pages: the header keeps only the daily ones so it fits without a "More" menu.
        links.append(
            {"href": reverse("ledger:reconcile"), "text": "Reconciliation: bank statements, matching, month close"}
        )
        links.append({"href": reverse("budgets:card-payments"), "text": "Card payments and refunds"})
        links.append({"href": reverse("budgets:holders"), "text": "Third-party holders' bank details"})
    if role in (Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.AUDITOR):
        links.append({"href": reverse("budgets:budget-list"), "text": "Budgets: find a person's budget"})
    if role == Role.THIRD_PARTY_STAFF:
        links.append({"href": reverse("budgets:held"), "text": "Budgets we hold: balances, spending and returns"})
    if role in (Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE):
        links.append({"href": reverse("budgets:my-budgets"), "text": "The budget, its spending and payments"})
    if role == Role.AUDITOR:
        links.append({"href": reverse("ledger:reconcile"), "text": "Reconciliation reports"})
        links.append({"href": reverse("budgets:payment-runs"), "text": "Payment runs: who prepared, approved and paid"})
        links.append({"href": reverse("budgets:invoices"), "text": "Provider invoices waiting to be paid"})
        links.append({"href": reverse("budgets:card-payments"), "text": "Card payments and refunds"})
    if role in (Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.AUDITOR, Role.ICB_APPROVER):
        links.append({"href": reverse("budgets:phb-return"), "text": "NHS England quarterly PHB return"})
        links.append({"href": reverse("budgets:recharges"), "text": "Recharges between funders of integrated budgets"})
    if role in (Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.AUDITOR):
        links.append({"href": reverse("api-docs"), "text": "API reference"})
    return links


def dashboard_for(*, user: User, role: Role) -> dict:
    other_roles = [r for r in DASHBOARD_PRECEDENCE if r in user.roles and r != role]
    return {
        "role": role,
        "purpose": ROLE_PURPOSE[role],
        "links": dashboard_links(user=user, role=role),
        "other_dashboards": [
            {"href": reverse("accounts:role-dashboard", kwargs={"role": r.value}), "text": r.label} for r in other_roles
        ],
    }
