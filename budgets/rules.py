"""Who may read a budget's statements (object rules on a Budget): the person and those acting for them, their
care coordinator, and finance. Nobody else, however much else they may see: brokers, approvers, holders and
auditors get 404 (DESIGN.md R7)."""

import rules

from accounts.roles import FINANCE_ROLES, PERSON_ROLES, Role
from accounts.rules import has_role


@rules.predicate
def acts_for_the_budgets_person(user, budget) -> bool:
    if budget is None or not user.is_authenticated:
        return False
    person = budget.plan.person
    return person.user_id == user.pk or person.representatives.filter(user=user, active=True).exists()


@rules.predicate
def coordinates_the_budget(user, budget) -> bool:
    if budget is None or not user.is_authenticated:
        return False
    return user.pk in (budget.plan.care_coordinator_id, budget.plan.person.care_coordinator_id)


can_read_statements = (
    (has_role(*PERSON_ROLES) & acts_for_the_budgets_person)
    | (has_role(Role.CARE_COORDINATOR) & coordinates_the_budget)
    | has_role(*FINANCE_ROLES)
)

rules.add_perm("budgets.view_statements", can_read_statements)
