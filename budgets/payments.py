"""The payments gateway port (DESIGN.md §3 "Money movement and Stripe") and its two adapters.

`StripeGateway` talks to Stripe through stripe-python, or to a local localstripe process in tests and the demo;
`FakeGateway` is in-memory, for what localstripe cannot do (Connect transfers) and for ledger tests. Call
`gateway()` to get the one the settings choose. Amounts are integer pence and the currency is always GBP.

Every call that moves money takes our own persisted idempotency key, so a retried request never pays twice.
Errors come back as `PaymentDeclined` (a card was refused: the message is for the patient) or `GatewayError`
(anything else: the message is for the person who pressed the button); callers show the message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CURRENCY = "gbp"

# --- Results ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Intent:
    """A PaymentIntent: money coming in by card."""

    id: str
    status: str  # Stripe's: requires_payment_method, requires_confirmation, requires_action, processing, succeeded...
    amount_pence: int
    client_secret: str | None
    metadata: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Refund:
    id: str
    payment_intent_id: str
    amount_pence: int
    status: str


@dataclasses.dataclass(frozen=True)
class Transfer:
    """A Stripe Connect transfer to a provider's or third party's connected account."""

    id: str
    destination: str
    amount_pence: int
    metadata: dict[str, str]


@dataclasses.dataclass(frozen=True)
class BalanceTransaction:
    """One movement on the Stripe balance: a charge, refund, Connect transfer, payout, fee or adjustment."""

    id: str
    created: datetime.datetime
    type: str
    amount_pence: int  # signed and gross: money onto the balance is positive
    fee_pence: int
    currency: str
    description: str
    source: str  # ch_, re_, tr_, po_ ... as Stripe gives it
    payment_intent_id: str = ""  # for charges and refunds


@dataclasses.dataclass(frozen=True)
class Payout:
    """Money Stripe sends from the balance to the ICB's bank account."""

    id: str
    created: datetime.datetime
    arrival_date: datetime.date
    amount_pence: int
    currency: str
    status: str  # pending, in_transit, paid, failed, canceled
    balance_transaction_id: str


# --- Errors ----------------------------------------------------------------------------------------------------


class PaymentError(Exception):
    """Base of the gateway's errors; str() is a plain-English message fit to show."""

    def __init__(self, message: str, *, code: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail  # what Stripe said, for logs and staff


class PaymentDeclined(PaymentError):
    """The card was refused; no money was taken."""

    def __init__(
        self, message: str, *, code: str | None = None, detail: str | None = None, intent_id: str | None = None
    ):
        super().__init__(message, code=code, detail=detail)
        self.intent_id = intent_id


class GatewayError(PaymentError):
    """The payment service failed or refused the request (network, bad request, credentials, over-refund...)."""

    def __init__(
        self, message: str, *, code: str | None = None, detail: str | None = None, http_status: int | None = None
    ):
        super().__init__(message, code=code, detail=detail)
        self.http_status = http_status


class InvalidSignature(Exception):
    """A webhook whose signature, timestamp or body does not check out."""


DECLINE_MESSAGES = {
    "insufficient_funds": "Your card was declined because there is not enough money in the account. "
    "No money has been taken.",
    "expired_card": "Your card has expired. No money has been taken. Please use a different card.",
    "incorrect_cvc": "The security code is wrong. No money has been taken. Check the 3 digits on the back of your "
    "card and try again.",
    "incorrect_number": "The card number is wrong. No money has been taken. Check it and try again.",
    "processing_error": "Your card company could not process the payment. No money has been taken. "
    "Please try again in a few minutes.",
    "authentication_required": "Your bank needs you to confirm this payment. No money has been taken. "
    "Please try again.",
}
DECLINED = "Your card was declined. No money has been taken. Please use a different card or contact your card company."
UNREACHABLE = "The payment service could not be reached. Please try again in a few minutes."
BUSY = "The payment service is busy. Please try again in a few minutes."
CREDENTIALS = "The payment service did not accept our credentials. Ask an administrator to check the Stripe keys."
KEY_REUSED = (
    "This payment was already sent with different details, so it was not sent again. Ask an administrator to check it."
)
KEY_REQUIRED = "Every payment needs an idempotency key."


def decline_message(code: str | None) -> str:
    return DECLINE_MESSAGES.get(code or "", DECLINED)


def refused(detail: str) -> str:
    return f"The payment service refused the request: {detail}"


# --- The port --------------------------------------------------------------------------------------------------


@runtime_checkable
class PaymentsGateway(Protocol):
    def create_intent(
        self,
        *,
        amount_pence: int,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
    ) -> Intent: ...

    def retrieve_intent(self, intent_id: str) -> Intent: ...

    def confirm_intent(self, *, intent_id: str, card_token: str, idempotency_key: str) -> Intent: ...

    def refund(self, *, intent_id: str, amount_pence: int, idempotency_key: str) -> Refund: ...

    def transfer(
        self, *, destination_account: str, amount_pence: int, metadata: dict[str, str], idempotency_key: str
    ) -> Transfer: ...

    def construct_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]: ...

    def balance_transactions(
        self, *, since: datetime.datetime, until: datetime.datetime
    ) -> list[BalanceTransaction]: ...

    def payouts(self, *, since: datetime.datetime, until: datetime.datetime) -> list[Payout]: ...


# --- Webhook signatures (shared by both adapters) ---------------------------------------------------------------


def verify_event(payload: bytes, signature_header: str | None, secret: str) -> dict[str, Any]:
    """Check Stripe's signature on the raw body and return the event as a plain dict."""
    try:
        event = stripe.Webhook.construct_event(payload, signature_header, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(str(exc)) from exc
    except ValueError as exc:  # not UTF-8 or not JSON (signed, but still not an event we can use)
        raise InvalidSignature(f"Webhook body is not a Stripe event: {exc}") from exc
    data = event.to_dict()
    if not data.get("id") or not data.get("type"):
        raise InvalidSignature("Webhook body is not a Stripe event")
    return data


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send for `payload` (for tests and the fake)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def _metadata(obj: dict[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in (obj.get("metadata") or {}).items()}


# --- Stripe ----------------------------------------------------------------------------------------------------


class StripeGateway:
    """stripe-python against real Stripe (`api_base=None`) or a local server such as localstripe."""

    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        webhook_secret: str | None = None,
        *,
        max_network_retries: int | None = None,
    ):
        self.local = api_base is not None
        if max_network_retries is None:
            # localstripe answers 500 "Not implemented" for some calls, which stripe-python would retry.
            max_network_retries = 0 if self.local else 2
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret

    def create_intent(
        self,
        *,
        amount_pence: int,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
    ) -> Intent:
        # Cards only: with Stripe's default automatic payment methods, confirming here would also need a return_url.
        params: dict[str, Any] = {
            "amount": amount_pence,
            "currency": CURRENCY,
            "metadata": dict(metadata),
            "payment_method_types": ["card"],
        }
        if description and not self.local:  # localstripe rejects `description` on PaymentIntents
            params["description"] = description
        if payment_method:
            params["payment_method"] = payment_method
        if confirm:
            params["confirm"] = True
        with _stripe_errors():
            obj = self._client.v1.payment_intents.create(params, _options(idempotency_key)).to_dict()
        return _intent(obj)

    def retrieve_intent(self, intent_id: str) -> Intent:
        with _stripe_errors():
            return _intent(self._client.v1.payment_intents.retrieve(intent_id).to_dict())

    def confirm_intent(self, *, intent_id: str, card_token: str, idempotency_key: str) -> Intent:
        """Charge the card behind a token the patient's browser made (card details never reach our server).

        Attach, then confirm: localstripe answers 500 to `confirm(payment_method=...)` and 400 to
        `payment_method_data`, but both servers take the payment method set by an update first.
        """
        with _stripe_errors():
            if self.local:  # localstripe cannot make a PaymentMethod from a token; it charges the token's card
                method = self._client.v1.tokens.retrieve(card_token).to_dict()["card"]["id"]
            else:
                params = {"type": "card", "card": {"token": card_token}}
                method = self._client.v1.payment_methods.create(params, _options(f"{idempotency_key}:method")).id
            self._client.v1.payment_intents.update(
                intent_id, {"payment_method": method}, _options(f"{idempotency_key}:attach")
            )
            obj = self._client.v1.payment_intents.confirm(intent_id, None, _options(idempotency_key)).to_dict()
        return _intent(obj)

    def refund(self, *, intent_id: str, amount_pence: int, idempotency_key: str) -> Refund:
        with _stripe_errors():
            obj = self._client.v1.refunds.create(
                {"payment_intent": intent_id, "amount": amount_pence}, _options(idempotency_key)
            ).to_dict()
        return Refund(
            id=obj["id"],
            payment_intent_id=obj.get("payment_intent") or intent_id,
            amount_pence=obj["amount"],
            status=obj["status"],
        )

    def transfer(
        self, *, destination_account: str, amount_pence: int, metadata: dict[str, str], idempotency_key: str
    ) -> Transfer:
        params = {
            "amount": amount_pence,
            "currency": CURRENCY,
            "destination": destination_account,
            "metadata": dict(metadata),
        }
        with _stripe_errors():
            obj = self._client.v1.transfers.create(params, _options(idempotency_key)).to_dict()
        return Transfer(
            id=obj["id"], destination=obj["destination"], amount_pence=obj["amount"], metadata=_metadata(obj)
        )

    def construct_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        return verify_event(payload, signature_header, self._webhook_secret or settings.STRIPE_WEBHOOK_SECRET)

    def balance_transactions(self, *, since: datetime.datetime, until: datetime.datetime) -> list[BalanceTransaction]:
        params: dict[str, Any] = {}
        if not self.local:  # localstripe takes neither filters nor expansions; its lists are newest first too
            params = {"created": _created(since, until), "expand": ["data.source"]}
        found = []
        with _stripe_errors():
            for obj in self._newest_first(self._client.v1.balance_transactions.list, params, since):
                if obj["created"] < until.timestamp():
                    found.append(self._balance_transaction(obj))
        return found

    def payouts(self, *, since: datetime.datetime, until: datetime.datetime) -> list[Payout]:
        params = {} if self.local else {"created": _created(since, until)}
        found = []
        with _stripe_errors():
            for obj in self._newest_first(self._client.v1.payouts.list, params, since):
                if obj["created"] < until.timestamp():
                    found.append(
                        Payout(
                            id=obj["id"],
                            created=_utc(obj["created"]),
                            arrival_date=_utc(obj.get("arrival_date") or obj["created"]).date(),
                            amount_pence=obj["amount"],
                            currency=str(obj.get("currency", "")).lower(),
                            status=obj.get("status", ""),
                            balance_transaction_id=_id_of(obj.get("balance_transaction")),
                        )
                    )
        return found

    def _newest_first(self, list_call, params: dict[str, Any], since: datetime.datetime) -> Iterator[dict[str, Any]]:
        """Page through a Stripe list (newest first) until objects are older than `since`."""
        after = None
        while True:
            page = list_call({**params, "limit": 100, **({"starting_after": after} if after else {})}).to_dict()
            for obj in page.get("data", []):
                if obj["created"] < since.timestamp():
                    return
                yield obj
            if not page.get("has_more") or not page.get("data"):
                return
            after = page["data"][-1]["id"]

    def _balance_transaction(self, obj: dict[str, Any]) -> BalanceTransaction:
        source = obj.get("source")
        intent = ""
        if isinstance(source, dict):
            intent = _id_of(source.get("payment_intent"))
            source = source.get("id", "")
        elif self.local and isinstance(source, str) and source.startswith(("ch_", "re_")):
            api = self._client.v1.charges if source.startswith("ch_") else self._client.v1.refunds
            intent = _id_of(api.retrieve(source).to_dict().get("payment_intent"))
        return BalanceTransaction(
            id=obj["id"],
            created=_utc(obj["created"]),
            type=obj.get("type", ""),
            amount_pence=obj["amount"],
            fee_pence=obj.get("fee") or 0,
            currency=str(obj.get("currency", "")).lower(),
            description=obj.get("description") or "",
            source=source or "",
            payment_intent_id=intent,
        )


def _created(since: datetime.datetime, until: datetime.datetime) -> dict[str, int]:
    return {"gte": int(since.timestamp()), "lt": int(until.timestamp())}


def _utc(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


def _id_of(value: Any) -> str:
    """Stripe gives a related object as its id, or as the object itself when expanded."""
    if isinstance(value, dict):
        return str(value.get("id", ""))
    return str(value or "")


def _options(idempotency_key: str) -> Any:
    if not idempotency_key:
        raise GatewayError(KEY_REQUIRED)
    return {"idempotency_key": idempotency_key}


def _intent(obj: dict[str, Any]) -> Intent:
    return Intent(
        id=obj["id"],
        status=obj["status"],
        amount_pence=obj["amount"],
        client_secret=obj.get("client_secret"),
        metadata=_metadata(obj),
    )


@contextlib.contextmanager
def _stripe_errors() -> Iterator[None]:
    try:
        yield
    except stripe.CardError as exc:
        error = exc.error
        code = (error.decline_code if error else None) or exc.code
        intent = error.payment_intent if error else None
        raise PaymentDeclined(
            decline_message(code), code=code, detail=exc.user_message, intent_id=getattr(intent, "id", None)
        ) from exc
    except stripe.StripeError as exc:
        detail = exc.user_message or exc.__class__.__name__
        if isinstance(exc, stripe.APIConnectionError):
            message = UNREACHABLE
        elif isinstance(exc, stripe.RateLimitError):
            message = BUSY
        elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            message = CREDENTIALS
        elif isinstance(exc, stripe.IdempotencyError):
            message = KEY_REUSED
        else:
            message = refused(detail)
        raise GatewayError(message, code=exc.code, detail=detail, http_status=exc.http_status) from exc


# --- In-memory fake --------------------------------------------------------------------------------------------

# Stripe's test payment methods that are refused when charged, with their decline codes.
FAKE_DECLINES = {
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_chargeCustomerFail": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedIncorrectCvc": "incorrect_cvc",
    "pm_card_chargeDeclinedProcessingError": "processing_error",
}


class FakeGateway:
    """In-memory and stateful, behaving like Stripe where callers can tell.

    Same idempotency key and same request: the first result again (a decline included, as Stripe stores it);
    same key with a different request: GatewayError. Refusals (over-refund, unknown destination) are not
    stored, as Stripe does not store requests that fail validation. Inspect `intents`, `refunds`,
    `transfers` and `events` (Stripe-shaped event dicts; `signed()` gives a body and header for a webhook).
    """

    def __init__(self, *, webhook_secret: str | None = None):
        self._webhook_secret = webhook_secret
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.intents: dict[str, Intent] = {}
            self.refunds: list[Refund] = []
            self.transfers: list[Transfer] = []
            self.events: list[dict[str, Any]] = []
            self.movements: list[BalanceTransaction] = []
            self.payout_list: list[Payout] = []
            self._replies: dict[str, tuple[str, Any]] = {}
            self._failures: list[PaymentError] = []
            self._ids = itertools.count(1)

    def fail_next(self, error: PaymentError) -> None:
        """Make the next money-moving call raise `error` without doing anything (a timeout, an outage)."""
        with self._lock:
            self._failures.append(error)

    # The port.

    def create_intent(
        self,
        *,
        amount_pence: int,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
    ) -> Intent:
        request = ("intent", amount_pence, description, metadata, payment_method, confirm)
        return self._once(
            idempotency_key, request, lambda: self._create_intent(amount_pence, metadata, payment_method, confirm)
        )

    def retrieve_intent(self, intent_id: str) -> Intent:
        with self._lock:
            if intent_id not in self.intents:
                raise GatewayError(refused(f"No such payment_intent: '{intent_id}'"), code="resource_missing")
            return self.intents[intent_id]

    def confirm_intent(self, *, intent_id: str, card_token: str, idempotency_key: str) -> Intent:
        """A token whose name says "declined" (e.g. tok_chargeDeclined) is refused, like Stripe's test tokens."""
        return self._once(
            idempotency_key, ("confirm", intent_id, card_token), lambda: self.confirm(intent_id, card_token)
        )

    def refund(self, *, intent_id: str, amount_pence: int, idempotency_key: str) -> Refund:
        return self._once(
            idempotency_key, ("refund", intent_id, amount_pence), lambda: self._refund(intent_id, amount_pence)
        )

    def transfer(
        self, *, destination_account: str, amount_pence: int, metadata: dict[str, str], idempotency_key: str
    ) -> Transfer:
        request = ("transfer", destination_account, amount_pence, metadata)
        return self._once(idempotency_key, request, lambda: self._transfer(destination_account, amount_pence, metadata))

    def construct_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        return verify_event(payload, signature_header, self._secret())

    def balance_transactions(self, *, since: datetime.datetime, until: datetime.datetime) -> list[BalanceTransaction]:
        with self._lock:
            if self._failures:  # an injected outage: reads fail too
                raise self._failures.pop(0)
            return [m for m in self.movements if since <= m.created < until]

    def payouts(self, *, since: datetime.datetime, until: datetime.datetime) -> list[Payout]:
        with self._lock:
            return [p for p in self.payout_list if since <= p.created < until]

    # Test helpers.

    def confirm(self, intent_id: str, payment_method: str = "pm_card_visa") -> Intent:
        """What Stripe.js does in the patient's browser: confirm an intent with their card."""
        with self._lock:
            intent = self.retrieve_intent(intent_id)
            if intent.status not in ("requires_payment_method", "requires_confirmation"):
                raise GatewayError(refused(f"This PaymentIntent's status is {intent.status}"), code="unexpected_state")
            return self._charge(intent, payment_method)

    def payout(self, amount_pence: int, *, status: str = "paid", days_to_arrive: int = 2) -> Payout:
        """What Stripe's payout schedule does: send money from the balance to the ICB's bank."""
        _check_amount(amount_pence)
        with self._lock:
            created = _now()
            movement = self._move("payout", -amount_pence, 0, self._next_id("po"), "STRIPE PAYOUT")
            payout = Payout(
                id=movement.source,
                created=created,
                arrival_date=(created + datetime.timedelta(days=days_to_arrive)).date(),
                amount_pence=amount_pence,
                currency=CURRENCY,
                status=status,
                balance_transaction_id=movement.id,
            )
            self.payout_list.append(payout)
            return payout

    def payout_fails(self, payout_id: str, *, cancelled: bool = False) -> BalanceTransaction:
        """What Stripe does when the bank refuses a payout (or it is cancelled): the payout's status changes and
        a balance transaction puts the money back on the balance."""
        with self._lock:
            index, payout = next((i, p) for i, p in enumerate(self.payout_list) if p.id == payout_id)
            self.payout_list[index] = dataclasses.replace(payout, status="canceled" if cancelled else "failed")
            kind = "payout_cancel" if cancelled else "payout_failure"
            return self._move(kind, payout.amount_pence, 0, payout.id, f"STRIPE PAYOUT {kind.upper()}")

    def signed(self, event: dict[str, Any]) -> tuple[bytes, str]:
        """A webhook body and Stripe-Signature header for `event`, signed with the webhook secret."""
        payload = json.dumps(event).encode()
        return payload, sign_payload(payload, self._secret())

    def event_of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]

    # Internals.

    def _secret(self) -> str:
        return self._webhook_secret or settings.STRIPE_WEBHOOK_SECRET

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _once(self, key: str, request: tuple, action: Any) -> Any:
        if not key:
            raise GatewayError(KEY_REQUIRED)
        fingerprint = json.dumps(request, sort_keys=True, default=str)
        with self._lock:
            if key in self._replies:
                seen, outcome = self._replies[key]
                if seen != fingerprint:
                    raise GatewayError(KEY_REUSED, code="idempotency_error", http_status=400)
            else:
                if self._failures:  # an injected outage never reached Stripe, so nothing is stored
                    raise self._failures.pop(0)
                try:
                    outcome = action()
                except PaymentDeclined as exc:
                    outcome = exc
                self._replies[key] = (fingerprint, outcome)
        if isinstance(outcome, PaymentDeclined):
            raise outcome
        return outcome

    def _create_intent(self, amount_pence: int, metadata: dict[str, str], payment_method: str | None, confirm: bool):
        _check_amount(amount_pence)
        if confirm and not payment_method:
            raise GatewayError(refused("You cannot confirm this PaymentIntent because it's missing a payment method."))
        intent_id = self._next_id("pi")
        intent = Intent(
            id=intent_id,
            status="requires_confirmation" if payment_method else "requires_payment_method",
            amount_pence=amount_pence,
            client_secret=f"{intent_id}_secret_{secrets.token_hex(8)}",
            metadata={str(key): str(value) for key, value in metadata.items()},
        )
        self.intents[intent_id] = intent
        self._event("payment_intent.created", intent)
        return self._charge(intent, payment_method) if confirm and payment_method else intent

    def _charge(self, intent: Intent, payment_method: str) -> Intent:
        code = FAKE_DECLINES.get(payment_method) or ("card_declined" if "declined" in payment_method.lower() else None)
        if code:
            intent = self._save(intent, status="requires_payment_method")
            self._event("payment_intent.payment_failed", intent)
            raise PaymentDeclined(
                decline_message(code), code=code, detail="Your card was declined.", intent_id=intent.id
            )
        intent = self._save(intent, status="succeeded")
        self._move("charge", intent.amount_pence, uk_card_fee(intent.amount_pence), self._next_id("ch"), "", intent.id)
        self._event("payment_intent.succeeded", intent)
        return intent

    def _move(
        self, kind: str, amount_pence: int, fee_pence: int, source: str, description: str, intent_id: str = ""
    ) -> BalanceTransaction:
        movement = BalanceTransaction(
            id=self._next_id("txn"),
            created=_now(),
            type=kind,
            amount_pence=amount_pence,
            fee_pence=fee_pence,
            currency=CURRENCY,
            description=description,
            source=source,
            payment_intent_id=intent_id,
        )
        self.movements.append(movement)
        return movement

    def _save(self, intent: Intent, **changes: Any) -> Intent:
        intent = dataclasses.replace(intent, **changes)
        self.intents[intent.id] = intent
        return intent

    def _refund(self, intent_id: str, amount_pence: int) -> Refund:
        _check_amount(amount_pence)
        intent = self.retrieve_intent(intent_id)
        if intent.status != "succeeded":
            raise GatewayError(refused("Cannot refund a payment that has not succeeded."), code="charge_not_refundable")
        left = intent.amount_pence - sum(r.amount_pence for r in self.refunds if r.payment_intent_id == intent_id)
        if amount_pence > left:
            detail = (
                f"Refund amount ({_pounds(amount_pence)}) is greater than unrefunded amount on charge ({_pounds(left)})"
            )
            raise GatewayError(refused(detail), code="amount_too_large", detail=detail, http_status=400)
        refund = Refund(
            id=self._next_id("re"), payment_intent_id=intent_id, amount_pence=amount_pence, status="succeeded"
        )
        self.refunds.append(refund)
        self._move("refund", -amount_pence, 0, refund.id, "REFUND FOR CHARGE", intent_id)
        return refund

    def _transfer(self, destination: str, amount_pence: int, metadata: dict[str, str]) -> Transfer:
        _check_amount(amount_pence)
        if not destination.startswith("acct_"):
            detail = f"No such destination: '{destination}'"
            raise GatewayError(refused(detail), code="resource_missing", detail=detail, http_status=400)
        transfer = Transfer(
            id=self._next_id("tr"),
            destination=destination,
            amount_pence=amount_pence,
            metadata={str(key): str(value) for key, value in metadata.items()},
        )
        self.transfers.append(transfer)
        self._move("transfer", -amount_pence, 0, transfer.id, f"Connect transfer to {destination}")
        return transfer

    def _event(self, event_type: str, intent: Intent) -> None:
        obj = {
            "id": intent.id,
            "object": "payment_intent",
            "amount": intent.amount_pence,
            "currency": CURRENCY,
            "status": intent.status,
            "client_secret": intent.client_secret,
            "metadata": dict(intent.metadata),
        }
        self.events.append(
            {
                "id": self._next_id("evt"),
                "object": "event",
                "type": event_type,
                "created": int(time.time()),
                "livemode": False,
                "data": {"object": obj},
            }
        )


def _check_amount(amount_pence: int) -> None:
    if not isinstance(amount_pence, int) or isinstance(amount_pence, bool) or amount_pence < 1:
        raise GatewayError(refused("The amount must be a whole number of pence, at least 1p."), code="amount_too_small")


def uk_card_fee(amount_pence: int) -> int:
    """Stripe's standard fee for UK cards, 1.5% + 20p, so the fake's statements carry fees as Stripe's do."""
    return (amount_pence * 15 + 500) // 1000 + 20


def _now() -> datetime.datetime:
    return datetime.datetime.fromtimestamp(time.time(), tz=datetime.UTC)


def _pounds(pence: int) -> str:
    return f"£{pence // 100:,}.{pence % 100:02d}"


# --- Choosing one ----------------------------------------------------------------------------------------------

_fake: FakeGateway | None = None
_fake_lock = threading.Lock()


def fake_gateway() -> FakeGateway:
    """The process-wide fake, so the code under test and the test see the same state."""
    global _fake
    with _fake_lock:
        if _fake is None:
            _fake = FakeGateway()
        return _fake


@lru_cache(maxsize=4)
def _stripe_gateway(api_key: str, api_base: str | None, webhook_secret: str) -> StripeGateway:
    return StripeGateway(api_key, api_base, webhook_secret)


def gateway() -> PaymentsGateway:
    """The gateway the settings choose; read on every call, so tests may override the settings."""
    kind = settings.PAYMENTS_GATEWAY
    if kind == "fake":
        return fake_gateway()
    if kind == "stripe":
        return _stripe_gateway(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_WEBHOOK_SECRET)
    raise ImproperlyConfigured(f"PAYMENTS_GATEWAY must be 'stripe' or 'fake', not {kind!r}")
