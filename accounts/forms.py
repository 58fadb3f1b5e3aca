"""Sign-in and password-reset forms, worded in the NHS style and sending email through the job queue."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm

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
