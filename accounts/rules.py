"""Role predicates and the permissions every app checks by name (`user.has_perm("ledger.view_account")`).

Permission names are plain strings, so leaf apps such as the ledger check them without importing this app.
Object-aware rules (a broker sees only their own people) live with the app that owns the objects.
"""

import rules

from accounts.roles import FINANCE_ROLES, Role


def has_role(*roles: str) -> rules.Predicate:
    name = "has_role:" + ",".join(roles)

    @rules.predicate(name=name)
    def predicate(user) -> bool:
        return bool(user) and user.is_authenticated and user.has_role(*roles)

    return predicate


is_care_broker = has_role(Role.CARE_BROKER)
is_care_coordinator = has_role(Role.CARE_COORDINATOR)
is_icb_approver = has_role(Role.ICB_APPROVER)
is_patient = has_role(Role.PATIENT)
is_representative = has_role(Role.REPRESENTATIVE)
is_nominee = has_role(Role.NOMINEE)
is_third_party_staff = has_role(Role.THIRD_PARTY_STAFF)
is_finance_officer = has_role(Role.FINANCE_OFFICER)
is_finance_manager = has_role(Role.FINANCE_MANAGER)
is_finance = has_role(*FINANCE_ROLES)
is_auditor = has_role(Role.AUDITOR)
is_administrator = has_role(Role.ADMINISTRATOR)

# One dashboard per role: `accounts.view_dashboard_<role>`.
for role in Role:
    rules.add_perm(f"accounts.view_dashboard_{role.value}", has_role(role))

rules.add_perm("accounts.manage_users", is_administrator)

# The provider directory: everyone who plans, approves or pays for support.
rules.add_perm(
    "providers.view_directory",
    is_care_broker | is_care_coordinator | is_icb_approver | is_finance | is_auditor | is_administrator,
)

# Payment runs: finance officers prepare and pay them; a finance officer or manager other than the author
# approves (checked by the service).
rules.add_perm("budgets.run_payments", is_finance)
# Third-party holder staff see the budgets their organisation holds, and record spending and returns there.
rules.add_perm("budgets.hold_budgets", is_third_party_staff)
# Patients, representatives and nominees see their own budgets (scoped to the people they act for).
rules.add_perm("budgets.view_own_budget", is_patient | is_representative | is_nominee)

# The ledger's finance pages and API: finance staff use them, auditors read them.
rules.add_perm("ledger.view_account", is_finance | is_auditor)
rules.add_perm("ledger.add_transfer", is_finance)
rules.add_perm("ledger.close_period", is_finance_manager)

# --- Ending a budget (budgets/ending.py) --------------------------------------------------------------------------
# Finance staff issue recovery notices and record repayments and liabilities; only a finance manager writes money
# off or closes a budget, and never on a notice they issued themselves (rule 4, checked by the service).
rules.add_perm("budgets.recover_money", is_finance)
rules.add_perm("budgets.write_off", is_finance_manager)
rules.add_perm("budgets.close_budget", is_finance_manager)
# --- end ending ---------------------------------------------------------------------------------------------------

# --- Finance reports (budgets/reports.py): the quarterly PHB return and recharges between funders -----------------
# Finance staff prepare them, auditors read them, ICB approvers see their own ICB's (scoped by the selectors).
rules.add_perm("budgets.view_reports", is_finance | is_auditor | is_icb_approver)
# Finance staff record what local authorities pay towards their recharges; the others above read it.
rules.add_perm("budgets.record_funder_payments", is_finance)
# --- end finance reports ------------------------------------------------------------------------------------------
