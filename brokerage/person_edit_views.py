"""Pages for changing a person's details and for withdrawing a necessity approval (rule 11). Thin: each reads through
a scoped selector (404 outside the user's scope, and for those who may not make the change), validates a form and
calls one service; refusals are shown in the error summary."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from brokerage import exceptions as errors
from brokerage import necessity, person_edit, selectors
from brokerage.models import Person
from brokerage.person_edit_forms import PersonChangeForm, WithdrawNecessityForm
from brokerage.views import connection_to_decide


def _refused(form, exc: errors.BrokerageError) -> None:
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, str(exc))


def _sentence(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@login_required
def person_change(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        person = selectors.person_get(user=request.user, pk=pk)
    except Person.DoesNotExist as exc:
        raise Http404 from exc
    if not request.user.has_perm("brokerage.change_person", person):
        raise Http404
    form = PersonChangeForm(request.POST or None, person=person)
    if request.method == "POST" and form.is_valid():
        values = {name: form.cleaned_data[name] for name in person_edit.EDITABLE}
        try:
            changed = person_edit.person_update(
                person=person,
                acting_user=request.user,
                seen=form.cleaned_data["seen"],
                identity_reason=form.cleaned_data["identity_reason"],
                **values,
            )
        except person_edit.PersonChangedMeanwhile as exc:
            messages.warning(request, str(exc))
            return redirect("brokerage:person-change", pk=person.pk)
        except errors.RecordRefused as exc:
            _refused(form, exc)
        else:
            if not changed:
                messages.info(request, f"Nothing was changed: {person.full_name}'s details were already as shown.")
            else:
                messages.success(request, f"{person.full_name}'s details have been changed: {_sentence(changed)}.")
            if not request.user.has_perm("brokerage.view_person", person):
                messages.info(request, f"You no longer work with {person.full_name}, so their record is closed to you.")
                return redirect("brokerage:people")
            return redirect("brokerage:person", pk=person.pk)
    return render(request, "brokerage/person_change.jinja", {"person": person, "form": form})


@login_required
def connected_person_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    """An ICB approver of the person's ICB withdraws the approval to pay a connected person, with reasons."""
    connection = connection_to_decide(request, pk)
    form = WithdrawNecessityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            necessity.connected_person_withdraw_necessity(
                connection=connection, acting_user=request.user, reasons=form.cleaned_data["reasons"]
            )
        except errors.BrokerageError as exc:
            _refused(form, exc)
        else:
            messages.success(
                request,
                f"The approval to pay {connection.provider.name} is withdrawn: paying them is blocked again.",
            )
            return redirect("brokerage:person-acting", pk=connection.person_id)
    own = connection.recorded_by_id == request.user.pk
    approved = connection.necessity_approved_on is not None
    return render(
        request,
        "brokerage/connected_person_withdraw.jinja",
        {
            "person": connection.person,
            "connection": connection,
            "form": form,
            "own": own,
            "approved": approved,
            "show_form": bool(form.errors) or (approved and not own),
            "history": necessity.necessity_history(connection),
        },
    )
