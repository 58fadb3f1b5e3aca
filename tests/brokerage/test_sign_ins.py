"""Sign-ins for the person and those who act for them (brokerage.sign_ins): the staff who work with the person invite
them from the person's pages; the invitation emails a link (7 days) to choose a password; an existing sign-in of
someone's own is linked, a staff one never; an ended representative is neither invited nor let in any more."""

from __future__ import annotations

import datetime
import re
from html import unescape

import pytest
import time_machine
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import DatabaseError, IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.invitations import invitation_path, invitation_token_generator
from accounts.models import RoleMembership, User
from accounts.roles import Role
from accounts.tasks import send_email
from accounts.views import PASSWORD_CHOSEN
from brokerage import exceptions as errors
from brokerage import person_edit, services, sign_ins
from brokerage.models import Capacity, InvitationKind, Person, Representative, SignInInvitation
from config.formatting import format_date
from tests.brokerage.helpers import agreed_crew, make_person
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import UserFactory, user_with_role

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-and-uncommon-passphrase-2026"
SUMMARY = 'class="nhsuk-error-summary"'
START = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture
def crew(settings, tmp_path):
    """Journey 1's person (Joan, an adult with capacity whose email address is on her record) with a budget in use,
    and no sign-in yet."""
    settings.MEDIA_ROOT = tmp_path / "media"
    crew = agreed_crew()
    crew["person"].email = "joan.robson@example.org"
    crew["person"].save(update_fields=["email"])
    crew["budget"] = budget_in_use(crew)
    return crew


@pytest.fixture
def tom(crew):
    """Joan lacks capacity, so her son Tom is her representative (rule 7); nobody signs in yet."""
    person_edit.person_update(person=crew["person"], acting_user=crew["broker"], capacity=Capacity.LACKS_CAPACITY)
    crew["representative"] = Representative.objects.create(
        person=crew["person"],
        kind="representative",
        name="Tom Robson",
        relationship="son",
        basis="adult_lacking_capacity",
    )
    return crew["representative"]


def url(name: str, pk: int) -> str:
    return reverse(f"brokerage:{name}", kwargs={"pk": pk})


def emails_to(address: str) -> list[dict]:
    """The emails queued for this address (Procrastinate jobs), oldest first."""
    jobs = ProcrastinateJob.objects.filter(task_name="accounts.send_email").order_by("id")
    return [job.args for job in jobs if address in job.args["to"]]


def deliver(email: dict) -> str:
    """Send a queued email as the worker would; the path of the link in it."""
    sent = len(mail.outbox)
    send_email(**email)
    assert len(mail.outbox) == sent + 1 and mail.outbox[-1].to == email["to"]
    return re.search(r"https?://[^/\s]+(/\S+)", mail.outbox[-1].body).group(1)


def invite(client, capture, target_url: str, body: dict | None = None):
    with capture(execute=True):
        return client.post(target_url, body or {})


def page(response) -> str:
    return unescape(response.content.decode())


def choose_password(link: str, password: str = NEW_PASSWORD) -> Client:
    """Open the emailed link signed out and choose a password; the client, on the sign-in page."""
    visitor = Client()
    opened = visitor.get(link)
    assert opened.status_code == 302 and opened["Location"].endswith("/set-password/")
    form = visitor.get(opened["Location"])
    assert "Choose a password" in page(form)
    done = visitor.post(opened["Location"], {"new_password1": password, "new_password2": password}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("accounts:sign-in") and PASSWORD_CHOSEN in page(done)
    return visitor


def sign_in(client: Client, email: str, password: str = NEW_PASSWORD):
    return client.post(reverse("accounts:sign-in"), {"username": email, "password": password})


# --- The person -----------------------------------------------------------------------------------------------


def test_the_person_is_invited_chooses_a_password_signs_in_and_sees_their_budget(
    client, crew, django_capture_on_commit_callbacks
):
    person, broker = crew["person"], crew["broker"]
    client.force_login(broker)
    before = page(client.get(url("person", person.pk)))
    assert "No sign-in" in before and url("person-invite", person.pk) in before

    form = page(client.get(url("person-invite", person.pk)))
    assert "Invite Joan Robson to sign in" in form and 'value="joan.robson@example.org"' in form  # from her record

    response = invite(
        client,
        django_capture_on_commit_callbacks,
        url("person-invite", person.pk),
        {"email": "Joan.Robson@Example.org "},
    )
    assert response.status_code == 302 and response["Location"] == url("person", person.pk)
    person.refresh_from_db()
    user = person.user
    assert (user.email, user.full_name, user.has_usable_password(), user.last_login) == (
        "joan.robson@example.org",
        "Joan Robson",
        False,
        None,
    )
    assert set(user.roles) == {Role.PATIENT}

    (email,) = emails_to("joan.robson@example.org")
    assert email["subject"] == sign_ins.INVITATION_SUBJECT
    assert "Joan Robson" not in email["body"]  # a mistyped address learns nobody's name
    link = deliver(email)
    assert link.startswith("/account/invitation/") and "within 7 days" in mail.outbox[-1].body

    shown = page(client.get(url("person", person.pk)))
    assert f"Invited on {format_date(timezone.localdate())}, not signed in yet" in shown
    assert "Send the invitation again" in shown

    visitor = choose_password(link)
    assert "This invitation link has expired" in page(Client().get(link))  # used: the password has changed
    assert sign_in(visitor, "joan.robson@example.org").status_code == 302
    my = visitor.get("/my/")
    assert my.status_code == 302 and my["Location"] == f"/my/budgets/{crew['budget'].pk}/"
    assert visitor.get(my["Location"]).status_code == 200

    shown = page(client.get(url("person", person.pk)))
    assert "Signs in as joan.robson@example.org" in shown and "Send the invitation again" not in shown


def test_every_invitation_is_recorded_with_who_invited_whom(client, crew, django_capture_on_commit_callbacks):
    person, broker = crew["person"], crew["broker"]
    client.force_login(broker)
    invite(client, django_capture_on_commit_callbacks, url("person-invite", person.pk), {"email": "joan@example.org"})
    person.refresh_from_db()
    (row,) = SignInInvitation.objects.filter(person=person)
    assert (row.invited_by, row.user, row.representative, row.email, row.kind) == (
        broker,
        person.user,
        None,
        "joan@example.org",
        InvitationKind.NEW,
    )
    # The sign-in, its role and the link to the person were each recorded under a context naming the broker.
    made = [
        User.pgh_event_model.objects.get(pgh_obj=person.user, pgh_label="insert"),
        RoleMembership.pgh_event_model.objects.get(user_id=person.user.pk, pgh_label="insert"),
        Person.pgh_event_model.objects.filter(pgh_obj=person, pgh_label="update").latest("pgh_id"),
    ]
    assert [event.user_id for event in made[2:]] == [person.user.pk]  # the person's record now names the sign-in
    for event in made:
        assert event.pgh_context.metadata["user"] == broker.pk, event
        assert event.pgh_context.metadata["action"] == "sign_in_invite", event
    # The record of it is never changed or deleted.
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        SignInInvitation.objects.filter(pk=row.pk).update(email="someone.else@example.org")
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        SignInInvitation.objects.filter(pk=row.pk).delete()


def test_bad_email_addresses_get_the_error_summary_and_nothing_changes(client, crew):
    person = crew["person"]
    client.force_login(crew["broker"])
    for body, message in (
        ({"email": ""}, "Enter their email address"),
        ({"email": "joan at example"}, "Enter an email address in the correct format"),
        ({"email": "j" * 250 + "@example.org"}, "Enter an email address in the correct format"),
    ):
        response = client.post(url("person-invite", person.pk), body)
        assert response.status_code == 200 and SUMMARY in response.content.decode(), body
        assert message in page(response), body
    person.refresh_from_db()
    assert person.user is None and not SignInInvitation.objects.exists()


def test_a_child_under_16_or_an_adult_lacking_capacity_is_not_invited_their_representative_is(client, crew, tom):
    """Rule 7: the representative signs in and manages the budget for them; the person is offered no invitation."""
    child = make_person(
        icb_org=crew["icb"], staff=[crew["broker"]], born=timezone.localdate().replace(year=2016), given_name="Ben"
    )
    client.force_login(crew["broker"])
    for person, why in (
        (crew["person"], "lacks capacity to make decisions about their budget"),
        (child, "is under 16"),
    ):
        record = page(client.get(url("person", person.pk)))
        assert f"{person.given_name} {why}: their representative signs in for them" in record
        assert url("person-invite", person.pk) not in record
        shown = page(client.get(url("person-invite", person.pk)))
        assert f"{person.full_name} does not sign in themselves" in shown and 'name="email"' not in shown
        refused = client.post(url("person-invite", person.pk), {"email": "someone@example.org"})
        message = errors.SIGN_IN_REPRESENTED.format(name=person.full_name, why=why)
        assert refused.status_code == 200 and message in page(refused)
        with pytest.raises(errors.SignInRefused) as raised:
            sign_ins.sign_in_invite(person=person, acting_user=crew["broker"], email="someone@example.org")
        assert str(raised.value) == message
    assert not User.objects.filter(email="someone@example.org").exists() and not SignInInvitation.objects.exists()
    # Tom, her representative, is invited as before.
    assert url("representative-invite", tom.pk) in page(client.get(url("person", crew["person"].pk)))


# --- Representatives and nominees -------------------------------------------------------------------------------


def test_a_representative_gets_the_representative_role_and_sees_only_the_person_they_act_for(
    tom, client, crew, django_capture_on_commit_callbacks, settings
):
    other = agreed_crew()
    other_budget = budget_in_use(other)
    tom = crew["representative"]
    client.force_login(crew["broker"])
    acting = page(client.get(url("person-acting", crew["person"].pk)))
    assert "Invite Tom Robson to sign in" in acting and url("representative-invite", tom.pk) in acting
    form = page(client.get(url("representative-invite", tom.pk)))
    assert 'value="joan.robson@example.org"' not in form  # the person's own address is not offered for Tom

    response = invite(
        client, django_capture_on_commit_callbacks, url("representative-invite", tom.pk), {"email": "tom@example.org"}
    )
    assert response.status_code == 302
    tom.refresh_from_db()
    assert tom.user.email == "tom@example.org" and tom.user.full_name == "Tom Robson"
    assert set(tom.user.roles) == {Role.REPRESENTATIVE}
    crew["person"].refresh_from_db()
    assert crew["person"].user is None  # the person's own sign-in is another matter
    (row,) = SignInInvitation.objects.all()
    assert (row.representative, row.invited_by) == (tom, crew["broker"])
    acting = page(client.get(url("person-acting", crew["person"].pk)))
    assert f"Invited on {format_date(timezone.localdate())}, not signed in yet" in acting
    assert "Send Tom Robson's invitation to sign in again" in acting

    visitor = choose_password(deliver(emails_to("tom@example.org")[0]))
    assert sign_in(visitor, "tom@example.org").status_code == 302
    assert visitor.get("/my/")["Location"] == f"/my/budgets/{crew['budget'].pk}/"
    assert visitor.get(f"/my/budgets/{crew['budget'].pk}/").status_code == 200
    assert visitor.get(f"/my/budgets/{other_budget.pk}/").status_code == 404


def test_a_nominee_gets_the_nominee_role(crew, django_capture_on_commit_callbacks):
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]], given_name="Nina")
    nominee = Representative.objects.create(
        person=person,
        kind="nominee",
        name="Aisha Khan",
        relationship="friend",
        nominated_on=datetime.date(2026, 1, 5),
        consent_recorded_on=datetime.date(2026, 1, 6),
    )
    with django_capture_on_commit_callbacks(execute=True):
        sign_ins.sign_in_invite(
            person=person, representative=nominee, acting_user=crew["broker"], email="aisha@example.org"
        )
    nominee.refresh_from_db()
    assert set(nominee.user.roles) == {Role.NOMINEE}
    assert len(emails_to("aisha@example.org")) == 1


def test_an_existing_sign_in_of_someones_own_is_linked_and_gains_the_role(
    tom, client, crew, django_capture_on_commit_callbacks
):
    """A patient who is also a nominee for someone else keeps one sign-in; someone already signing in is told, with no
    link to choose a password (theirs stays as it is)."""
    theirs = make_person(icb_org=crew["icb"], given_name="Kim")
    patient = user_with_role(Role.PATIENT, email="kim@example.org")
    theirs.user = patient
    theirs.save(update_fields=["user"])
    User.objects.filter(pk=patient.pk).update(last_login=timezone.now())
    users_before = User.objects.count()
    client.force_login(crew["broker"])

    tom = crew["representative"]
    response = invite(
        client, django_capture_on_commit_callbacks, url("representative-invite", tom.pk), {"email": "KIM@example.org"}
    )
    assert response.status_code == 302
    tom.refresh_from_db()
    assert tom.user == patient and User.objects.count() == users_before
    assert set(RoleMembership.objects.filter(user=patient).values_list("role", flat=True)) == {
        Role.PATIENT,
        Role.REPRESENTATIVE,
    }
    theirs.refresh_from_db()
    assert theirs.user == patient  # still Kim's own sign-in too
    assert SignInInvitation.objects.get().kind == InvitationKind.LINKED
    (email,) = emails_to("kim@example.org")
    assert email["subject"] == sign_ins.ADDED_SUBJECT
    assert "/account/invitation/" not in email["body"] and "/sign-in/" in email["body"]
    patient.refresh_from_db()
    assert patient.check_password("correct-horse-battery-staple")  # unchanged
    assert "Signs in as kim@example.org" in page(client.get(url("person-acting", crew["person"].pk)))


def test_a_parent_of_two_children_has_one_sign_in(tom, crew, django_capture_on_commit_callbacks):
    first = crew["representative"]
    child = make_person(icb_org=crew["icb"], staff=[crew["broker"]], born=datetime.date(2018, 3, 1), given_name="Ben")
    second = Representative.objects.create(
        person=child, kind="representative", name="Tom Robson", relationship="father", basis="child_under_16"
    )
    with django_capture_on_commit_callbacks(execute=True):
        sign_ins.sign_in_invite(
            person=crew["person"], representative=first, acting_user=crew["broker"], email="tom@example.org"
        )
        invitation = sign_ins.sign_in_invite(
            person=child, representative=second, acting_user=crew["broker"], email="tom@example.org"
        )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.user == second.user and invitation.kind == InvitationKind.LINKED
    # Never signed in yet: both emails carry a link to choose the password.
    assert [e["subject"] for e in emails_to("tom@example.org")] == [sign_ins.INVITATION_SUBJECT] * 2


@pytest.mark.parametrize(
    "staff",
    [
        lambda: user_with_role(Role.CARE_BROKER, email="staff@example.org"),
        lambda: user_with_role(Role.FINANCE_OFFICER, email="staff@example.org"),
        lambda: UserFactory(email="staff@example.org", is_staff=True, organisation=None),
        lambda: UserFactory(email="staff@example.org", is_superuser=True, organisation=None),
        lambda: UserFactory(roles=[Role.PATIENT, Role.AUDITOR], email="staff@example.org", organisation=None),
    ],
    ids=["broker", "finance", "is_staff", "superuser", "patient-and-auditor"],
)
def test_a_staff_sign_in_is_never_linked(client, crew, staff, django_capture_on_commit_callbacks):
    account = staff()
    roles = set(account.roles)
    client.force_login(crew["broker"])
    response = invite(
        client,
        django_capture_on_commit_callbacks,
        url("person-invite", crew["person"].pk),
        {"email": "Staff@example.org"},
    )
    assert response.status_code == 200 and SUMMARY in response.content.decode()
    assert errors.SIGN_IN_STAFF.format(email="staff@example.org", name="Joan Robson") in page(response)
    crew["person"].refresh_from_db()
    account = User.objects.get(pk=account.pk)
    assert crew["person"].user is None and set(account.roles) == roles
    assert not SignInInvitation.objects.exists() and not emails_to("staff@example.org")


def test_someone_already_linked_is_not_invited_again_only_sent_the_invitation_again(
    client, crew, django_capture_on_commit_callbacks
):
    person, broker = crew["person"], crew["broker"]
    client.force_login(broker)
    invite(client, django_capture_on_commit_callbacks, url("person-invite", person.pk), {"email": "joan@example.org"})
    person.refresh_from_db()
    with pytest.raises(errors.SignInRefused, match=re.escape("already has a sign-in, joan@example.org")):
        sign_ins.sign_in_invite(person=person, acting_user=broker, email="another@example.org")
    assert not User.objects.filter(email="another@example.org").exists()

    resend_page = page(client.get(url("person-invite", person.pk)))
    assert "Send Joan Robson's invitation again" in resend_page and 'name="email"' not in resend_page
    response = invite(client, django_capture_on_commit_callbacks, url("person-invite", person.pk))
    assert response.status_code == 302
    first, second = emails_to("joan@example.org")
    assert [row.kind for row in SignInInvitation.objects.order_by("id")] == [InvitationKind.NEW, InvitationKind.RESENT]
    first_link, second_link = deliver(first), deliver(second)

    choose_password(second_link)
    assert "This invitation link has expired" in page(Client().get(first_link))  # the earlier link is spent too
    visitor = Client()
    assert sign_in(visitor, "joan@example.org").status_code == 302

    # Signed in now: there is nothing to send again.
    shown = page(client.get(url("person-invite", person.pk)))
    assert "Joan Robson already signs in" in shown and "Send the invitation again" not in shown
    refused = client.post(url("person-invite", person.pk))
    assert refused.status_code == 200 and SUMMARY in refused.content.decode()
    assert errors.SIGN_IN_ALREADY_SIGNS_IN.format(name="Joan Robson", email="joan@example.org") in page(refused)
    assert SignInInvitation.objects.count() == 2


def test_an_ended_representative_is_not_invited(tom, client, crew):
    tom = crew["representative"]
    services.representative_end(representative=tom, acting_user=crew["broker"])
    client.force_login(crew["broker"])
    assert url("representative-invite", tom.pk) not in page(client.get(url("person-acting", crew["person"].pk)))
    shown = page(client.get(url("representative-invite", tom.pk)))
    assert "Tom Robson has stopped acting for Joan Robson" in shown and 'name="email"' not in shown
    refused = client.post(url("representative-invite", tom.pk), {"email": "tom@example.org"})
    assert refused.status_code == 200 and errors.SIGN_IN_ENDED.format(name="Tom Robson") in page(refused)
    with pytest.raises(errors.SignInRefused, match="stopped acting"):
        sign_ins.sign_in_invite(
            person=crew["person"], representative=tom, acting_user=crew["broker"], email="tom@example.org"
        )
    tom.refresh_from_db()
    assert tom.user is None and not User.objects.filter(email="tom@example.org").exists()


def test_an_ended_representative_loses_access_to_the_person(tom, client, crew, django_capture_on_commit_callbacks):
    tom, person, budget = crew["representative"], crew["person"], crew["budget"]
    with django_capture_on_commit_callbacks(execute=True):
        sign_ins.sign_in_invite(person=person, representative=tom, acting_user=crew["broker"], email="tom@example.org")
    visitor = choose_password(deliver(emails_to("tom@example.org")[0]))
    sign_in(visitor, "tom@example.org")
    client.force_login(crew["broker"])
    assert "Tom Robson (representative)" in page(client.get(url("person", person.pk)))
    pages = [f"/my/budgets/{budget.pk}/", f"/my/budgets/{budget.pk}/transactions/", f"/people/{person.pk}/"]
    assert [visitor.get(path).status_code for path in pages] == [200, 200, 200]
    assert [row["id"] for row in visitor.get("/api/brokerage/people/").json()["results"]] == [person.pk]

    services.representative_end(representative=tom, acting_user=crew["broker"])
    assert [visitor.get(path).status_code for path in pages] == [404, 404, 404]
    assert visitor.get("/api/brokerage/people/").json()["results"] == []
    assert visitor.get("/my/").status_code == 200 and f"/my/budgets/{budget.pk}/" not in page(visitor.get("/my/"))
    # The person's page no longer lists him among those who may sign in.
    client.force_login(crew["broker"])
    assert "Tom Robson (representative)" not in page(client.get(url("person", person.pk)))


def test_a_representative_with_an_end_date_cannot_still_be_active(tom, crew):
    tom = crew["representative"]
    tom.ended_on = timezone.localdate()
    with pytest.raises(IntegrityError), transaction.atomic():
        tom.save(update_fields=["ended_on"])
    tom.active = False
    tom.save(update_fields=["active", "ended_on"])  # ended properly: both
    assert not Representative.objects.filter(pk=tom.pk, active=True).exists()


# --- The link ----------------------------------------------------------------------------------------------------


def test_the_link_lasts_seven_days_then_says_to_ask_for_a_new_one(crew, django_capture_on_commit_callbacks):
    with time_machine.travel(START, tick=False), django_capture_on_commit_callbacks(execute=True):
        sign_ins.sign_in_invite(person=crew["person"], acting_user=crew["broker"], email="joan@example.org")
    link = deliver(emails_to("joan@example.org")[0])
    # Still open after the hour a password-reset link lasts, and on the seventh day.
    for later in (datetime.timedelta(hours=2), datetime.timedelta(days=6, hours=23)):
        with time_machine.travel(START + later, tick=False):
            assert Client().get(link).status_code == 302, later
    with time_machine.travel(START + datetime.timedelta(days=7, minutes=1), tick=False):
        expired = Client().get(link)
    assert expired.status_code == 200
    shown = page(expired)
    assert (
        "This invitation link has expired" in shown
        and "Ask your care coordinator to send you a new invitation" in shown
    )
    assert 'name="new_password1"' not in shown


def test_invitation_and_reset_tokens_do_not_open_each_other(crew):
    user = user_with_role(Role.PATIENT, email="kim@example.org")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    reset_token = default_token_generator.make_token(user)
    assert not invitation_token_generator.check_token(user, reset_token)
    forged = page(Client().get(reverse("accounts:invitation", kwargs={"uidb64": uid, "token": reset_token})))
    assert "This invitation link has expired" in forged
    invitation_token = invitation_token_generator.make_token(user)
    opened = Client().get(reverse("accounts:password-reset-confirm", kwargs={"uidb64": uid, "token": invitation_token}))
    assert "This link has expired" in page(opened)
    # A closed sign-in's link does not open either, and a nonsense id is the same page, not an error.
    assert Client().get(invitation_path(user)).status_code == 302
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert "This invitation link has expired" in page(Client().get(invitation_path(user)))
    nonsense = Client().get(reverse("accounts:invitation", kwargs={"uidb64": "zzzz", "token": "1-2"}))
    assert nonsense.status_code == 200 and "This invitation link has expired" in page(nonsense)


# --- Who may invite ------------------------------------------------------------------------------------------------


def test_only_staff_who_work_with_the_person_may_invite(tom, client, crew):
    person, tom = crew["person"], crew["representative"]
    outsider = user_with_role(Role.CARE_BROKER, organisation=crew["icb"])  # same ICB, not assigned to Joan
    for user in (outsider, crew["approver"], crew["finance"]):
        client.force_login(user)
        for target in (url("person-invite", person.pk), url("representative-invite", tom.pk)):
            assert client.get(target).status_code == 404, (user, target)
            assert client.post(target, {"email": "joan@example.org"}).status_code == 404, (user, target)
        with pytest.raises(errors.SignInRefused, match="You cannot invite"):
            sign_ins.sign_in_invite(person=person, acting_user=user, email="joan@example.org")
    # Finance and the approver may read Joan's record, but are offered no invitation there.
    client.force_login(crew["approver"])
    shown = page(client.get(url("person", person.pk)))
    assert "No sign-in" in shown and url("person-invite", person.pk) not in shown
    person.refresh_from_db()
    assert person.user is None and not SignInInvitation.objects.exists()
    # A coordinator assigned to her may.
    client.force_login(crew["coordinator"])
    assert client.get(url("person-invite", person.pk)).status_code == 200
    # A representative of someone else cannot be invited through Joan's record.
    stranger = Representative.objects.create(
        person=make_person(icb_org=crew["icb"]),
        kind="representative",
        name="X",
        relationship="y",
        basis="child_under_16",
    )
    with pytest.raises(errors.SignInRefused):
        sign_ins.sign_in_invite(
            person=person, representative=stranger, acting_user=crew["broker"], email="x@example.org"
        )
    assert Person.objects.filter(user__isnull=False).count() == 0


def test_someone_who_lost_the_invitation_can_use_forgotten_password_before_choosing_one(
    client, crew, django_capture_on_commit_callbacks
):
    client.force_login(crew["broker"])
    invite(
        client,
        django_capture_on_commit_callbacks,
        url("person-invite", crew["person"].pk),
        {"email": "joan.robson@example.org"},
    )
    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(reverse("accounts:password-reset"), {"email": "JOAN.ROBSON@example.org"})
    assert asked["Location"] == reverse("accounts:password-reset-done")
    invitation, reset = emails_to("joan.robson@example.org")  # Django alone would have sent no reset email
    link = deliver(reset)
    assert link.startswith("/password-reset/")
    visitor = Client()
    opened = visitor.get(link)
    done = visitor.post(opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert sign_in(Client(), "joan.robson@example.org").status_code == 302  # signed in with the password chosen

    closed = User.objects.get(email="joan.robson@example.org")
    closed.is_active = False
    closed.save(update_fields=["is_active"])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("accounts:password-reset"), {"email": "joan.robson@example.org"})
    assert len(emails_to("joan.robson@example.org")) == 2  # a closed account is still not sent one
