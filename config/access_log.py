"""Logs every refusal in one place (R7): a 403 or 404 answered to someone signed in, and any 401, 403 or 404 from
the API. Views answer 404 for objects outside the user's scope, so this is the trail of who tried what.

One line per refusal on the `phb.access` logger, with ids only: the user's id and roles, the method, the path
(whose ids name objects, never people) and the status. The query string is left out: it may hold searched names.
The same fields ride on the record as `access_*` attributes for structured handlers.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from django.conf import settings

logger = logging.getLogger("phb.access")

REFUSALS = frozenset({401, 403, 404})
PAGE_REFUSALS = frozenset({403, 404})
MAX_PATH = 300


class AccessDenialLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        status = response.status_code
        if status not in REFUSALS or request.path.startswith(settings.STATIC_URL):
            return response
        # Read the user after the view: the API authenticates inside the view and sets it on the request.
        user = getattr(request, "user", None)
        signed_in = bool(user is not None and user.is_authenticated)
        if request.path.startswith("/api/") or (signed_in and status in PAGE_REFUSALS):
            log_refusal(request, status, user if signed_in else None)
        return response


def log_refusal(request, status: int, user) -> None:
    # Percent-encode the path so a crafted URL cannot break the line or forge another one.
    path = quote(request.path[:MAX_PATH], safe="/")
    method = quote(request.method or "-", safe="")
    user_id = str(user.pk) if user is not None else "-"
    roles = ",".join(sorted(user.roles)) if user is not None else ""
    logger.warning(
        "access refused status=%s method=%s path=%s user=%s roles=%s",
        status,
        method,
        path,
        user_id,
        roles or "-",
        extra={
            "access_status": status,
            "access_method": method,
            "access_path": path,
            "access_user": user_id,
            "access_roles": roles,
        },
    )
