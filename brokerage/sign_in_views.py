"""Pages where the staff who work with a person invite them, or a representative or nominee, to sign in
(brokerage.sign_ins). Thin: the person comes through the scoped selector (404 outside the user's scope), only staff
who may change the person get further (404 otherwise), and the service's refusals go in the error summary."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from brokerage import exceptions as errors
from brokerage import selectors, sign_ins
from brokerage.models import Person, Representative

ENTER_EMAIL = "Enter their email address"
ENTER_VALID_EMAIL = "Enter an email address in the correct format, like name@example.com"


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        help_text="They will sign in with this address. Use one that only they read",
        error_messages={"required": ENTER_EMAIL, "invalid": ENTER_VALID_EMAIL, "max_length": ENTER_VALID_EMAIL},
    )


def _may_invite(request: HttpRequest, person: Person) -> None:
    if not request.user.has_perm("brokerage.change_person", person):
        raise Http404


@login_required
def person_invite(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        person = selectors.person_get(user=request.user, pk=pk)
    except Person.DoesNotExist as exc:
        raise Http404 from exc
    _may_invite(request, person)
    return _invite(request, person=person, representative=None)


@login_required
def representative_invite(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        representative = selectors.representative_get(user=request.user, pk=pk)
    except Representative.DoesNotExist as exc:
        raise Http404 from exc
    _may_invite(request, representative.person)
    return _invite(request, person=representative.person, representative=representative)


def _invite(request: HttpRequest, *, person: Person, representative: Representative | None) -> HttpResponse:
    """No sign-in yet: ask for the email address and invite. A sign-in never used: offer to send the invitation
    again. Someone who signs in already, or has stopped acting: say so (a POST gets the service's refusal)."""
    linked = representative.user if representative is not None else person.user
    name = representative.name if representative is not None else person.full_name
    ended = representative is not None and not representative.active
    represented = person.own_sign_in_refusal if representative is None and linked is None else ""
    form, problem = None, None
    if ended:
        if request.method == "POST":
            problem = errors.SIGN_IN_ENDED.format(name=name)
    elif represented:
        if request.method == "POST":
            problem = errors.SIGN_IN_REPRESENTED.format(name=name, why=represented)
    elif linked is None:
        form = InvitationForm(request.POST or None, initial={"email": person.email} if representative is None else {})
        if request.method == "POST" and form.is_valid():
            try:
                invitation = sign_ins.sign_in_invite(
                    person=person,
                    representative=representative,
                    acting_user=request.user,
                    email=form.cleaned_data["email"],
                )
                messages.success(
                    request, f"{name} has been invited to sign in. The invitation went to {invitation.email}."
                )
                return redirect("brokerage:person", pk=person.pk)
            except errors.BrokerageError as exc:
                form.add_error("email" if getattr(exc, "field", None) == "email" else None, str(exc))
    elif request.method == "POST":
        try:
            invitation = sign_ins.sign_in_invite_again(
                person=person, representative=representative, acting_user=request.user
            )
            messages.success(request, f"The invitation has been sent to {name} again, at {invitation.email}.")
            return redirect("brokerage:person", pk=person.pk)
        except errors.BrokerageError as exc:
            problem = str(exc)
    return render(
        request,
        "brokerage/sign_in_invite.jinja",
        {
            "person": person,
            "representative": representative,
            "name": name,
            "form": form,
            "linked": linked,
            "ended": ended,
            "represented": represented,
            "problem": problem,
        },
    )
