"""Sign-ins for the person and for those who act for them: the staff who work with the person invite them.

An invitation gives the person (role: patient), a representative or a nominee (role by `Representative.kind`) a
sign-in and emails them a link to choose a password (accounts.invitations, valid for 7 days). An existing sign-in
with that email address is linked instead, if it is someone's own (only patient, representative or nominee roles:
a parent representing two children has one sign-in); a staff sign-in never is. Someone linked already is not invited
again, but their invitation can be sent again while they have never signed in. Every invitation is a
`SignInInvitation` row naming who invited whom, and the changes it makes carry the same pghistory context.

A child under 16 or an adult who lacks capacity is not invited: their representative acts for them (rule 7).
"""

from __future__ import annotations

import functools

from django.db import IntegrityError, transaction
from django.template.loader import get_template

from accounts.invitations import INVITATION_DAYS, invitation_link, sign_in_link
from accounts.models import RoleMembership, User
from accounts.roles import STAFF_ROLES, Role
from accounts.tasks import send_email
from brokerage import exceptions as errors
from brokerage.models import ActorKind, InvitationKind, Person, Representative, SignInInvitation
from brokerage.services import _history

INVITATION_SUBJECT = "Set up your sign-in to the personal health budgets service"
ADDED_SUBJECT = "You can now see another personal health budget"


def _role_for(representative: Representative | None) -> Role:
    if representative is None:
        return Role.PATIENT
    return Role.REPRESENTATIVE if representative.kind == ActorKind.REPRESENTATIVE else Role.NOMINEE


def _name_of(person: Person, representative: Representative | None) -> str:
    return representative.name if representative is not None else person.full_name


def _may_invite(person: Person, representative: Representative | None, acting_user) -> None:
    if not acting_user.has_perm("brokerage.change_person", person):
        raise errors.SignInRefused(errors.SIGN_IN_NOT_YOURS)
    if representative is not None and representative.person_id != person.pk:
        raise errors.SignInRefused(errors.SIGN_IN_NOT_YOURS)


def _locked(person: Person, representative: Representative | None) -> Person | Representative:
    """The record to link, locked: two staff inviting the same person at once cannot both link a sign-in, and the
    person's age and capacity are read as they are now."""
    if representative is None:
        locked = Person.objects.select_for_update().get(pk=person.pk)
        if why := locked.own_sign_in_refusal:
            raise errors.SignInRefused(errors.SIGN_IN_REPRESENTED.format(name=locked.full_name, why=why))
        return locked
    current = Representative.objects.select_for_update().get(pk=representative.pk)
    if not current.active:
        raise errors.SignInRefused(errors.SIGN_IN_ENDED.format(name=current.name))
    return current


def is_staff_sign_in(user: User) -> bool:
    """A sign-in that works for the service: it is never linked to a person's record or someone acting for them."""
    return user.is_staff or user.is_superuser or user.organisation_id is not None or bool(user.roles & STAFF_ROLES)


def _linkable(user: User, *, email: str, person: Person, representative: Representative | None) -> None:
    """Why this existing sign-in cannot be linked, if it cannot."""
    name = _name_of(person, representative)
    if is_staff_sign_in(user):
        raise errors.SignInRefused(errors.SIGN_IN_STAFF.format(email=email, name=name), field="email")
    if not user.is_active:
        raise errors.SignInRefused(errors.SIGN_IN_CLOSED.format(email=email), field="email")
    acting = person.representatives.filter(user=user, active=True)
    if representative is None:
        if Person.objects.filter(user=user).exclude(pk=person.pk).exists():  # a sign-in is one person's own
            raise errors.SignInRefused(errors.SIGN_IN_SOMEONE_ELSE.format(email=email, name=name), field="email")
        if acting.exists():  # nobody acts for themselves
            raise errors.SignInRefused(errors.SIGN_IN_ACTS_ALREADY.format(email=email, person=person), field="email")
    else:
        if person.user_id == user.pk:
            raise errors.SignInRefused(errors.SIGN_IN_THE_PERSON.format(email=email, person=person), field="email")
        if acting.exclude(pk=representative.pk).exists():
            raise errors.SignInRefused(errors.SIGN_IN_ACTS_ALREADY.format(email=email, person=person), field="email")


def sign_in_invite(
    *, person: Person, acting_user, email: str, representative: Representative | None = None
) -> SignInInvitation:
    """Give the person (or one of their current representatives or nominees) a sign-in with this email address, or
    link theirs if they have one, and email them how to sign in once this commits."""
    _may_invite(person, representative, acting_user)
    email = User.objects.normalize_email(email.strip()).lower()
    role = _role_for(representative)
    try:
        with transaction.atomic(), _history("sign_in_invite", acting_user):
            record = _locked(person, representative)
            name = _name_of(person, representative)
            if record.user_id is not None:
                raise errors.SignInRefused(errors.SIGN_IN_ALREADY.format(name=name, email=record.user.email))
            user = User.objects.select_for_update().filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_user(email, password=None, full_name=name)  # no usable password yet
                kind = InvitationKind.NEW
            else:
                _linkable(user, email=email, person=person, representative=representative)
                kind = InvitationKind.LINKED
            RoleMembership.objects.get_or_create(user=user, role=role)
            record.user = user
            record.save(update_fields=["user"])
            invitation = SignInInvitation.objects.create(
                person=person,
                representative=representative,
                user=user,
                email=user.email,
                kind=kind,
                invited_by=acting_user,
            )
            _send_on_commit(invitation, user=user)
    except IntegrityError as exc:  # the same email address given a sign-in just now, by someone else
        raise errors.SignInRefused(errors.SIGN_IN_CHANGED_MEANWHILE) from exc
    (representative or person).user = user
    return invitation


def sign_in_invite_again(
    *, person: Person, acting_user, representative: Representative | None = None
) -> SignInInvitation:
    """Send a new invitation link to someone who has a sign-in but has never signed in (the last link may have
    expired or gone astray). Earlier links keep working until they expire or a password is chosen."""
    _may_invite(person, representative, acting_user)
    with transaction.atomic(), _history("sign_in_invite_again", acting_user):
        record = _locked(person, representative)
        name = _name_of(person, representative)
        if record.user_id is None:
            raise errors.SignInRefused(errors.SIGN_IN_NONE_YET.format(name=name))
        user = User.objects.select_for_update().get(pk=record.user_id)
        if user.last_login is not None:
            raise errors.SignInRefused(errors.SIGN_IN_ALREADY_SIGNS_IN.format(name=name, email=user.email))
        if not user.is_active or is_staff_sign_in(user):
            raise errors.SignInRefused(errors.SIGN_IN_CLOSED.format(email=user.email))
        invitation = SignInInvitation.objects.create(
            person=person,
            representative=representative,
            user=user,
            email=user.email,
            kind=InvitationKind.RESENT,
            invited_by=acting_user,
        )
        _send_on_commit(invitation, user=user)
    return invitation


def _send_on_commit(invitation: SignInInvitation, *, user: User) -> None:
    """The email, queued once the invitation commits. Someone who has never signed in gets a link to choose a
    password; someone who already signs in is told they can now see another budget. For their privacy (the address
    may be mistyped) the email does not name the person."""
    if user.last_login is None:
        subject = INVITATION_SUBJECT
        body = get_template("brokerage/sign_in_invitation_email.txt", using="jinja2").render(
            {
                "name": user.get_short_name(),
                "email": user.email,
                "link": invitation_link(user),
                "days": INVITATION_DAYS,
                "acting_for_someone": invitation.representative_id is not None,
            }
        )
    else:
        subject = ADDED_SUBJECT
        body = get_template("brokerage/sign_in_added_email.txt", using="jinja2").render(
            {"name": user.get_short_name(), "email": user.email, "link": sign_in_link()}
        )
    transaction.on_commit(functools.partial(send_email.defer, subject=subject, body=body, to=[user.email]))
