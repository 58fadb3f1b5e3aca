"""Changing a person's details after they were added: one service, `person_update`.

Only staff who may record for the person (`brokerage.change_person`: a broker or coordinator assigned to them)
change them. The accountable ICB is not changed here, nor the local authority (both decide who funds the budget and
who is recharged). The NHS number and date of birth identify the person: they change only with a reason, which is
kept in the audit row. Capacity and date of birth cannot change so that someone acting for the person would no
longer be allowed to (rule 7): their role is ended first. Every change is one pghistory context naming who changed
which fields (and why, for the identifying ones).
"""

from __future__ import annotations

import datetime
import hashlib
import json

import pghistory
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.roles import Role
from brokerage import exceptions as errors
from brokerage.models import ActorKind, Capacity, Person, RepresentativeBasis

# What may be changed here, in the order the page asks for it, with how the success banner names each.
EDITABLE = {
    "given_name": "first name",
    "family_name": "last name",
    "nhs_number": "NHS number",
    "date_of_birth": "date of birth",
    "address": "address",
    "postcode": "postcode",
    "phone": "phone number",
    "email": "email address",
    "communication_needs": "communication needs",
    "capacity": "capacity",
    "cohort": "cohort",
    "care_coordinator": "care coordinator",
    "health_monitor": "who monitors their health",
    "assigned_staff": "staff who work with them",
}
IDENTIFYING = ("nhs_number", "date_of_birth")
STAFF_ROLES = (Role.CARE_BROKER, Role.CARE_COORDINATOR)

NOT_YOURS = "You cannot change this person's details"
IDENTITY_REASON_REQUIRED = "Enter why you are changing the NHS number or date of birth"
NHS_NUMBER_TAKEN = "A person with this NHS number is already recorded"
DATE_OF_BIRTH_IN_FUTURE = "The date of birth must be in the past"
CHANGED_MEANWHILE = (
    "Someone else changed {person}'s details while you were changing them, so nothing was saved. "
    "Check the details below and make your change again."
)
HAS_CAPACITY_REFUSED = (
    "{names} acts for {person} as a representative because {person} lacks capacity. End their role first "
    "(on the page of people who act for {person}), then record that {person} has capacity."
)
LACKS_CAPACITY_REFUSED = (
    "{names} is {person}'s nominee, and only a person who has capacity can have a nominee. End the nominee's role "
    "first (on the page of people who act for {person}), then record that {person} lacks capacity."
)
NO_LONGER_A_CHILD_REFUSED = (
    "{names} acts for {person} as a representative because {person} is a child under 16, and with this date of "
    "birth {person} is 16 or over. End their role first (on the page of people who act for {person})."
)
NOT_STAFF = "{name} is not a care broker or care coordinator"
NOBODY_ASSIGNED = "Select at least one care broker or coordinator who works with {person}"


class PersonChangedMeanwhile(errors.RecordRefused):
    """Someone else changed the person's details after the page was shown: nothing was saved."""


def person_version(person: Person) -> str:
    """A fingerprint of what this page changes, as stored: the page sends back the one it was shown, so a change
    made meanwhile by someone else is never silently overwritten."""
    values = {name: getattr(person, name if name != "care_coordinator" else "care_coordinator_id") for name in EDITABLE}
    values["assigned_staff"] = sorted(person.assigned_staff.values_list("pk", flat=True))
    encoded = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _differences(current: Person, fields: dict) -> dict:
    changed = {}
    for name, value in fields.items():
        if name == "assigned_staff":
            chosen = {user.pk for user in value}
            if chosen != set(current.assigned_staff.values_list("pk", flat=True)):
                changed[name] = list(value)
        elif name == "care_coordinator":
            if (value.pk if value else None) != current.care_coordinator_id:
                changed[name] = value
        elif name == "nhs_number":
            if "".join(str(value).split()) != current.nhs_number:
                changed[name] = value
        elif getattr(current, name) != value:
            changed[name] = value
    return changed


def _names(people) -> str:
    names = [who.name for who in people]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _rule_7_problem(current: Person, changed: dict) -> tuple[str, str] | None:
    """Whether the change would leave someone acting for the person whom rule 7 no longer allows: (field, message)."""
    acting = current.representatives.filter(active=True)
    person = current.full_name
    capacity = changed.get("capacity")
    if capacity == Capacity.HAS_CAPACITY:
        lacking = acting.filter(kind=ActorKind.REPRESENTATIVE, basis=RepresentativeBasis.ADULT_LACKING_CAPACITY)
        if lacking:
            return "capacity", HAS_CAPACITY_REFUSED.format(names=_names(lacking), person=person)
    if capacity == Capacity.LACKS_CAPACITY:
        nominees = acting.filter(kind=ActorKind.NOMINEE)
        if nominees:
            return "capacity", LACKS_CAPACITY_REFUSED.format(names=_names(nominees), person=person)
    born = changed.get("date_of_birth")
    if born is not None:
        today = timezone.localdate()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        for_a_child = acting.filter(kind=ActorKind.REPRESENTATIVE, basis=RepresentativeBasis.CHILD_UNDER_16)
        if age >= 16 and for_a_child:
            return "date_of_birth", NO_LONGER_A_CHILD_REFUSED.format(names=_names(for_a_child), person=person)
    return None


def _problem(current: Person, changed: dict, identity_reason: str) -> errors.RecordRefused | None:
    person = current.full_name
    if any(name in changed for name in IDENTIFYING) and not identity_reason.strip():
        return errors.RecordRefused(IDENTITY_REASON_REQUIRED, field="identity_reason")
    born = changed.get("date_of_birth")
    if isinstance(born, datetime.date) and born > timezone.localdate():
        return errors.RecordRefused(DATE_OF_BIRTH_IN_FUTURE, field="date_of_birth")
    if problem := _rule_7_problem(current, changed):
        return errors.RecordRefused(problem[1], field=problem[0])
    coordinator = changed.get("care_coordinator")
    if coordinator is not None and not coordinator.has_role(*STAFF_ROLES):
        return errors.RecordRefused(NOT_STAFF.format(name=coordinator.full_name), field="care_coordinator")
    if "assigned_staff" in changed:
        for user in changed["assigned_staff"]:
            if not user.has_role(*STAFF_ROLES):
                return errors.RecordRefused(NOT_STAFF.format(name=user.full_name), field="assigned_staff")
        if not changed["assigned_staff"]:
            return errors.RecordRefused(NOBODY_ASSIGNED.format(person=person), field="assigned_staff")
    return None


def person_update(
    *, person: Person, acting_user, seen: str | None = None, identity_reason: str = "", **fields
) -> list[str]:
    """Change the person's details: only the fields given that differ from what is stored. Returns how the banner
    names the fields changed (none: nothing was saved). `seen` is the `person_version` the page was shown."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValueError(f"person_update cannot change {sorted(unknown)}")
    if not acting_user.has_perm("brokerage.change_person", person):
        raise errors.RecordRefused(NOT_YOURS)
    try:
        with transaction.atomic():
            current = Person.objects.select_for_update().get(pk=person.pk)
            if seen is not None and seen != person_version(current):
                raise PersonChangedMeanwhile(CHANGED_MEANWHILE.format(person=current.full_name))
            changed = _differences(current, fields)
            if not changed:
                return []
            if problem := _problem(current, changed, identity_reason):
                raise problem
            columns = [name for name in changed if name != "assigned_staff"]
            for name in columns:
                setattr(current, name, changed[name])
            try:
                current.full_clean(exclude=[f.name for f in Person._meta.fields if f.name not in columns])
            except ValidationError as exc:
                field, messages = next(iter(exc.message_dict.items()))
                raise errors.RecordRefused(messages[0], field=None if field == NON_FIELD_ERRORS else field) from exc
            metadata = {"fields": sorted(changed)}
            if any(name in changed for name in IDENTIFYING):
                metadata["reason"] = identity_reason.strip()
            with pghistory.context(user=getattr(acting_user, "pk", None), action="person_update", **metadata):
                if columns:
                    current.save(update_fields=columns)
                if "assigned_staff" in changed:
                    current.assigned_staff.set(changed["assigned_staff"])
    except IntegrityError as exc:  # person_nhs_number unique: the number was recorded meanwhile for someone else
        raise errors.RecordRefused(NHS_NUMBER_TAKEN, field="nhs_number") from exc
    for name in columns:
        setattr(person, name, getattr(current, name))
    return [EDITABLE[name] for name in EDITABLE if name in changed]
