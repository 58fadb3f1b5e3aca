"""Letters: notices of a reduction, a suspension, stopping and asking for money back (and the outcome of a
reconsideration), kept as part of the record.

Each letter is rendered once, when its notice is made, from a Jinja template under templates/budgets/letters/,
and stored as HTML: what was sent stays exactly as it was, whatever changes later. The accessible PDF
(PDF/UA-1, language en-GB, title, tagged headings and tables) is made from that stored HTML on first download and
stored too. One letter per subject (`Letter` is unique on kind and subject): asking twice returns the first.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.template.loader import get_template
from django.utils import timezone

from accounts.tasks import send_email
from brokerage.models import ActorKind
from budgets.models import (
    Addressee,
    Budget,
    Letter,
    LetterKind,
    Recovery,
    ReductionNotice,
    StopDecision,
    StopGround,
    StopReconsideration,
    Suspension,
)

TEMPLATES = "budgets/letters/"


def _render(template: str, context: dict) -> str:
    return get_template(TEMPLATES + template, using="jinja2").render(context)


def _common(budget: Budget) -> dict:
    plan = budget.plan
    person = plan.person
    representatives = [r for r in person.representatives.filter(active=True) if r.kind == ActorKind.REPRESENTATIVE]
    return {
        "budget": budget,
        "plan": plan,
        "person": person,
        "icb": person.icb,
        "coordinator": plan.care_coordinator,
        "representatives": representatives,
        "dated": timezone.localdate(),
        "bank": settings.BACS_ORIGINATOR,
        "service_name": settings.SERVICE_NAME,
    }


def _letter(
    *, budget: Budget, kind: str, subject_ref: str, template: str, context: dict, notify: bool = True
) -> Letter:
    """The letter for this subject: made and stored the first time, returned as it was every time after."""
    existing = Letter.objects.filter(kind=kind, subject_ref=subject_ref).first()
    if existing is not None:
        return existing
    html = _render(template, {**_common(budget), **context})
    try:
        with transaction.atomic():
            letter = Letter.objects.create(budget=budget, kind=kind, subject_ref=subject_ref, html=html)
    except IntegrityError:  # made at the same moment by another request
        return Letter.objects.get(kind=kind, subject_ref=subject_ref)
    if notify:
        _notify(letter)
    return letter


def _notify(letter: Letter) -> None:
    """Tell the person (and anyone acting for them) that a letter is waiting, without its contents: the job is
    queued in the same transaction, so it exists only if the letter does. Not after a death."""
    person = letter.budget.plan.person
    if StopDecision.objects.filter(budget__plan__person=person, ground=StopGround.DEATH).exists():
        return
    emails = {person.user.email} if person.user_id and person.user.email else set()
    emails |= {
        r.user.email for r in person.representatives.filter(active=True, user__isnull=False).select_related("user")
    }
    if emails:
        send_email.defer(
            subject="A letter about your personal health budget",
            body=f"There is a new letter about your personal health budget: {letter.get_kind_display().lower()}. "
            f"Sign in to {settings.SERVICE_NAME} and choose Budget to read it.",
            to=sorted(emails),
        )


# --- One function per kind of letter --------------------------------------------------------------------------


def letter_for_reduction(notice: ReductionNotice) -> Letter:
    new_plan = notice.new_plan
    return _letter(
        budget=notice.budget,
        kind=LetterKind.REDUCTION,
        subject_ref=f"reduction:{notice.pk}",
        template="reduction.jinja",
        context={"notice": notice, "new_plan": new_plan, "issued_by": notice.issued_by},
    )


def letter_for_suspension(suspension: Suspension) -> Letter:
    return _letter(
        budget=suspension.budget,
        kind=LetterKind.SUSPENSION,
        subject_ref=f"suspension:{suspension.pk}",
        template="suspension.jinja",
        context={"suspension": suspension, "issued_by": suspension.started_by},
    )


def letter_for_stop(decision: StopDecision) -> Letter:
    return _letter(
        budget=decision.budget,
        kind=LetterKind.STOPPING,
        subject_ref=f"stop:{decision.pk}",
        template="stopping.jinja",
        context={
            "decision": decision,
            "issued_by": decision.decided_by,
            "consent_withdrawn": decision.ground == StopGround.CONSENT_WITHDRAWN,
            "died": decision.ground == StopGround.DEATH,
        },
        notify=decision.ground != StopGround.DEATH,
    )


def letter_for_stop_decision(decision: StopDecision) -> Letter:
    """The outcome of a reconsideration of a decision to stop."""
    return _letter(
        budget=decision.budget,
        kind=LetterKind.STOPPING,
        subject_ref=f"stop:{decision.pk}:decision",
        template="stopping_decision.jinja",
        context={
            "decision": decision,
            "issued_by": decision.reconsideration_decided_by,
            "overturned": decision.reconsideration_outcome == StopReconsideration.OVERTURNED,
            "still_suspended": decision.budget.suspensions.filter(ended_on__isnull=True).exists(),
        },
    )


def letter_for_recovery(recovery: Recovery) -> Letter:
    return _letter(
        budget=recovery.budget,
        kind=LetterKind.RECOVERY,
        subject_ref=f"recovery:{recovery.pk}",
        template="recovery.jinja",
        context={
            "recovery": recovery,
            "issued_by": recovery.issued_by,
            "after_death": recovery.addressee == Addressee.PERSONAL_REPRESENTATIVES,
            "reference": f"REC-{recovery.pk}",
        },
    )


def letter_for_recovery_decision(recovery: Recovery, *, outcome: str, released_pence: int, decided_by) -> Letter:
    return _letter(
        budget=recovery.budget,
        kind=LetterKind.RECOVERY,
        subject_ref=f"recovery:{recovery.pk}:decision",
        template="recovery_decision.jinja",
        context={
            "recovery": recovery,
            "outcome": outcome,
            "released_pence": released_pence,
            "issued_by": decided_by,
            "after_death": recovery.addressee == Addressee.PERSONAL_REPRESENTATIVES,
            "reference": f"REC-{recovery.pk}",
        },
    )


# --- PDF ------------------------------------------------------------------------------------------------------


def document_html(letter: Letter) -> str:
    """The stored letter inside a complete, printable HTML document (language, title, fonts, page numbers)."""
    return _render(
        "document.jinja",
        {"letter": letter, "title": f"{letter.get_kind_display()}: {letter.budget.plan.person.full_name}"},
    )


def render_pdf(html: str) -> bytes:
    """Tagged PDF/UA-1 with the language and title the document declares, through the statements' renderer: its
    URL fetcher reads only our own static files (the bundled fonts) and refuses anything else."""
    from budgets.statements import render_statement_pdf  # loads WeasyPrint only when a PDF is first asked for

    return render_statement_pdf(html, xhtml=False)  # letters' templates are plain HTML


def letter_pdf(letter: Letter) -> bytes:
    """The letter's PDF: made from the stored HTML the first time it is asked for, then kept."""
    if letter.pdf:
        with letter.pdf.open("rb") as handle:
            return handle.read()
    data = render_pdf(document_html(letter))
    with transaction.atomic():
        locked = Letter.objects.select_for_update().get(pk=letter.pk)
        if not locked.pdf:  # another request may have stored it while this one rendered
            locked.pdf.save(f"letter-{letter.pk}-{timezone.localdate():%Y%m%d}.pdf", ContentFile(data), save=True)
        letter.pdf = locked.pdf
    with letter.pdf.open("rb") as handle:
        return handle.read()
