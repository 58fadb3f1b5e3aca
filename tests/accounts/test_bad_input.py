"""Random input to the sign-in and password-reset forms never produces a server error."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

anything = st.text(max_size=300) | st.binary(max_size=100).map(lambda b: b.decode("latin-1"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=anything, password=anything)
def test_sign_in_never_fails_with_a_server_error(client, username, password):
    response = client.post(reverse("accounts:sign-in"), {"username": username, "password": password})
    assert response.status_code in (200, 429)
    assert b"nhsuk-error-summary" in response.content or response.status_code == 429


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(email=anything)
def test_password_reset_never_fails_with_a_server_error(client, email):
    response = client.post(reverse("accounts:password-reset"), {"email": email})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert b"nhsuk-error-summary" in response.content


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    uid=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=40),
    token=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=60),
)
def test_random_reset_links_are_refused_politely(client, uid, token):
    response = client.get(f"/password-reset/{uid}/{token}/", follow=True)
    assert response.status_code == 200
    assert b"This link has expired" in response.content
