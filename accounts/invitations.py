"""Invitations to sign in: a link, valid for INVITATION_DAYS, to choose a first password.

The token is Django's password-reset token with its own salt and lifetime, so a reset link never opens an invitation
and an invitation never resets a password. It stops working once a password is chosen (the hash covers the
password and the last sign-in) or after INVITATION_DAYS. The staff who invite people are in the domain apps; this
module knows only users, so the accounts app keeps importing no domain app.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode

INVITATION_DAYS = 7


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "accounts.invitations.InvitationTokenGenerator"
    timeout = INVITATION_DAYS * 24 * 60 * 60  # seconds

    def check_token(self, user, token) -> bool:
        """Django's check, against this generator's own timeout (Django's reads PASSWORD_RESET_TIMEOUT, one hour)."""
        if not (user and token):
            return False
        try:
            ts_b36, _ = token.split("-")
            timestamp = base36_to_int(ts_b36)
        except ValueError:
            return False
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(self._make_token_with_timestamp(user, timestamp, secret), token):
                break
        else:
            return False
        return self._num_seconds(self._now()) - timestamp <= self.timeout


invitation_token_generator = InvitationTokenGenerator()


def invitation_path(user) -> str:
    return reverse(
        "accounts:invitation",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": invitation_token_generator.make_token(user),
        },
    )


def invitation_link(user) -> str:
    """The full link for an email: a new token each time it is made."""
    return settings.SITE_URL.rstrip("/") + invitation_path(user)


def sign_in_link() -> str:
    return settings.SITE_URL.rstrip("/") + reverse("accounts:sign-in")
