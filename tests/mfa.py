"""Two-factor authentication in tests: staff who approve or move money sign in with a real authenticator code.

The real OTPMiddleware and TwoFactorRequiredMiddleware run in every test. A test client's `force_login` of such a
user gives them a confirmed authenticator app (a TOTPDevice) and marks the session verified exactly as
`django_otp.login` does; browser tests type the current code into the code page.
"""

from __future__ import annotations

import time

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.mfa import acceptable_code, needs_two_factor


def authenticator_for(user) -> TOTPDevice:
    """The user's confirmed authenticator app, as if they had set it up on an earlier visit."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    """A code the device accepts now, as the person's app would show it. django-otp accepts each 30-second step once:
    when every step inside the tolerance window has been used (several sign-ins in a few seconds), wait for the next."""
    for _ in range(40):
        device.refresh_from_db()
        code = acceptable_code(device)
        if code is not None:
            return code
        time.sleep(1)
    raise AssertionError(f"no usable code for {device} after 40 s")


class TwoFactorClient(Client):
    """A test client whose force_login of staff who must use two-factor also passes the second factor."""

    def force_login(self, user, backend=None):
        super().force_login(user, backend)
        if needs_two_factor(user):
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = authenticator_for(user).persistent_id
            session.save()
