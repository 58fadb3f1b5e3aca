"""Signing in and out, landing on the right dashboard, lockout, idle timeout and cookie flags."""

import time

import pytest
from django.urls import reverse

from accounts.forms import ENTER_EMAIL, ENTER_PASSWORD, SIGN_IN_FAILED
from accounts.mfa import needs_two_factor
from accounts.middleware import LAST_SEEN_KEY
from accounts.models import User
from accounts.roles import PERSON_ROLES, Role
from tests.factories import TEST_PASSWORD, UserFactory, user_with_role
from tests.mfa import authenticator_for, current_code

pytestmark = pytest.mark.django_db


def sign_in(client, email, password=TEST_PASSWORD):
    """The password; then, for staff who approve or move money, the code from their authenticator app."""
    user = User.objects.filter(email__iexact=email).first()
    device = authenticator_for(user) if user is not None and needs_two_factor(user) else None
    response = client.post(reverse("accounts:sign-in"), {"username": email, "password": password})
    if device is not None and response.get("Location", "").startswith(reverse("accounts:sign-in-code")):
        response = client.post(response["Location"], {"code": current_code(device)})
    return response


@pytest.mark.parametrize("role", [role for role in Role if role not in PERSON_ROLES])
def test_each_staff_role_lands_on_its_own_dashboard(client, role):
    user = user_with_role(role)
    response = sign_in(client, user.email)
    assert response.status_code == 302
    response = client.get(response["Location"], follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:role-dashboard", kwargs={"role": role.value})
    assert f"{role.label} dashboard" in response.content.decode()


def test_email_is_not_case_sensitive(client):
    user = user_with_role(Role.CARE_BROKER, email="mixed.case@example.nhs.uk")
    assert sign_in(client, "Mixed.Case@EXAMPLE.nhs.uk").status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_someone_with_several_roles_lands_on_the_most_senior_and_can_switch(client):
    user = UserFactory(roles=[Role.CARE_BROKER, Role.FINANCE_MANAGER])
    sign_in(client, user.email)
    response = client.get(reverse("accounts:dashboard"))
    assert response["Location"] == reverse("accounts:role-dashboard", kwargs={"role": "finance_manager"})
    page = client.get(response["Location"]).content.decode()
    assert reverse("accounts:role-dashboard", kwargs={"role": "care_broker"}) in page


def test_another_roles_dashboard_is_not_found(client):
    user = user_with_role(Role.PATIENT)
    sign_in(client, user.email)
    for role in ["finance_officer", "administrator", "not-a-role"]:
        assert client.get(reverse("accounts:role-dashboard", kwargs={"role": role})).status_code == 404


def test_dashboards_need_sign_in(client):
    response = client.get(reverse("accounts:role-dashboard", kwargs={"role": "patient"}))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:sign-in"))


def test_wrong_password_shows_the_error_summary_and_signs_nobody_in(client):
    user = user_with_role(Role.CARE_BROKER)
    response = sign_in(client, user.email, "not-the-password")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<title>Error: Sign in" in page
    assert "nhsuk-error-summary" in page
    assert SIGN_IN_FAILED in page
    assert "_auth_user_id" not in client.session


def test_empty_form_names_each_missing_field(client):
    page = client.post(reverse("accounts:sign-in"), {"username": "", "password": ""}).content.decode()
    assert ENTER_EMAIL in page and ENTER_PASSWORD in page
    assert 'href="#id_username"' in page and 'href="#id_password"' in page


def test_sign_out_needs_post_and_ends_the_session(client):
    user = user_with_role(Role.CARE_BROKER)
    sign_in(client, user.email)
    assert client.get(reverse("accounts:sign-out")).status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post(reverse("accounts:sign-out"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_account_locks_after_repeated_failures_even_with_the_right_password(client, settings):
    user = user_with_role(Role.FINANCE_OFFICER)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, user.email, "wrong-password")
    response = sign_in(client, user.email)
    assert response.status_code == 429
    assert "Your account is locked" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_below_the_limit_do_not_lock(client, settings):
    user = user_with_role(Role.FINANCE_OFFICER)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, user.email, "wrong-password")
    assert sign_in(client, user.email).status_code == 302


def test_idle_session_ends_and_explains_why(client, settings):
    user = user_with_role(Role.CARE_COORDINATOR)
    sign_in(client, user.email)
    assert client.get(reverse("accounts:dashboard")).status_code == 302
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - settings.SESSION_IDLE_SECONDS - 1
    session.save()
    response = client.get(reverse("accounts:role-dashboard", kwargs={"role": "care_coordinator"}))
    assert response["Location"] == reverse("accounts:sign-in") + "?timed_out=1"
    assert "_auth_user_id" not in client.session
    page = client.get(response["Location"]).content.decode()
    assert "You were signed out because you had not done anything for a while" in page


def test_activity_inside_the_idle_limit_keeps_the_session(client, settings):
    user = user_with_role(Role.CARE_COORDINATOR)
    sign_in(client, user.email)
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - settings.SESSION_IDLE_SECONDS + 30
    session.save()
    response = client.post(reverse("accounts:session-extend"), headers={"X-Requested-With": "fetch"})
    assert response.json() == {"extended": True}
    assert client.session[LAST_SEEN_KEY] >= int(time.time()) - 1


def test_session_and_csrf_cookies_are_http_only_and_same_site(client):
    user = user_with_role(Role.CARE_BROKER)
    response = sign_in(client, user.email)
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"
    csrf_cookie = client.get(reverse("accounts:sign-in")).cookies.get("csrftoken") or client.cookies["csrftoken"]
    assert csrf_cookie["samesite"] == "Lax"


def test_pages_send_a_nonce_based_content_security_policy(client):
    response = client.get(reverse("accounts:sign-in"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    page = response.content.decode()
    # Every script on the page carries the nonce, including the one inside NHS.UK's own template.
    assert page.count("<script") == page.count(f'nonce="{nonce}"') >= 2


def test_people_with_only_a_patient_representative_or_nominee_role_land_on_their_budgets(client):
    for role in PERSON_ROLES:
        client.logout()
        response = sign_in(client, user_with_role(role).email)
        response = client.get(response["Location"], follow=True)
        assert response.redirect_chain[-1][0] == reverse("budgets:my-budgets")
        assert "There is no budget to show yet" in response.content.decode()
        assert f"{role.label} dashboard" in client.get(f"/dashboard/{role.value}/").content.decode()  # still there
    both = UserFactory(roles=[Role.CARE_BROKER, Role.PATIENT])  # staff who are also a patient keep their work
    client.force_login(both)
    assert client.get(reverse("accounts:dashboard"))["Location"] == reverse(
        "accounts:role-dashboard", kwargs={"role": "care_broker"}
    )
