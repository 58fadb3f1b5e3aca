"""Sign-in (with a one-time code for staff who approve or move money), sign-out, password reset, choosing a first
password from an invitation, the idle-session extension and each role's dashboard."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required, login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts import mfa
from accounts.forms import (
    WRONG_CODE,
    NewPasswordForm,
    QueuedPasswordResetForm,
    SecurityCodeForm,
    SignInForm,
    code_throttled,
)
from accounts.invitations import INVITATION_DAYS, invitation_token_generator
from accounts.roles import PERSON_ROLES, Role
from accounts.selectors import dashboard_for


class SignInView(auth_views.LoginView):
    template_name = "accounts/sign_in.jinja"
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["timed_out"] = self.request.GET.get("timed_out") == "1"
        context["session_ended"] = self.request.GET.get("session_ended") == "1"
        context["session_hours"] = settings.SESSION_COOKIE_AGE // 3600
        return context

    def get_success_url(self):
        # Password accepted: staff who approve or move money go on to enter a code (or set up their app) first.
        if mfa.needs_two_factor(self.request.user):
            return mfa.next_step_url(self.request.user, self.get_redirect_url())
        return super().get_success_url()


class SignOutView(auth_views.LogoutView):
    http_method_names = ["post", "options"]


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.jinja"
    form_class = QueuedPasswordResetForm
    email_template_name = QueuedPasswordResetForm.email_template_name
    subject_template_name = QueuedPasswordResetForm.subject_template_name
    success_url = reverse_lazy("accounts:password-reset-done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.jinja"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.jinja"
    form_class = NewPasswordForm
    success_url = reverse_lazy("accounts:password-reset-complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.jinja"


INVITATION_SESSION_TOKEN = "_invitation_token"  # noqa: S105 - a session key, not a password
PASSWORD_CHOSEN = "Your password is set. Sign in with your email address and the password you chose."  # noqa: S105


class InvitationView(auth_views.PasswordResetConfirmView):
    """An invitation to sign in (accounts.invitations): the invited person chooses their first password, then signs
    in. Django's reset-confirm flow, with the invitation's own token and its own session key (a reset link opened in
    the same browser does not spoil it); a used, expired or forged link says to ask for a new invitation."""

    template_name = "accounts/invitation.jinja"
    form_class = NewPasswordForm
    token_generator = invitation_token_generator
    success_url = reverse_lazy("accounts:sign-in")

    @method_decorator(login_not_required)
    @method_decorator(sensitive_post_parameters())
    @method_decorator(never_cache)
    def dispatch(self, request, *args, uidb64: str, token: str, **kwargs):
        self.validlink = False
        self.user = self.get_user(uidb64)
        if self.user is not None and self.user.is_active:
            if token == self.reset_url_token:
                if self.token_generator.check_token(self.user, request.session.get(INVITATION_SESSION_TOKEN)):
                    self.validlink = True
                    return super(auth_views.PasswordResetConfirmView, self).dispatch(
                        request, *args, uidb64=uidb64, token=token, **kwargs
                    )
            elif self.token_generator.check_token(self.user, token):
                # Kept in the session and taken out of the address, so it cannot leak in a Referer header.
                request.session[INVITATION_SESSION_TOKEN] = token
                return redirect(request.path.replace(token, self.reset_url_token))
        return self.render_to_response(self.get_context_data())

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "invitation_days": INVITATION_DAYS}

    def form_valid(self, form):
        form.save()
        self.request.session.pop(INVITATION_SESSION_TOKEN, None)
        messages.success(self.request, PASSWORD_CHOSEN)
        return redirect(self.get_success_url())


@require_POST
@login_required
def session_extend(request: HttpRequest) -> HttpResponse:
    """Any request resets the idle timer (see IdleSessionMiddleware); this one only confirms it."""
    if request.headers.get("X-Requested-With") == "fetch":
        return JsonResponse({"extended": True})
    next_url = request.POST.get("next", "")
    # Only a path on this site: redirect() would read a bare word such as "0" as a view name and fail with a 500.
    on_site = url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()})
    if not (next_url.startswith("/") and on_site):
        next_url = reverse_lazy("accounts:dashboard")
    return redirect(next_url)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    role = request.user.primary_role
    if role is None:
        return render(request, "accounts/no_role.jinja")
    if request.user.roles <= PERSON_ROLES:
        # A patient, representative or nominee has one place to go: the budget (their dashboard only linked to it).
        return redirect("budgets:my-budgets")
    return redirect("accounts:role-dashboard", role=role.value)


@login_required
def role_dashboard(request: HttpRequest, role: str) -> HttpResponse:
    if role not in Role.values or not request.user.has_perm(f"accounts.view_dashboard_{role}"):
        raise Http404
    return render(request, "accounts/dashboard.jinja", dashboard_for(user=request.user, role=Role(role)))


def _next_url(request: HttpRequest) -> str:
    """Where to go once the code is accepted: the page asked for, if it is on this site; else the dashboard."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    # Only a path: redirect() reads a bare word such as "0" as a view name and would fail with a 500.
    if next_url.startswith("/") and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return reverse("accounts:dashboard")


def _code_refused(request: HttpRequest, form: SecurityCodeForm, check: mfa.CodeCheck) -> HttpResponse | None:
    """A wrong code: signs out once axes has locked the account (AxesMiddleware then shows the locked page),
    else puts the reason on the form."""
    if getattr(request, "axes_locked_out", False):
        logout(request)
        return redirect("accounts:sign-in")
    form.add_error("code", code_throttled(check.wait_seconds) if check.wait_seconds else WRONG_CODE)
    return None


@login_required
def sign_in_code(request: HttpRequest) -> HttpResponse:
    """The second step of signing in: the 6-digit code from the person's authenticator app."""
    user = request.user
    if not mfa.needs_two_factor(user) or mfa.is_verified(user):
        return redirect(_next_url(request))
    device = mfa.confirmed_device(user)
    if device is None:
        return redirect(mfa.next_step_url(user, request.GET.get("next", "")))
    form = SecurityCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = mfa.check_code(request, device, form.cleaned_data["code"])
        if check.ok:
            mfa.mark_verified(request, device)
            return redirect(_next_url(request))
        if (refused := _code_refused(request, form, check)) is not None:
            return refused
    return render(
        request,
        "accounts/sign_in_code.jinja",
        {"form": form, "next": request.POST.get("next") or request.GET.get("next", "")},
    )


@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: the first time someone who needs a code signs in."""
    user = request.user
    if not mfa.needs_two_factor(user):
        raise Http404
    if mfa.has_confirmed_device(user):
        # Replacing an app is for the administrator: otherwise a stolen password would be enough to add a new one.
        if mfa.is_verified(user):
            return redirect(_next_url(request))
        return redirect(mfa.next_step_url(user, request.GET.get("next", "")))
    device = mfa.unconfirmed_device(user)
    form = SecurityCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = mfa.check_code(request, device, form.cleaned_data["code"])
        if check.ok:
            mfa.confirm_device(request, device)
            messages.success(
                request, "Your authenticator app is set up. You will need a code from it each time you sign in."
            )
            return redirect(_next_url(request))
        if (refused := _code_refused(request, form, check)) is not None:
            return refused
    context = {
        "form": form,
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "secret": mfa.secret_base32(device),
        "config_url": device.config_url,
        "qr_code": mfa.qr_code_data_uri(device.config_url),
    }
    return render(request, "accounts/two_factor_setup.jinja", context)
