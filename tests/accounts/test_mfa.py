"""R8 multi-factor authentication: staff who approve or move money need a code from an authenticator app (TOTP)."""

import base64
import re
import time
from html import unescape
from urllib.parse import quote

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import demo
from accounts.forms import CODE_FORMAT, ENTER_CODE, WRONG_CODE
from accounts.middleware import STARTED_KEY, TWO_FACTOR_API_REFUSAL
from accounts.models import User
from accounts.roles import MFA_ROLES, Role
from tests.factories import TEST_PASSWORD, UserFactory, user_with_role
from tests.mfa import authenticator_for, current_code
from tests.test_settings_and_architecture import PRODUCTION_ENV, run_python

pytestmark = pytest.mark.django_db

SIGN_IN = reverse("accounts:sign-in")
CODE_PAGE = reverse("accounts:sign-in-code")
SET_UP = reverse("accounts:two-factor")
FINANCE_PAGE = reverse("ledger:trial-balance")
FINANCE_API = reverse("ledger-api:api-trial-balance")


def password(client, user, pw=TEST_PASSWORD):
    return client.post(SIGN_IN, {"username": user.email, "password": pw})


def code_for_secret(page: str) -> str:
    """The code an authenticator app shows for the key printed on the set-up page: computed from the page alone."""
    secret = re.search(r'<code id="two-factor-secret">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return f"{totp(key):06d}"


def dashboard_of(user) -> str:
    return reverse("accounts:role-dashboard", kwargs={"role": user.primary_role.value})


# --- Who is asked ---------------------------------------------------------------------------------------------


def test_the_money_roles_are_approvers_finance_and_administrators():
    assert {Role.ICB_APPROVER, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.ADMINISTRATOR} == MFA_ROLES


@pytest.mark.parametrize("role", sorted(MFA_ROLES))
def test_money_roles_without_an_app_are_sent_to_set_one_up(role):
    client = Client()
    user = user_with_role(role)
    response = password(client, user)
    assert response.status_code == 302
    assert response["Location"] == SET_UP
    # Signed in by password, but nothing else opens until the app is set up.
    response = client.get(dashboard_of(user))
    assert response.status_code == 302
    assert response["Location"] == f"{SET_UP}?next={quote(dashboard_of(user), safe='')}"


@pytest.mark.parametrize("role", sorted(set(Role) - MFA_ROLES))
def test_other_roles_are_never_asked_for_a_code(role):
    client = Client()
    user = user_with_role(role)
    response = password(client, user)
    assert response["Location"] == reverse("accounts:dashboard")
    assert client.get(dashboard_of(user)).status_code == 200
    assert client.get(SET_UP).status_code == 404
    assert not TOTPDevice.objects.filter(user=user).exists()


def test_a_staff_user_who_can_use_the_admin_site_is_asked_too():
    client = Client()
    user = UserFactory(roles=[Role.AUDITOR], is_staff=True)
    assert password(client, user)["Location"] == SET_UP
    assert client.get("/admin/")["Location"].startswith(SET_UP)


def test_mfa_required_off_skips_the_code(settings):
    settings.MFA_REQUIRED = False
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    authenticator_for(officer)
    assert password(client, officer)["Location"] == reverse("accounts:dashboard")
    assert client.get(FINANCE_PAGE).status_code == 200
    assert client.get(FINANCE_API).status_code == 200


# --- Setting up the app ---------------------------------------------------------------------------------------


def test_set_up_shows_the_key_link_and_qr_code_and_confirms_only_with_a_valid_code():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    password(client, officer)
    response = client.get(SET_UP)
    page = response.content.decode()
    assert response.status_code == 200
    assert '<h1 class="nhsuk-heading-xl">Set up two-factor authentication</h1>' in page
    device = TOTPDevice.objects.get(user=officer)
    assert not device.confirmed
    uri = unescape(re.search(r'id="two-factor-link"[^>]*>([^<]+)</textarea>', page).group(1)).strip()
    assert uri.startswith("otpauth://totp/Personal%20health%20budgets%3A") and quote(officer.email) in uri
    assert f"secret={base64.b32encode(device.bin_key).decode()}" in uri
    qr = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(qr).lstrip().startswith(b"<?xml") and b"<svg" in base64.b64decode(qr)
    # Showing the page again keeps the same key (the person may be halfway through adding it).
    assert code_for_secret(client.get(SET_UP).content.decode()) == code_for_secret(page)

    response = client.post(SET_UP, {"code": "12345"})
    assert CODE_FORMAT in response.content.decode()
    right = code_for_secret(page)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    response = client.post(SET_UP, {"code": wrong})
    assert response.status_code == 200
    assert WRONG_CODE in response.content.decode()
    assert "<title>Error: Set up two-factor authentication" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get(FINANCE_PAGE)["Location"].startswith(SET_UP)

    with time_machine.travel(time.time() + 2, tick=True):  # past django-otp's 1-second wait after a wrong code
        response = client.post(SET_UP, {"code": code_for_secret(page), "next": FINANCE_PAGE})
        assert response.status_code == 302
        assert response["Location"] == FINANCE_PAGE
        device.refresh_from_db()
        assert device.confirmed
        page = client.get(FINANCE_PAGE, follow=True).content.decode()
        assert "Your authenticator app is set up" in page
        assert client.get(FINANCE_PAGE).status_code == 200
        # Set up once: the page now just moves on.
        assert client.get(SET_UP)["Location"] == reverse("accounts:dashboard")


def test_a_stolen_password_cannot_add_a_second_app():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    authenticator_for(officer)
    password(client, officer)
    assert client.get(SET_UP)["Location"] == CODE_PAGE
    assert client.post(SET_UP, {"code": "123456"})["Location"] == CODE_PAGE
    assert TOTPDevice.objects.filter(user=officer).count() == 1


# --- Signing in with a code -----------------------------------------------------------------------------------


def test_sign_in_asks_for_the_code_and_the_right_code_opens_the_finance_pages():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    response = password(client, officer)
    assert response["Location"] == CODE_PAGE
    page = client.get(CODE_PAGE).content.decode()
    assert "Enter your security code" in page and 'autocomplete="one-time-code"' in page
    assert client.get(FINANCE_PAGE)["Location"] == f"{CODE_PAGE}?next={quote(FINANCE_PAGE, safe='')}"

    code = f"{totp(device.bin_key):06d}"
    response = client.post(CODE_PAGE, {"code": code[:3] + " " + code[3:]})  # as some apps show it
    assert response["Location"] == reverse("accounts:dashboard")
    assert client.get(reverse("accounts:dashboard"))["Location"] == dashboard_of(officer)
    assert "Finance officer dashboard" in client.get(dashboard_of(officer)).content.decode()
    assert client.get(FINANCE_PAGE).status_code == 200
    assert client.get(FINANCE_API).status_code == 200


def test_the_page_asked_for_is_reached_after_the_code_but_never_another_site():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    response = client.post(
        f"{SIGN_IN}?next={quote(FINANCE_PAGE)}", {"username": officer.email, "password": TEST_PASSWORD}
    )
    assert response["Location"] == f"{CODE_PAGE}?next={quote(FINANCE_PAGE, safe='')}"
    response = client.post(response["Location"], {"code": current_code(device), "next": "https://evil.example/"})
    assert response["Location"] == reverse("accounts:dashboard")

    client = Client()
    password(client, officer)
    response = client.post(CODE_PAGE, {"code": current_code(device), "next": FINANCE_PAGE})
    assert response["Location"] == FINANCE_PAGE


def test_a_wrong_code_shows_the_error_and_the_throttle_makes_the_next_try_wait():
    client = Client()
    officer = user_with_role(Role.FINANCE_MANAGER)
    device = authenticator_for(officer)
    password(client, officer)
    right = f"{totp(device.bin_key):06d}"
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    response = client.post(CODE_PAGE, {"code": ""})
    assert ENTER_CODE in response.content.decode()
    response = client.post(CODE_PAGE, {"code": wrong})
    page = response.content.decode()
    assert response.status_code == 200
    assert "<title>Error: Enter your security code" in page
    assert "nhsuk-error-summary" in page and 'href="#id_code"' in page
    assert WRONG_CODE in page
    assert client.get(FINANCE_PAGE).status_code == 302

    # django-otp's throttle: straight after a wrong code even the right one waits.
    page = client.post(CODE_PAGE, {"code": right}).content.decode()
    assert "You have entered a wrong code too many times. Wait 1 second" in page
    assert client.get(FINANCE_PAGE).status_code == 302
    with time_machine.travel(time.time() + 2, tick=True):
        assert client.post(CODE_PAGE, {"code": current_code(device)})["Location"] == reverse("accounts:dashboard")
        assert client.get(FINANCE_PAGE).status_code == 200


def test_a_code_cannot_be_used_twice():
    officer = user_with_role(Role.ICB_APPROVER)
    device = authenticator_for(officer)
    code = f"{totp(device.bin_key):06d}"
    first = Client()
    password(first, officer)
    assert first.post(CODE_PAGE, {"code": code})["Location"] == reverse("accounts:dashboard")
    second = Client()
    password(second, officer)
    assert WRONG_CODE in second.post(CODE_PAGE, {"code": code}).content.decode()
    assert second.get(dashboard_of(officer))["Location"].startswith(CODE_PAGE)


def test_wrong_codes_count_towards_the_lockout(settings):
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    password(client, officer)
    wrong = f"{(totp(device.bin_key) + 1) % 1_000_000:06d}"
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(CODE_PAGE, {"code": wrong}).status_code == 200
    response = client.post(CODE_PAGE, {"code": wrong})
    assert response.status_code == 429
    assert "Your account is locked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Locked: the right password is refused too.
    response = password(client, officer)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_while_the_account_is_locked_even_the_right_code_is_refused(settings):
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    waiting = Client()
    password(waiting, officer)  # signed in by password, at the code page
    for _ in range(settings.AXES_FAILURE_LIMIT):  # meanwhile someone else guesses the password
        password(Client(), officer, "wrong-password")
    response = waiting.post(CODE_PAGE, {"code": current_code(device)})
    assert response.status_code == 429
    assert "Your account is locked" in response.content.decode()
    assert "_auth_user_id" not in waiting.session
    device.refresh_from_db()
    assert device.last_t == -1  # the code was never checked


def test_a_verified_session_ends_with_sign_out_and_the_next_sign_in_asks_again():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    password(client, officer)
    client.post(CODE_PAGE, {"code": current_code(device)})
    assert client.get(FINANCE_PAGE).status_code == 200
    client.post(reverse("accounts:sign-out"))
    assert password(client, officer)["Location"] == CODE_PAGE
    assert client.get(FINANCE_PAGE).status_code == 302


# --- Until verified -------------------------------------------------------------------------------------------


def test_before_the_code_only_the_code_pages_sign_out_and_static_pages_open():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    authenticator_for(officer)
    password(client, officer)
    for path in [reverse("accessibility"), reverse("privacy"), CODE_PAGE]:
        assert client.get(path).status_code == 200, path
    for path in [reverse("accounts:dashboard"), FINANCE_PAGE, reverse("ledger:accounts"), "/admin/", SIGN_IN]:
        assert client.get(path)["Location"].startswith(CODE_PAGE), path
    # A form posted before the code is not carried out, and not remembered as the page to go back to.
    response = client.post(reverse("ledger:period-close"), {})
    assert response.status_code == 302 and response["Location"] == CODE_PAGE
    assert client.post(reverse("accounts:session-extend"), headers={"X-Requested-With": "fetch"}).json() == {
        "extended": True
    }
    assert client.post(reverse("accounts:sign-out")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_before_the_code_the_api_refuses_with_the_reason():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    password(client, officer)
    for path in [FINANCE_API, "/api/ledger/transfers/"]:
        response = client.get(path)
        assert response.status_code == 403
        assert response.json() == {"detail": TWO_FACTOR_API_REFUSAL}
    response = client.post("/api/ledger/transfers/", {}, content_type="application/json")
    assert response.status_code == 403


def test_force_login_without_the_second_factor_is_held_back():
    """The real middleware runs in tests: a plain force_login (no code) does not reach finance pages; the suite's
    client (tests/mfa.py) passes the second factor the way django_otp.login does."""
    officer = user_with_role(Role.FINANCE_OFFICER)
    plain = Client()
    plain.force_login(officer)
    assert plain.get(FINANCE_PAGE)["Location"].startswith(SET_UP)
    assert plain.get(FINANCE_API).status_code == 403


def test_the_suite_client_passes_the_second_factor(client):
    officer = user_with_role(Role.FINANCE_OFFICER)
    client.force_login(officer)
    assert client.get(FINANCE_PAGE).status_code == 200
    assert TOTPDevice.objects.get(user=officer).confirmed


def test_removing_the_app_ends_the_verification():
    client = Client()
    officer = user_with_role(Role.FINANCE_OFFICER)
    device = authenticator_for(officer)
    password(client, officer)
    client.post(CODE_PAGE, {"code": current_code(device)})
    assert client.get(FINANCE_PAGE).status_code == 200
    device.delete()  # the administrator resets it (admin site)
    assert client.get(FINANCE_PAGE)["Location"].startswith(SET_UP)


# --- The demo -------------------------------------------------------------------------------------------------


def seed_demo_users():
    demo.seed(rng=None, people=0, context={})


def test_demo_money_staff_have_the_demo_authenticator_and_demo_code_signs_them_in(settings, capsys):
    settings.DEBUG = True
    seed_demo_users()
    seed_demo_users()  # again: nothing added twice
    for role, local, _name, _org in demo.DEMO_USERS:
        devices = TOTPDevice.objects.filter(user__email=demo.demo_email(local))
        if role in MFA_ROLES:
            [device] = devices
            assert device.confirmed and device.bin_key == base64.b32decode(demo.DEMO_TOTP_SECRET)
        else:
            assert not devices.exists()
    email = demo.demo_email("finance")
    call_command("demo_code", email)
    code = capsys.readouterr().out.strip()
    assert re.fullmatch(r"\d{6}", code)
    client = Client()
    client.post(SIGN_IN, {"username": email, "password": demo.DEMO_PASSWORD})
    assert client.post(CODE_PAGE, {"code": code})["Location"] == reverse("accounts:dashboard")
    # That code is used; the command then prints one still accepted, not the same.
    call_command("demo_code", email)
    assert capsys.readouterr().out.strip() != code


def test_demo_code_refuses_real_users_and_production(settings):
    settings.DEBUG = True
    seed_demo_users()
    officer = user_with_role(Role.FINANCE_OFFICER)
    authenticator_for(officer)
    with pytest.raises(CommandError, match="not a demo user"):
        call_command("demo_code", officer.email)
    with pytest.raises(CommandError, match="not a demo user"):
        call_command("demo_code", demo.demo_email("patient"))
    User.objects.filter(email=demo.demo_email("approver")).update(email="approver@nhs.example")
    with pytest.raises(CommandError, match="not a demo user"):
        call_command("demo_code", "approver@nhs.example")
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only works in the local demo"):
        call_command("demo_code", demo.demo_email("finance"))


# --- The rest of R8 not covered elsewhere: absolute session limit, browser-session cookie, production flags ----------
# (Lockout with the right password refused, idle expiry, HttpOnly/SameSite: tests/accounts/test_sign_in.py;
# `check --deploy` clean: tests/test_settings_and_architecture.py.)


def test_a_session_ends_after_its_absolute_limit_however_busy(settings):
    client = Client()
    broker = user_with_role(Role.CARE_BROKER)
    password(client, broker)
    assert client.get(dashboard_of(broker)).status_code == 200
    session = client.session
    session[STARTED_KEY] = int(time.time()) - settings.SESSION_COOKIE_AGE + 60
    session.save()
    assert client.get(dashboard_of(broker)).status_code == 200  # busy, and inside the limit
    session = client.session
    session[STARTED_KEY] = int(time.time()) - settings.SESSION_COOKIE_AGE - 1
    session.save()
    response = client.get(dashboard_of(broker))
    assert response["Location"] == f"{SIGN_IN}?session_ended=1"
    assert "_auth_user_id" not in client.session
    assert "because you had been signed in for 12 hours" in client.get(response["Location"]).content.decode()
    assert client.get(dashboard_of(broker))["Location"].startswith(f"{SIGN_IN}?next=")


def test_the_session_cookie_lasts_only_as_long_as_the_browser():
    client = Client()
    response = password(client, user_with_role(Role.CARE_BROKER))
    cookie = response.cookies["sessionid"]
    assert cookie["expires"] == "" and cookie["max-age"] == ""
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_production_cookies_are_secure_and_two_factor_is_on():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.MFA_REQUIRED, "
        "'django_otp.middleware.OTPMiddleware' in s.MIDDLEWARE)"
    )
    result = run_python("-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "True", "True"]
    result = run_python("-c", code, env={**PRODUCTION_ENV, "MFA_REQUIRED": "false"})
    assert result.stdout.split()[3] == "False"
