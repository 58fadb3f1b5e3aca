"""Who may see and act on people and plans. Staff see only the people assigned to them; an ICB approver
sees plans of their own ICB and never decides a plan they wrote (rule 4)."""

import rules

from accounts.roles import Role
from accounts.rules import has_role
from brokerage.selectors import READER_ROLES

is_broker_or_coordinator = has_role(Role.CARE_BROKER, Role.CARE_COORDINATOR)
is_approver = has_role(Role.ICB_APPROVER)
is_reader = has_role(*READER_ROLES)  # finance and auditors read every person's record; administrators none


def _person_of(obj):
    return getattr(obj, "person", obj)


@rules.predicate
def is_assigned(user, obj) -> bool:
    person = _person_of(obj)
    if person is None or not user.is_authenticated:
        return False
    return person.care_coordinator_id == user.pk or person.assigned_staff.filter(pk=user.pk).exists()


@rules.predicate
def in_approvers_icb(user, obj) -> bool:
    person = _person_of(obj)
    return person is not None and user.organisation_id is not None and person.icb_id == user.organisation_id


@rules.predicate
def is_the_person_or_acts_for_them(user, obj) -> bool:
    person = _person_of(obj)
    if person is None or not user.is_authenticated:
        return False
    return person.user_id == user.pk or person.representatives.filter(user=user, active=True).exists()


@rules.predicate
def is_author(user, plan) -> bool:
    return plan is not None and plan.author_id == user.pk


can_view_person = (
    (is_broker_or_coordinator & is_assigned)
    | (is_approver & in_approvers_icb)
    | is_reader
    | (has_role(Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE) & is_the_person_or_acts_for_them)
)

rules.add_perm("brokerage.view_person", can_view_person)
rules.add_perm("brokerage.add_person", is_broker_or_coordinator)
# Representatives, nominees and connected people (rules 7 and 11) are recorded by the staff who work with the person;
# a connection's necessity is approved by an approver of the person's ICB (never the one who recorded it: the
# service checks that, with its own message).
rules.add_perm("brokerage.change_person", is_broker_or_coordinator & is_assigned)
rules.add_perm("brokerage.approve_necessity", is_approver & in_approvers_icb)
rules.add_perm("brokerage.view_careplan", can_view_person)
rules.add_perm("brokerage.add_careplan", is_broker_or_coordinator & is_assigned)
rules.add_perm("brokerage.change_careplan", is_broker_or_coordinator & is_assigned)
rules.add_perm("brokerage.approve_careplan", is_approver & in_approvers_icb & ~is_author)
# The budgets app moves plans through their money stages; finance and assigned coordinators may.
rules.add_perm(
    "brokerage.run_budget",
    (is_broker_or_coordinator & is_assigned) | has_role(Role.FINANCE_OFFICER, Role.FINANCE_MANAGER),
)
rules.add_perm("brokerage.view_approval_queue", is_approver)
rules.add_perm("brokerage.view_people", is_broker_or_coordinator | is_approver | is_reader)
