"""Sign-in and password-reset forms, worded in the NHS style and sending email through the job queue."""

from __future__ import annotations

import unicodedata

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm

from accounts.models import User
from accounts.tasks import send_email

SIGN_IN_FAILED = "Enter a correct email address and password. Both are case sensitive for the password only."
ENTER_EMAIL = "Enter your email address"
ENTER_VALID_EMAIL = "Enter an email address in the correct format, like name@example.com"
ENTER_PASSWORD = "Enter your password"  # noqa: S105 - an error message, not a password


class SignInForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email address",
        max_length=254,
        error_messages={"required": ENTER_EMAIL, "invalid": ENTER_VALID_EMAIL},
    )
    password = forms.CharField(label="Password", strip=False, error_messages={"required": ENTER_PASSWORD})

    error_messages = {
        "invalid_login": SIGN_IN_FAILED,
        "inactive": "This account has been closed. Contact your administrator.",
    }


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's reset form; the email is sent by a worker, enqueued in the same transaction."""

    email = forms.EmailField(
        label="Email address",
        max_length=254,
        error_messages={"required": ENTER_EMAIL, "invalid": ENTER_VALID_EMAIL},
    )

    subject_template_name = "accounts/password_reset_subject.txt"
    email_template_name = "accounts/password_reset_email.txt"

    def get_users(self, email):
        """Django's, and also anyone invited who has not chosen a password yet (accounts.invitations): Django
        leaves out accounts without a usable password, which would lock out whoever lost their invitation. Closed
        accounts are still left out; the address must match exactly once case and Unicode forms are set aside."""
        wanted = unicodedata.normalize("NFKC", email).casefold()
        for user in User.objects.filter(email__iexact=email, is_active=True):
            if unicodedata.normalize("NFKC", user.email).casefold() == wanted:
                yield user

    def save(self, **kwargs):
        kwargs.setdefault("subject_template_name", self.subject_template_name)
        kwargs.setdefault("email_template_name", self.email_template_name)
        return super().save(**kwargs)

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        from django.template import loader

        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        send_email.defer(subject=subject, body=body, to=[to_email])


class NewPasswordForm(SetPasswordForm):
    error_messages = {"password_mismatch": "The passwords do not match. Enter the same password twice."}


ENTER_CODE = "Enter the 6-digit security code from your authenticator app"
CODE_FORMAT = "The security code must be 6 digits, like 123456"
WRONG_CODE = "The security code is not correct. Enter the code your authenticator app shows now"


def code_throttled(seconds: int) -> str:
    unit = "second" if seconds == 1 else "seconds"
    return f"You have entered a wrong code too many times. Wait {seconds} {unit}, then enter the new code"


class SecurityCodeForm(forms.Form):
    """One 6-digit code from an authenticator app; spaces (as some apps show it, '123 456') are allowed."""

    code = forms.CharField(
        label="Security code",
        max_length=20,
        error_messages={"required": ENTER_CODE},
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            raise forms.ValidationError(CODE_FORMAT)
        return code
