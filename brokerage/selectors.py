"""Reads, already scoped to what the user may see. Anything outside the scope is simply not found (404)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.roles import Role
from brokerage.models import CarePlan, ConnectedPerson, Person, PlanLine, PlanStatus, Relationship, Representative
from config.formatting import format_date

# Finance pays and reconciles every budget and auditors check it all, so both read every person's record. An
# administrator manages users, roles, organisations and reference data (DESIGN.md §1): no one's care records.
READER_ROLES = (Role.AUDITOR, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER)


def people_visible_to(user) -> QuerySet[Person]:
    if not user.is_authenticated:
        return Person.objects.none()
    if user.has_role(*READER_ROLES):
        return Person.objects.all()
    # Subqueries, not joins: a join through assigned staff or representatives repeats people and made PostgreSQL
    # read every person to drop the repeats (25 ms a page at 10,000 people).
    scope = Q(pk__in=[])
    if user.has_role(Role.CARE_BROKER, Role.CARE_COORDINATOR):
        assigned = Person.assigned_staff.through.objects.filter(user=user).values("person_id")
        scope |= Q(care_coordinator=user) | Q(pk__in=assigned)
    if user.has_role(Role.ICB_APPROVER) and user.organisation_id:
        scope |= Q(icb_id=user.organisation_id)
    if user.has_role(Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE):
        # A handful of people, looked up first: given "their own or one they act for" as one OR, PostgreSQL
        # guessed half of everyone and read every plan and budget to find one (19 ms at 10,000 people).
        own = Person.objects.filter(user=user).values_list("pk", flat=True)
        acting_for = Representative.objects.filter(user=user, active=True).values_list("person_id", flat=True)
        scope |= Q(pk__in=[*own, *acting_for])
    return Person.objects.filter(scope)


def person_get(*, user, pk: int) -> Person:
    return people_visible_to(user).select_related("icb", "local_authority", "care_coordinator").get(pk=pk)


def acting_for(person: Person) -> QuerySet[Representative]:
    """Everyone who acts or acted for the person (rule 7): those still acting first, then by name."""
    return person.representatives.order_by("-active", "name", "id")


def sign_in_status(user, invited_at) -> str:
    """Whether someone can sign in to see the person's record, in words: "Signs in as …", "Invited on …, not signed
    in yet", or "No sign-in"."""
    if user is None:
        return "No sign-in"
    if not user.is_active:
        return f"Sign-in closed ({user.email})"
    if user.last_login is not None:
        return f"Signs in as {user.email}"
    if invited_at is not None:
        return f"Invited on {format_date(timezone.localtime(invited_at))}, not signed in yet"
    return f"Has a sign-in ({user.email}), not signed in yet"


def sign_ins_for(person: Person) -> dict[int | None, dict]:
    """Who may sign in to see the person's record: the person (key None), then each representative or nominee still
    acting (key: their id), with their sign-in (or None), when they were last invited and that in words. A fixed
    number of queries, however many have been invited."""
    latest: dict[int | None, object] = {}
    invitations = person.sign_in_invitations.order_by("-at", "-id").values_list("representative_id", "at")
    for representative_id, at in invitations:
        latest.setdefault(representative_id, at)
    rows = {None: _sign_in_row(None, person.full_name, "The person", person.user, latest.get(None))}
    if person.user is None and (why := person.own_sign_in_refusal):
        rows[None].update(status=f"{person.given_name} {why}: their representative signs in for them", invitable=False)
    for rep in person.representatives.filter(active=True).select_related("user").order_by("name", "id"):
        rows[rep.pk] = _sign_in_row(rep, rep.name, rep.get_kind_display(), rep.user, latest.get(rep.pk))
    return rows


def _sign_in_row(representative, name: str, acts_as: str, user, invited_at) -> dict:
    return {
        "representative": representative,
        "name": name,
        "acts_as": acts_as,
        "user": user,
        "invited_at": invited_at,
        "status": sign_in_status(user, invited_at),
        "invitable": True,
    }


def connected_people(person: Person) -> QuerySet[ConnectedPerson]:
    """The payees close to the person (rule 11), with who approved paying them."""
    return person.connected_people.select_related(
        "provider", "necessity_approved_by", "necessity_withdrawn_by"
    ).order_by("provider__name")


def representative_get(*, user, pk: int) -> Representative:
    return Representative.objects.filter(person__in=people_visible_to(user)).select_related("person").get(pk=pk)


def connected_person_get(*, user, pk: int) -> ConnectedPerson:
    return (
        ConnectedPerson.objects.filter(person__in=people_visible_to(user))
        .select_related("person", "person__icb", "provider", "necessity_approved_by", "necessity_withdrawn_by")
        .get(pk=pk)
    )


def plans_visible_to(user) -> QuerySet[CarePlan]:
    return CarePlan.objects.filter(person__in=people_visible_to(user)).select_related("person", "author")


def plan_get(*, user, pk: int) -> CarePlan:
    return plans_visible_to(user).select_related("care_coordinator", "approved_by", "icb_signatory").get(pk=pk)


def plan_line_get(*, user, pk: int) -> PlanLine:
    """A line of a plan the user may see, with its plan and person."""
    return PlanLine.objects.select_related("plan__person").get(pk=pk, plan__in=plans_visible_to(user))


def approval_queue(user) -> QuerySet[CarePlan]:
    """Plans waiting for this approver: their ICB's, never their own."""
    if not user.has_role(Role.ICB_APPROVER) or not user.organisation_id:
        return CarePlan.objects.none()
    return (
        CarePlan.objects.filter(status=PlanStatus.SUBMITTED, person__icb_id=user.organisation_id)
        .exclude(author=user)
        .select_related("person", "author")
        .order_by("updated_at")
    )


# What each step waits for, shown on the broker's and coordinator's dashboards (the plan is theirs to move on).
WAITING_ON_THE_TEAM = {
    PlanStatus.RETURNED: "returned by the approver: change it and submit it again",
    PlanStatus.APPROVED: "approved: record the person's agreement",
    PlanStatus.AGREED: "agreed: finance sets the budget up",
}
WORK_LIMIT = 20


def plan_work(user) -> dict:
    """The plans waiting on this user's next step: to approve (an approver), or returned, approved or agreed
    plans of the people assigned to them (a broker or coordinator). At most WORK_LIMIT of each, oldest first."""
    to_approve = approval_queue(user)
    waiting = CarePlan.objects.none()
    if user.has_role(Role.CARE_BROKER, Role.CARE_COORDINATOR):
        waiting = (
            plans_visible_to(user).filter(status__in=list(WAITING_ON_THE_TEAM)).order_by("updated_at")[:WORK_LIMIT]
        )
    return {
        "to_approve_count": to_approve.count(),
        "to_approve": list(to_approve[:WORK_LIMIT]),
        "waiting": [(plan, WAITING_ON_THE_TEAM[plan.status]) for plan in waiting],
        "necessity": necessity_to_decide(user)[:WORK_LIMIT] if user.has_role(Role.ICB_APPROVER) else [],
    }


def necessity_to_decide(user) -> QuerySet[ConnectedPerson]:
    """Connected people of the approver's ICB whom the budget cannot pay until an approver records that paying them
    is necessary (rule 11), oldest first; never those the approver recorded as connected themselves."""
    close = Q(relationship__in=[Relationship.SPOUSE, Relationship.PARTNER]) | Q(lives_in_household=True)
    return (
        ConnectedPerson.objects.filter(close, person__in=people_visible_to(user), necessity_approved_on__isnull=True)
        .exclude(recorded_by=user)
        .select_related("person", "provider")
        .order_by("id")
    )


def person_search(query: str, *, path: str = "") -> Q:
    """People whose first or last name contains `query`, or whose NHS number it is (typed with or without spaces).
    `path` reaches the person from another model, for example "plan__person__"."""
    digits = query.replace(" ", "")
    return (
        Q(**{f"{path}family_name__icontains": query})
        | Q(**{f"{path}given_name__icontains": query})
        | Q(**{f"{path}nhs_number": digits})
    )
