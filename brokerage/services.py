"""Every write to people and plans. Transitions check permission (has_transition_perm: calling the
transition alone does not) and conditions, save with optimistic locking, and record a PlanEvent."""

from __future__ import annotations

import datetime
import hashlib
import json
from decimal import Decimal

import pghistory
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed, has_transition_perm

from accounts.models import OrganisationKind
from brokerage import exceptions as errors
from brokerage.models import (
    ActorKind,
    CarePlan,
    ConnectedPerson,
    ManagementType,
    Need,
    Outcome,
    Person,
    PlanEvent,
    PlanLine,
    PlanStatus,
    Reconsideration,
    Representative,
    Risk,
)
from brokerage.validation import OVER_BUDGET_KIND, plan_problems
from config.formatting import format_date

# The fields each builder section may set; anything else is refused.
SECTION_FIELDS = {
    "about": {"about_me"},
    "budget": {"indicative_budget", "budget", "funding_icb", "funding_local_authority", "funding_contribution"},
    "payments": {"payment_frequency", "contingency_amount", "contingency_description"},
    "coordination": {"care_coordinator", "health_monitor", "first_review_date", "notice_period_days"},
}


# --- People -------------------------------------------------------------------------------------------


def person_create(*, acting_user, **fields) -> Person:
    with transaction.atomic():
        person = Person(**fields)
        person.full_clean()
        person.save()
        person.assigned_staff.add(acting_user)
    return person


def _history(action: str, acting_user):
    """Audit rows (pghistory) name who did it and what, even when a service runs outside a web request."""
    return pghistory.context(user=getattr(acting_user, "pk", None), action=action)


def _may_record(person: Person, acting_user) -> None:
    if not acting_user.has_perm("brokerage.change_person", person):
        raise errors.RecordRefused(errors.NOT_YOUR_PERSON)


# --- Representatives and nominees (rule 7) ------------------------------------------------------------------


def representative_problems(
    *,
    person: Person,
    kind: str,
    basis: str = "",
    nominated_on: datetime.date | None = None,
    consent_recorded_on: datetime.date | None = None,
) -> dict[str, str]:
    """What is wrong with recording this representative or nominee, by form field (first problem first). The
    model's own rule-7 checks (Representative.clean) are run by full_clean when it is saved."""
    problems: dict[str, str] = {}
    today = timezone.localdate()
    if kind == ActorKind.REPRESENTATIVE and not basis:
        problems["basis"] = errors.BASIS_REQUIRED
    if kind == ActorKind.NOMINEE:
        if nominated_on is None:
            problems["nominated_on"] = errors.NOMINATED_ON_REQUIRED
        elif nominated_on > today:
            problems["nominated_on"] = errors.DATE_IN_FUTURE.format(what="date they were nominated")
        if consent_recorded_on is None:
            problems["consent_recorded_on"] = errors.CONSENT_REQUIRED
        elif consent_recorded_on > today:
            problems["consent_recorded_on"] = errors.DATE_IN_FUTURE.format(what="date the nominee consented")
        elif nominated_on is not None and consent_recorded_on < nominated_on:
            problems["consent_recorded_on"] = errors.CONSENT_BEFORE_NOMINATION
    return problems


def representative_add(
    *,
    person: Person,
    acting_user,
    kind: str,
    name: str,
    relationship: str,
    basis: str = "",
    nominated_on: datetime.date | None = None,
    consent_recorded_on: datetime.date | None = None,
) -> Representative:
    """Record someone who receives or manages the direct payment for the person: a representative (for a child
    under 16 or an adult lacking capacity, with that basis) or a nominee (nominated by a person with capacity, with
    the dates of the nomination and of the nominee's consent). A representative's dates and a nominee's basis do
    not apply to them and are not kept."""
    _may_record(person, acting_user)
    if kind == ActorKind.REPRESENTATIVE:
        nominated_on = consent_recorded_on = None
    else:
        basis = ""
    with transaction.atomic(), _history("representative_add", acting_user):
        # Locked and read afresh: the checks below rest on the person's capacity and age, which a change to their
        # details made at the same moment must not slip past (brokerage.person_edit locks the same row).
        person = Person.objects.select_for_update().get(pk=person.pk)
        problems = representative_problems(
            person=person, kind=kind, basis=basis, nominated_on=nominated_on, consent_recorded_on=consent_recorded_on
        )
        if problems:
            field, message = next(iter(problems.items()))
            raise errors.RecordRefused(message, field=field)
        representative = Representative(
            person=person,
            kind=kind,
            name=name.strip(),
            relationship=relationship.strip(),
            basis=basis,
            nominated_on=nominated_on,
            consent_recorded_on=consent_recorded_on,
        )
        try:
            representative.full_clean()
        except ValidationError as exc:
            # The model's rule-7 checks are about no one field: shown on the choice that breaks them.
            raise _refusal(exc, non_field="basis" if kind == ActorKind.REPRESENTATIVE else "kind") from exc
        representative.save()
    return representative


def _refusal(exc: ValidationError, *, non_field: str | None = None) -> errors.RecordRefused:
    """The first of full_clean's messages, on its field (messages about no one field on `non_field`)."""
    for field, messages in exc.message_dict.items():
        return errors.RecordRefused(messages[0], field=non_field if field == NON_FIELD_ERRORS else field)
    return errors.RecordRefused(str(exc))


def representative_end(*, representative: Representative, acting_user) -> Representative:
    """They stop acting for the person (and lose any sign-in access to their record). Kept, never deleted (rule 22)."""
    _may_record(representative.person, acting_user)
    with transaction.atomic(), _history("representative_end", acting_user):
        current = Representative.objects.select_for_update().get(pk=representative.pk)
        if not current.active:
            raise errors.RecordRefused(errors.ALREADY_ENDED.format(name=current.name))
        current.active = False
        current.ended_on = timezone.localdate()
        current.save(update_fields=["active", "ended_on"])
    representative.active, representative.ended_on = current.active, current.ended_on
    return representative


# --- Connected people (rule 11) ------------------------------------------------------------------------------


def connected_person_add(
    *, person: Person, acting_user, provider, relationship: str, lives_in_household: bool
) -> ConnectedPerson:
    """Record that a payee in the directory is the person's spouse, partner, family member or friend. Paying a
    spouse or partner, or anyone in the household, is then blocked until a necessity approval is recorded."""
    _may_record(person, acting_user)
    if not provider.active:
        raise errors.RecordRefused(errors.PROVIDER_INACTIVE.format(provider=provider.name), field="provider")
    if ConnectedPerson.objects.filter(person=person, provider=provider).exists():
        raise errors.RecordRefused(errors.ALREADY_CONNECTED.format(provider=provider.name), field="provider")
    connection = ConnectedPerson(
        person=person,
        provider=provider,
        relationship=relationship,
        lives_in_household=lives_in_household,
        recorded_by=acting_user,
    )
    try:
        connection.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise _refusal(exc) from exc
    try:
        with transaction.atomic(), _history("connected_person_add", acting_user):
            connection.save()
    except IntegrityError as exc:  # connected_person_once: recorded already (perhaps just now, by someone else)
        raise errors.RecordRefused(errors.ALREADY_CONNECTED.format(provider=provider.name), field="provider") from exc
    return connection


def connected_person_approve_necessity(
    *, connection: ConnectedPerson, acting_user, reasons: str, approved_on: datetime.date | None = None
) -> ConnectedPerson:
    """Rule 11: an ICB approver of the person's ICB, other than whoever recorded the connection, records why paying
    this connected person is necessary, and when. Until then paying them is blocked."""
    person = connection.person
    if not acting_user.has_perm("brokerage.approve_necessity", connection):
        raise errors.RecordRefused(errors.NECESSITY_NOT_APPROVER.format(icb=person.icb.name))
    if connection.recorded_by_id is not None and connection.recorded_by_id == acting_user.pk:
        raise errors.RecordRefused(errors.NECESSITY_OWN_RECORD)
    if not reasons.strip():
        raise errors.ReasonsRequired(errors.REASONS_REQUIRED)
    approved_on = approved_on or timezone.localdate()
    if approved_on > timezone.localdate():
        raise errors.RecordRefused(errors.DATE_IN_FUTURE.format(what="date of the approval"))
    with transaction.atomic(), _history("connected_person_approve_necessity", acting_user):
        current = ConnectedPerson.objects.select_for_update().select_related("provider").get(pk=connection.pk)
        if not current.needs_necessity_approval:
            raise errors.RecordRefused(errors.NECESSITY_NOT_NEEDED.format(provider=current.provider.name))
        if current.necessity_approved_on is not None:
            raise errors.RecordRefused(
                errors.NECESSITY_ALREADY.format(
                    provider=current.provider.name, day=format_date(current.necessity_approved_on)
                )
            )
        current.necessity_approved_on = approved_on
        current.necessity_approved_by = acting_user
        current.necessity_reasons = reasons.strip()
        current.save(update_fields=["necessity_approved_on", "necessity_approved_by", "necessity_reasons"])
    connection.necessity_approved_on = current.necessity_approved_on
    connection.necessity_approved_by = acting_user
    connection.necessity_reasons = current.necessity_reasons
    return connection


# --- Building a plan ----------------------------------------------------------------------------------


def plan_create(*, person: Person, acting_user) -> CarePlan:
    """Start a draft plan: the person's first, or the next version of their latest (a variation)."""
    with transaction.atomic():
        latest = person.plans.select_for_update().order_by("-version").first()
        if latest is not None and latest.status in (
            PlanStatus.DRAFT,
            PlanStatus.SUBMITTED,
            PlanStatus.RETURNED,
            PlanStatus.APPROVED,
        ):
            raise errors.TransitionRefused("This person already has a plan in progress")
        plan = CarePlan.objects.create(
            person=person,
            author=acting_user,
            version=(latest.version + 1) if latest else 1,
            previous=latest,
            care_coordinator=person.care_coordinator,
            health_monitor=person.health_monitor,
        )
        if latest is not None:
            _copy_contents(source=latest, target=plan)
    return plan


def _copy_contents(*, source: CarePlan, target: CarePlan) -> None:
    """A variation starts as a copy of the plan it replaces; the old version is left exactly as it was."""
    for name in (
        "about_me",
        "indicative_budget",
        "budget",
        "funding_icb",
        "funding_local_authority",
        "funding_contribution",
        "payment_amount",
        "payment_frequency",
        "contingency_amount",
        "contingency_description",
        "notice_period_days",
        "care_coordinator",
        "health_monitor",
        "first_review_date",
    ):
        setattr(target, name, getattr(source, name))
    target.save()
    needs = {need.pk: Need.objects.create(plan=target, description=need.description) for need in source.needs.all()}
    for outcome in source.outcomes.prefetch_related("needs", "lines"):
        copy = Outcome.objects.create(plan=target, description=outcome.description)
        copy.needs.set([needs[need.pk] for need in outcome.needs.all()])
        for line in outcome.lines.all():
            line.pk = None
            line.plan = target
            line.outcome = copy
            line.save()
    for risk in source.risks.all():
        Risk.objects.create(plan=target, risk=risk.risk, mitigation=risk.mitigation)


def _require_draft(plan: CarePlan, acting_user) -> None:
    if not acting_user.has_perm("brokerage.change_careplan", plan):
        raise errors.TransitionRefused(errors.NOT_ALLOWED.format(action="change"))
    if not plan.is_editable:
        raise errors.PlanNotEditable(errors.NOT_EDITABLE.format(status=plan.get_status_display().lower()))


def plan_update(*, plan: CarePlan, acting_user, section: str, **fields) -> CarePlan:
    _require_draft(plan, acting_user)
    unknown = set(fields) - SECTION_FIELDS[section]
    if unknown:
        raise ValueError(f"{section} cannot set {sorted(unknown)}")
    for name, value in fields.items():
        setattr(plan, name, value)
    plan.save()
    return plan


def need_add(*, plan: CarePlan, acting_user, description: str) -> Need:
    _require_draft(plan, acting_user)
    return Need.objects.create(plan=plan, description=description)


def outcome_add(*, plan: CarePlan, acting_user, description: str, needs: list[Need]) -> Outcome:
    _require_draft(plan, acting_user)
    outcome = Outcome.objects.create(plan=plan, description=description)
    outcome.needs.set([need for need in needs if need.plan_id == plan.pk])
    return outcome


SERVICE_KEEPS_CATEGORY = "A service from the directory keeps its own category, {category}: leave Category empty"
# Who holds a line's money follows its management type: only a third-party line has (and needs) a holder.
HOLDER_REQUIRED = "Select the organisation that will hold the money"
HOLDER_NOT_INDEPENDENT = "Choose a third-party holder that is independent of the NHS and the person"
HOLDER_ONLY_FOR_THIRD_PARTY = "Choose a third-party holder only for a third-party budget line"


def line_holder_problem(*, management_type: str, third_party_holder) -> str:
    """What is wrong with this line's third-party holder for its management type ("" if nothing)."""
    if management_type == ManagementType.THIRD_PARTY:
        if third_party_holder is None:
            return HOLDER_REQUIRED
        if third_party_holder.kind != OrganisationKind.THIRD_PARTY_HOLDER:
            return HOLDER_NOT_INDEPENDENT
    elif third_party_holder is not None:
        return HOLDER_ONLY_FOR_THIRD_PARTY
    return ""


def line_add(
    *,
    plan: CarePlan,
    acting_user,
    description: str,
    category,
    outcome: Outcome,
    management_type: str,
    frequency: str,
    quantity: Decimal,
    unit_cost,
    service=None,
    provider=None,
    third_party_holder=None,
) -> PlanLine:
    _require_draft(plan, acting_user)
    _check_line(
        plan=plan,
        outcome=outcome,
        service=service,
        category=category,
        management_type=management_type,
        third_party_holder=third_party_holder,
    )
    return PlanLine.objects.create(
        plan=plan,
        description=description,
        category=category,
        outcome=outcome,
        management_type=management_type,
        frequency=frequency,
        quantity=quantity,
        unit_cost=unit_cost,
        service=service,
        provider=provider or (service.provider if service else None),
        third_party_holder=third_party_holder,
    )


def _check_line(*, plan: CarePlan, outcome: Outcome, service, category, management_type: str, third_party_holder):
    """What a line added to or changed in a plan must be, whichever page or API sends it."""
    if outcome.plan_id != plan.pk:
        raise errors.LineRefused("Choose an outcome from this plan", field="outcome")
    if service is not None and category != service.category:
        # The directory's category decides what the service needs (a CQC registration, say): filing it under
        # another would skip rule 12.
        raise errors.LineRefused(SERVICE_KEEPS_CATEGORY.format(category=service.category.name), field="category")
    if problem := line_holder_problem(management_type=management_type, third_party_holder=third_party_holder):
        raise errors.LineRefused(problem, field="third_party_holder")


# What changing a line may change, with how the success banner names each (in the order the form asks).
LINE_FIELDS = {
    "service": "service",
    "description": "what the support is",
    "category": "category",
    "provider": "provider",
    "outcome": "outcome",
    "management_type": "how the money is managed",
    "third_party_holder": "third-party holder",
    "frequency": "how often",
    "quantity": "units a year",
    "unit_cost": "cost per unit",
}
_LINE_FOREIGN_KEYS = ("service", "category", "provider", "outcome", "third_party_holder")


def _line_values(line: PlanLine) -> dict:
    values = {name: getattr(line, f"{name}_id" if name in _LINE_FOREIGN_KEYS else name) for name in LINE_FIELDS}
    values["quantity"] = Decimal(values["quantity"]).normalize()
    values["unit_cost"] = line.unit_cost.amount.quantize(Decimal("0.01"))
    return values


def line_version(line: PlanLine) -> str:
    """A fingerprint of the line as stored: its change page (or an API client) sends back the one it was shown, so a
    change made meanwhile by someone else is never silently overwritten."""
    encoded = json.dumps(_line_values(line), sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def line_change(
    *,
    line: PlanLine,
    acting_user,
    seen: str | None,
    description: str,
    category,
    outcome: Outcome,
    management_type: str,
    frequency: str,
    quantity: Decimal,
    unit_cost,
    service=None,
    provider=None,
    third_party_holder=None,
) -> list[str]:
    """Change a line of a draft plan, with the checks a new line has. `seen` is the `line_version` the page was
    shown: a line changed or removed since is refused, never overwritten. Returns how the banner names the fields
    changed (none: nothing was saved); the change is kept in the line's history with who made it."""
    with transaction.atomic():
        # The plan is locked so it cannot be submitted half-way through the change.
        plan = CarePlan.objects.select_for_update().get(pk=line.plan_id)
        _require_draft(plan, acting_user)
        current = PlanLine.objects.select_for_update().filter(pk=line.pk, plan=plan).first()
        if current is None:
            raise errors.LineChangedMeanwhile(errors.LINE_GONE)
        if seen is not None and seen != line_version(current):
            raise errors.LineChangedMeanwhile(errors.LINE_CHANGED_MEANWHILE.format(line=current.description))
        _check_line(
            plan=plan,
            outcome=outcome,
            service=service,
            category=category,
            management_type=management_type,
            third_party_holder=third_party_holder,
        )
        if quantity <= 0:
            raise errors.LineRefused("Units a year must be more than 0", field="quantity")
        if unit_cost.amount < 0:
            raise errors.LineRefused("The cost per unit must be £0 or more", field="unit_cost")
        before = _line_values(current)
        current.description = description
        current.category = category
        current.outcome = outcome
        current.management_type = management_type
        current.frequency = frequency
        current.quantity = quantity
        current.unit_cost = unit_cost
        current.service = service
        current.provider = provider or (service.provider if service else None)
        current.third_party_holder = third_party_holder
        after = _line_values(current)
        changed = [name for name in LINE_FIELDS if before[name] != after[name]]
        if not changed:
            return []
        try:
            current.full_clean(exclude=["plan"])
        except ValidationError as exc:
            refusal = _refusal(exc)
            raise errors.LineRefused(str(refusal), field=refusal.field) from exc
        columns = [*changed, "unit_cost_currency"] if "unit_cost" in changed else changed
        with pghistory.context(user=getattr(acting_user, "pk", None), action="line_change", fields=changed):
            current.save(update_fields=columns)
    return [LINE_FIELDS[name] for name in changed]


def risk_add(*, plan: CarePlan, acting_user, risk: str, mitigation: str) -> Risk:
    _require_draft(plan, acting_user)
    return Risk.objects.create(plan=plan, risk=risk, mitigation=mitigation)


def plan_item_remove(*, plan: CarePlan, acting_user, item) -> None:
    """Remove a need, outcome, line or risk from a draft (a draft is a working copy, not a record)."""
    _require_draft(plan, acting_user)
    if item.plan_id != plan.pk:
        raise errors.TransitionRefused("That is not part of this plan")
    if isinstance(item, Outcome) and item.lines.exists():
        raise errors.TransitionRefused("Remove or move the support lines for this outcome first")
    item.delete()


# --- Transitions --------------------------------------------------------------------------------------

ACTIONS = {
    "submit": "submitted",
    "return_to_broker": "returned",
    "reopen": "reopened",
    "approve": "approved",
    "record_agreement": "agreed",
    "start_setting_up": "set up",
    "activate": "activated",
    "start_review": "reviewed",
    "finish_review": "reviewed",
    "vary": "varied",
    "suspend": "suspended",
    "resume": "resumed",
    "stop": "stopped",
    "withdraw_consent": "stopped",
    "reinstate": "reinstated",
    "reinstate_suspended": "reinstated",
    "begin_final_audit": "audited",
    "close": "closed",
}


# What a transition asked of a plan already in the state it leads to says (a second click, the browser's back
# button, someone else was quicker), in place of "a plan that is approved cannot be approved".
ALREADY = {
    "submit": "This plan has already been submitted",
    "return_to_broker": "This plan has already been returned to the broker",
    "reopen": "This plan is already open for changes",
    "approve": "This plan has already been approved",
    "record_agreement": "The agreement to this plan has already been recorded",
    "start_setting_up": "This plan's budget is already being set up",
    "activate": "This plan is already active",
    "start_review": "This plan is already under review",
    "finish_review": "This plan's review has already been finished",
    "vary": "This plan has already been replaced by a new version",
    "suspend": "This plan has already been suspended",
    "resume": "This plan's payments have already been resumed",
    "stop": "This plan has already been stopped",
    "withdraw_consent": "This plan has already been stopped",
    "reinstate": "This plan has already been reinstated",
    "reinstate_suspended": "This plan has already been reinstated",
    "begin_final_audit": "This plan's final audit has already begun",
    "close": "This plan has already been closed",
}

# Rule 3: a plan costing more than its budget is submitted as a request for an exception, and approved only with one.
EXCEPTION_REQUEST_REQUIRED = (
    "The support and contingency cost {over} more than the budget: give your reasons for asking for an exception"
)
EXCEPTION_REQUIRED = (
    "The support and contingency cost {over} more than the budget: to approve the plan, record the exception "
    "and your reasons for it"
)


def _refused_from(plan: CarePlan, name: str, method) -> errors.BrokerageError:
    """Why this transition cannot be made from the plan's state now."""
    targets = {transition.target for transition in method._django_fsm.transitions.values()}
    if plan.status in targets:
        return errors.TransitionRefused(ALREADY[name])
    return errors.TransitionRefused(
        errors.NOT_NOW.format(status=plan.get_status_display().lower(), action=ACTIONS[name])
    )


def _not_ready(plan: CarePlan, name: str) -> errors.BrokerageError:
    problems = plan_problems(plan)
    if name == "submit":  # costing more than the budget is asked about once everything else is ready
        problems = [problem for problem in problems if problem.kind != OVER_BUDGET_KIND]
    elif name == "approve" and problems and all(problem.kind == OVER_BUDGET_KIND for problem in problems):
        return errors.ReasonsRequired(EXCEPTION_REQUIRED.format(over=plan.over_budget_by))
    return errors.TransitionRefused(errors.NOT_READY.format(problems="; ".join(p.message for p in problems)))


def plan_transition(*, plan: CarePlan, name: str, acting_user, reasons: str = "", **changes) -> CarePlan:
    """Move a plan one step, if this user may and its conditions hold; record who, when, from, to and why.

    Submitting a plan whose lines and contingency cost more than its budget asks an approver for an exception
    (rule 3): `reasons` are then required, and kept on the plan as the broker's request."""
    method = getattr(plan, name)
    transition = method._django_fsm.get_transition(plan.status)
    if transition is None:
        raise _refused_from(plan, name, method)
    if not transition.has_perm(plan, acting_user):
        raise errors.TransitionRefused(errors.NOT_ALLOWED.format(action=name.replace("_", " ")))
    if not can_proceed(method):
        raise _not_ready(plan, name)
    assert has_transition_perm(method, acting_user)  # the same checks, as django-fsm-2 itself makes them
    from_status = plan.status
    if name == "submit":  # the payment amount is worked out from the lines (rule 2) and recorded as submitted
        changes.setdefault("payment_amount", plan.payment_per_period)
        over = plan.over_budget_by
        if over.amount > 0 and not reasons.strip():
            raise errors.ReasonsRequired(EXCEPTION_REQUEST_REQUIRED.format(over=over))
        reasons = reasons.strip()
        # Kept only while it is asked for: a resubmission within the budget asks for nothing.
        changes["exception_request_reasons"] = reasons if over.amount > 0 else ""
    try:
        with transaction.atomic():
            for field, value in changes.items():
                setattr(plan, field, value)
            method()
            plan.save()
            PlanEvent.objects.create(
                plan=plan,
                transition=name,
                from_status=from_status,
                to_status=plan.status,
                by=acting_user,
                reasons=reasons,
            )
    except ConcurrentTransition as exc:
        raise errors.PlanChangedMeanwhile(errors.CHANGED_MEANWHILE) from exc
    return plan


def plan_submit(*, plan: CarePlan, acting_user, exception_request_reasons: str = "") -> CarePlan:
    """Submit for approval. A plan costing more than its budget is submitted as a request for an approver's exception
    (rule 3): the broker's reasons are then required, kept on the plan and in the audit row."""
    return plan_transition(plan=plan, name="submit", acting_user=acting_user, reasons=exception_request_reasons)


def plan_return(*, plan: CarePlan, acting_user, reasons: str) -> CarePlan:
    if not reasons.strip():
        raise errors.ReasonsRequired(errors.REASONS_REQUIRED)
    return plan_transition(plan=plan, name="return_to_broker", acting_user=acting_user, reasons=reasons)


def plan_reopen(*, plan: CarePlan, acting_user) -> CarePlan:
    return plan_transition(plan=plan, name="reopen", acting_user=acting_user)


def plan_approve(*, plan: CarePlan, acting_user, exception_reasons: str = "") -> CarePlan:
    """Approve. A plan whose lines and contingency cost more than its budget is approved only with an exception
    (rule 3): the approver's reasons are recorded with who made it, on the plan and in the audit row, and the budget
    and the ICB's share are raised by the amount over. Reasons given for a plan within its budget are kept in the
    audit row only: there is no exception to record."""
    changes = {"approved_by": acting_user, "approved_at": timezone.now()}
    exception_reasons = exception_reasons.strip()
    before = plan.exception_reasons
    over = plan.over_budget_by
    if exception_reasons and over.amount > 0:
        # Rule 3's sufficiency: the budget covers the full cost of each line, so the exception the approver allows
        # is funded: the budget and the ICB's share both grow by what the lines and contingency cost beyond it.
        changes.update(
            exception_reasons=exception_reasons,
            exception_by=acting_user,
            exception_amount=over,
            budget=plan.budget + over,
            funding_icb=plan.funding_icb + over,
        )
        plan.exception_reasons = exception_reasons  # so the readiness check sees it
    try:
        return plan_transition(plan=plan, name="approve", acting_user=acting_user, reasons=exception_reasons, **changes)
    except errors.BrokerageError:
        plan.exception_reasons = before  # nothing was recorded
        raise


AGREED_IN_FUTURE = "The date they agreed must be today or in the past"
AGREED_BEFORE_APPROVAL = "The date they agreed cannot be before the plan was approved on {day}"


def agreement_date_problem(plan: CarePlan, agreed_on: datetime.date) -> str:
    """An agreement is recorded once it has happened (the record is permanent), and agrees the plan the ICB
    approved: it is dated from the day of the approval to today."""
    if agreed_on > timezone.localdate():
        return AGREED_IN_FUTURE
    if plan.approved_at is not None:
        approved_on = timezone.localdate(plan.approved_at)
        if agreed_on < approved_on:
            return AGREED_BEFORE_APPROVAL.format(day=format_date(approved_on))
    return ""


def plan_record_agreement(
    *, plan: CarePlan, acting_user, agreed_by_name: str, agreed_on: datetime.date, icb_signatory
) -> CarePlan:
    """Rule 1: both sides agree. The person (or representative) and a named ICB signatory are recorded.
    A variation's agreement replaces the version before it, which is kept, unchanged, as `varied`."""
    if not agreed_by_name.strip():
        raise errors.ReasonsRequired("Enter the name of the person or representative who agreed the plan")
    if problem := agreement_date_problem(plan, agreed_on):
        raise errors.TransitionRefused(problem)
    if icb_signatory is None or not icb_signatory.has_perm("brokerage.approve_careplan", plan):
        raise errors.TransitionRefused("Choose an ICB signatory who can approve this plan")
    with transaction.atomic():
        plan_transition(
            plan=plan,
            name="record_agreement",
            acting_user=acting_user,
            agreed_by_name=agreed_by_name,
            agreed_on=agreed_on,
            icb_signatory=icb_signatory,
        )
        _person_follows_agreed_plan(plan)
    return plan


def _person_follows_agreed_plan(plan: CarePlan) -> None:
    """The agreed plan names the care coordinator and who monitors the person's health: the person's record says
    the same from then on (their coordinator can then open it)."""
    person = Person.objects.select_for_update().get(pk=plan.person_id)
    changed = []
    if plan.care_coordinator_id and person.care_coordinator_id != plan.care_coordinator_id:
        person.care_coordinator_id = plan.care_coordinator_id
        changed.append("care_coordinator")
    if plan.health_monitor and person.health_monitor != plan.health_monitor:
        person.health_monitor = plan.health_monitor
        changed.append("health_monitor")
    if changed:
        person.save(update_fields=changed)


def plan_start_setting_up(*, plan: CarePlan, acting_user) -> CarePlan:
    """Agreed → setting up. A new version takes over from the one it replaces here, not at agreement: until its
    budget is set up, the old version's budget keeps paying (rule 8: no money without an agreed plan, and no gap)."""
    with transaction.atomic():
        plan_transition(plan=plan, name="start_setting_up", acting_user=acting_user)
        previous = CarePlan.objects.filter(pk=plan.previous_id).first()
        if previous is not None and previous.status in (PlanStatus.ACTIVE, PlanStatus.UNDER_REVIEW):
            plan_transition(
                plan=previous, name="vary", acting_user=acting_user, reasons=f"Replaced by version {plan.version}"
            )
    return plan


# --- Reconsideration (rule 5) ---------------------------------------------------------------------------


def reconsideration_request(*, plan: CarePlan, acting_user, requested_by_name: str, reasons: str) -> Reconsideration:
    if not reasons.strip() or not requested_by_name.strip():
        raise errors.ReasonsRequired(errors.REASONS_REQUIRED)
    return Reconsideration.objects.create(
        plan=plan, requested_by_name=requested_by_name, reasons=reasons, recorded_by=acting_user
    )


def reconsideration_decide(*, request: Reconsideration, acting_user, decision: str, reasons: str) -> Reconsideration:
    if not reasons.strip():
        raise errors.ReasonsRequired(errors.REASONS_REQUIRED)
    if not acting_user.has_perm("brokerage.approve_careplan", request.plan):
        raise errors.TransitionRefused(errors.NOT_ALLOWED.format(action="decide a reconsideration of"))
    request.decision = decision
    request.decision_reasons = reasons
    request.decided_by = acting_user
    request.decided_at = timezone.now()
    request.save()
    return request


def reconsideration_pending(plan: CarePlan) -> bool:
    """Enforcement of a decision pauses while a reconsideration waits (rule 5)."""
    return plan.reconsiderations.filter(decision="").exists()
