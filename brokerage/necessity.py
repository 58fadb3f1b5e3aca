"""Withdrawing a connected person's necessity approval (rule 11), and the history of those decisions.

Approving is `brokerage.services.connected_person_approve_necessity`. Withdrawing is the same approver's decision the
other way: an ICB approver of the person's ICB (never whoever recorded the connection) records why paying them is no
longer necessary. The approval is cleared, so paying them is blocked again exactly as before it was approved (every
payment checks `ConnectedPerson.blocked`); the withdrawal is kept on the row and the approval withdrawn in its
history (pghistory), and a later approval may be recorded as the first was.
"""

from __future__ import annotations

import dataclasses
import datetime

import pghistory
from django.db import transaction
from django.utils import timezone

from brokerage import exceptions as errors
from brokerage.models import ConnectedPerson

WITHDRAW_NOT_APPROVER = "Only an ICB approver for {icb} can withdraw the approval to pay a connected person"
WITHDRAW_OWN_RECORD = "You recorded this connection, so another approver must decide about paying them"
WITHDRAWAL_REASONS_REQUIRED = "Enter why paying them is no longer approved"
NOTHING_TO_WITHDRAW = "Paying {provider} is not approved at the moment, so there is no approval to withdraw"


DECISION_FIELDS = [
    "necessity_approved_on",
    "necessity_approved_by",
    "necessity_reasons",
    "necessity_withdrawn_on",
    "necessity_withdrawn_by",
    "necessity_withdrawal_reasons",
]


def connected_person_withdraw_necessity(*, connection: ConnectedPerson, acting_user, reasons: str) -> ConnectedPerson:
    """Rule 11: withdraw the dated approval to pay a connected person, with written reasons. Paying them is then
    blocked until an approval is recorded again."""
    person = connection.person
    if not acting_user.has_perm("brokerage.approve_necessity", connection):
        raise errors.RecordRefused(WITHDRAW_NOT_APPROVER.format(icb=person.icb.name))
    if connection.recorded_by_id is not None and connection.recorded_by_id == acting_user.pk:
        raise errors.RecordRefused(WITHDRAW_OWN_RECORD)
    if not reasons.strip():
        raise errors.ReasonsRequired(WITHDRAWAL_REASONS_REQUIRED)
    with (
        transaction.atomic(),
        pghistory.context(user=getattr(acting_user, "pk", None), action="connected_person_withdraw_necessity"),
    ):
        current = ConnectedPerson.objects.select_for_update().select_related("provider").get(pk=connection.pk)
        if current.necessity_approved_on is None:
            raise errors.RecordRefused(NOTHING_TO_WITHDRAW.format(provider=current.provider.name))
        current.necessity_approved_on = None
        current.necessity_approved_by = None
        current.necessity_reasons = ""
        current.necessity_withdrawn_on = timezone.localdate()
        current.necessity_withdrawn_by = acting_user
        current.necessity_withdrawal_reasons = reasons.strip()
        current.save(update_fields=DECISION_FIELDS)
    for name in DECISION_FIELDS:
        setattr(connection, name, getattr(current, name))
    return connection


@dataclasses.dataclass(frozen=True)
class NecessityDecision:
    what: str  # "Approved" or "Withdrawn"
    on: datetime.date
    by: str
    reasons: str


def necessity_history(connection: ConnectedPerson) -> list[NecessityDecision]:
    """Every approval and withdrawal of paying this connected person, oldest first, read from its audit history."""
    from accounts.models import User

    events = ConnectedPerson.pgh_event_model.objects.filter(pgh_obj_id=connection.pk).order_by("pgh_id")
    decisions: list[tuple[str, datetime.date, int | None, str]] = []
    approved = withdrawn = None
    for event in events:
        if event.necessity_approved_on is not None and approved != (
            event.necessity_approved_on,
            event.necessity_approved_by_id,
        ):
            decisions.append(
                ("Approved", event.necessity_approved_on, event.necessity_approved_by_id, event.necessity_reasons)
            )
        if event.necessity_withdrawn_on is not None and withdrawn != (
            event.necessity_withdrawn_on,
            event.necessity_withdrawn_by_id,
            event.necessity_withdrawal_reasons,
        ):
            decisions.append(
                (
                    "Withdrawn",
                    event.necessity_withdrawn_on,
                    event.necessity_withdrawn_by_id,
                    event.necessity_withdrawal_reasons,
                )
            )
        approved = (
            (event.necessity_approved_on, event.necessity_approved_by_id) if event.necessity_approved_on else None
        )
        withdrawn = (
            (event.necessity_withdrawn_on, event.necessity_withdrawn_by_id, event.necessity_withdrawal_reasons)
            if event.necessity_withdrawn_on
            else None
        )
    names = dict(User.objects.filter(pk__in={by for _, _, by, _ in decisions}).values_list("pk", "full_name"))
    return [NecessityDecision(what, on, names.get(by) or "an approver", reasons) for what, on, by, reasons in decisions]
