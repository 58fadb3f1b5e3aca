"""Signs people out after a period without activity (the page warns them first); holds back staff who must still
enter a one-time code."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.mfa import is_verified, needs_two_factor, next_step_url

LAST_SEEN_KEY = "phb_last_seen"
STARTED_KEY = "phb_started"


class IdleSessionMiddleware:
    """Ends the session after SESSION_IDLE_SECONDS without a request, and after SESSION_COOKIE_AGE however busy:
    every request saves the session, so Django's own expiry alone would slide forever."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = int(time.time())
            last_seen = request.session.get(LAST_SEEN_KEY)
            started = request.session.setdefault(STARTED_KEY, now)
            if last_seen is not None and now - last_seen > settings.SESSION_IDLE_SECONDS:
                return self.end(request, "timed_out")
            if now - started > settings.SESSION_COOKIE_AGE:
                return self.end(request, "session_ended")
            request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)

    @staticmethod
    def end(request, reason: str):
        logout(request)
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": "Your session has ended. Sign in again."}, status=401)
        return redirect(reverse("accounts:sign-in") + f"?{reason}=1")


# Views someone who must still enter a code may reach: the code and set-up pages, signing out, keeping the session
# alive while they fetch their phone, and the static pages in the footer.
TWO_FACTOR_OPEN_VIEWS = frozenset(
    {
        "accounts:sign-in-code",
        "accounts:two-factor",
        "accounts:sign-out",
        "accounts:session-extend",
        "accessibility",
        "privacy",
    }
)
TWO_FACTOR_API_REFUSAL = (
    "Two-factor authentication is required for your role. Sign in on the website and enter the code from your "
    "authenticator app first."
)


class TwoFactorRequiredMiddleware:
    """Staff who approve or move money reach nothing but the code pages until this session has passed a code (R8).

    Goes after django-otp's OTPMiddleware, which tells whether the session is verified. Pages redirect to the code
    page (or to set up an authenticator app); the API, which signs in by session, answers 403 with the reason.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not needs_two_factor(request.user) or is_verified(request.user):
            return None
        match = request.resolver_match
        if match is not None and match.view_name in TWO_FACTOR_OPEN_VIEWS:
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": TWO_FACTOR_API_REFUSAL}, status=403)
        next_url = request.get_full_path() if request.method == "GET" else ""
        return redirect(next_step_url(request.user, next_url))
