"""Sign-in, sign-out, password reset, the idle-session extension and each role's dashboard."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.forms import NewPasswordForm, QueuedPasswordResetForm, SignInForm
from accounts.roles import Role
from accounts.selectors import dashboard_for


class SignInView(auth_views.LoginView):
    template_name = "accounts/sign_in.jinja"
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["timed_out"] = self.request.GET.get("timed_out") == "1"
        return context


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


@require_POST
@login_required
def session_extend(request: HttpRequest) -> HttpResponse:
    """Any request resets the idle timer (see IdleSessionMiddleware); this one only confirms it."""
    if request.headers.get("X-Requested-With") == "fetch":
        return JsonResponse({"extended": True})
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse_lazy("accounts:dashboard")
    return redirect(next_url)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    role = request.user.primary_role
    if role is None:
        return render(request, "accounts/no_role.jinja")
    return redirect("accounts:role-dashboard", role=role.value)


@login_required
def role_dashboard(request: HttpRequest, role: str) -> HttpResponse:
    if role not in Role.values or not request.user.has_perm(f"accounts.view_dashboard_{role}"):
        raise Http404
    return render(request, "accounts/dashboard.jinja", dashboard_for(user=request.user, role=Role(role)))
