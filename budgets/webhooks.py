"""Stripe's webhook endpoint: `POST /webhooks/stripe/`.

The signature is checked on the raw body before anything is read from it. A bad signature or body is a 400 with
the reason (Stripe shows it in the endpoint's log and does not retry a 4xx forever); a verified event is applied
once and answered 200 with its result, the first result for a repeated delivery. If the database is unavailable
the answer is 503, so Stripe delivers the event again later; the endpoint never answers 500.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from budgets import card_payments, payments

logger = logging.getLogger(__name__)


@csrf_exempt  # Stripe cannot send our CSRF token; the signature authenticates the request instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        event = payments.gateway().construct_event(request.body, request.headers.get("Stripe-Signature"))
    except payments.InvalidSignature as exc:
        return JsonResponse({"error": str(exc) or "Invalid signature"}, status=400)
    try:
        result = card_payments.stripe_event_handle(event)
    except Exception:  # anything unexpected: keep the event for Stripe's retry rather than answer 500
        logger.exception("Stripe event %s (%s) could not be applied", event.get("id"), event.get("type"))
        return JsonResponse({"error": "The event could not be applied now; send it again later"}, status=503)
    return JsonResponse(result, json_dumps_params={"sort_keys": True})  # the same bytes for every delivery
