"""The payments gateway (DESIGN.md §3): StripeGateway against a real localstripe process and against recorded
Stripe Connect responses (localstripe has no Connect), and the in-memory FakeGateway. No test needs the database.
"""

import json
import queue
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import responses
import stripe
from django.core.exceptions import ImproperlyConfigured

from budgets import payments
from budgets.payments import (
    FakeGateway,
    GatewayError,
    Intent,
    InvalidSignature,
    PaymentDeclined,
    PaymentsGateway,
    Refund,
    StripeGateway,
    Transfer,
)
from config import localstripe_server

RECORDED = Path(__file__).parent / "recorded"
SECRET = "whsec_test_gateway"
STRIPE_TRANSFERS = "https://api.stripe.com/v1/transfers"


def key() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def local_gateway(localstripe):
    return StripeGateway("sk_test_local", api_base=localstripe, webhook_secret=SECRET)


@pytest.fixture
def fake():
    return FakeGateway(webhook_secret=SECRET)


@pytest.fixture(params=["localstripe", "fake"])
def any_gateway(request):
    """The behaviour both adapters must share."""
    if request.param == "fake":
        return FakeGateway(webhook_secret=SECRET)
    return request.getfixturevalue("local_gateway")


def pay(gateway, amount_pence=2500, payment_method="pm_card_visa", idempotency_key=None, **metadata):
    return gateway.create_intent(
        amount_pence=amount_pence,
        description="Personal contribution",
        metadata=metadata or {"budget": "42", "kind": "contribution"},
        idempotency_key=idempotency_key or key(),
        payment_method=payment_method,
        confirm=True,
    )


# --- Both adapters ---------------------------------------------------------------------------------------------


def test_both_adapters_implement_the_port(local_gateway, fake):
    assert isinstance(local_gateway, PaymentsGateway)
    assert isinstance(fake, PaymentsGateway)


def test_a_card_payment_succeeds_with_its_amount_and_metadata(any_gateway):
    intent = pay(any_gateway, 2500, budget="42", kind="contribution")

    assert intent.id.startswith("pi_") and intent.client_secret.startswith(intent.id)
    assert (intent.status, intent.amount_pence) == ("succeeded", 2500)
    assert intent.metadata == {"budget": "42", "kind": "contribution"}
    assert any_gateway.retrieve_intent(intent.id) == intent


def test_an_intent_without_a_card_waits_for_one(any_gateway):
    intent = any_gateway.create_intent(
        amount_pence=1000, description="Top-up", metadata={"budget": "7"}, idempotency_key=key()
    )
    assert (intent.status, intent.amount_pence) == ("requires_payment_method", 1000)
    assert intent.client_secret  # handed to Stripe.js in the patient's browser


def test_a_declined_card_raises_a_message_a_patient_can_read(any_gateway):
    # localstripe's test card for "attaches, then charging fails" (4000000000000341); Stripe has the same id.
    with pytest.raises(PaymentDeclined) as declined:
        pay(any_gateway, payment_method="pm_card_chargeCustomerFail")

    assert str(declined.value) == payments.DECLINED
    assert "No money has been taken" in str(declined.value)
    assert declined.value.code == "card_declined"
    assert not isinstance(declined.value, GatewayError)


def test_a_partial_refund(any_gateway):
    intent = pay(any_gateway, 2500)

    refund = any_gateway.refund(intent_id=intent.id, amount_pence=600, idempotency_key=key())

    assert refund.id.startswith("re_")
    assert (refund.payment_intent_id, refund.amount_pence, refund.status) == (intent.id, 600, "succeeded")


def test_an_unpaid_intent_cannot_be_refunded(any_gateway):
    unpaid = any_gateway.create_intent(amount_pence=500, description="Top-up", metadata={}, idempotency_key=key())

    with pytest.raises(GatewayError, match="refund"):
        any_gateway.refund(intent_id=unpaid.id, amount_pence=100, idempotency_key=key())


# --- StripeGateway against localstripe ---------------------------------------------------------------------------


def test_the_card_number_stripe_documents_for_declines_is_declined(localstripe, local_gateway):
    client = stripe.StripeClient("sk_test_local", base_addresses={"api": localstripe}, max_network_retries=0)
    card = {"number": "4000000000000341", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    method = client.v1.payment_methods.create({"type": "card", "card": card})

    with pytest.raises(PaymentDeclined, match="Your card was declined"):
        pay(local_gateway, payment_method=method.id)


def test_a_stripe_4xx_becomes_a_gateway_error(local_gateway):
    # localstripe does not know Stripe's pm_card_chargeDeclined, so this is a plain 404 (use chargeCustomerFail).
    with pytest.raises(GatewayError) as failed:
        pay(local_gateway, payment_method="pm_card_chargeDeclined")
    assert failed.value.http_status == 404
    assert str(failed.value).startswith("The payment service refused the request")


def test_an_unreachable_server_is_a_gateway_error_not_a_crash():
    nobody = f"http://127.0.0.1:{localstripe_server.free_port()}"
    with pytest.raises(GatewayError) as failed:
        pay(StripeGateway("sk_test_local", api_base=nobody))
    assert str(failed.value) == payments.UNREACHABLE


@pytest.fixture
def webhook_receiver():
    """A tiny HTTP server on loopback that queues (Stripe-Signature, raw body) for each POST."""
    received = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.headers.get("Stripe-Signature"), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stripe/webhook", received
    server.shutdown()
    server.server_close()
    thread.join(5)


def wait_for_event(received, intent_id, timeout=15.0):
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            header, body = received.get(timeout=left)
        except queue.Empty:
            break
        if json.loads(body)["data"]["object"]["id"] == intent_id:
            return header, body
    raise AssertionError(f"no webhook for {intent_id} within {timeout}s")


def test_a_signed_webhook_arrives_and_verifies_and_a_tampered_one_does_not(
    localstripe, local_gateway, webhook_receiver
):
    url, received = webhook_receiver
    localstripe_server.register_webhook(
        localstripe, url, SECRET, events=["payment_intent.succeeded"], webhook_id=f"test-{uuid.uuid4().hex}"
    )
    intent = pay(local_gateway, 3000, budget="9", kind="top-up")

    header, body = wait_for_event(received, intent.id)
    event = local_gateway.construct_event(body, header)

    assert event["id"].startswith("evt_") and event["type"] == "payment_intent.succeeded"
    paid = event["data"]["object"]
    assert (paid["id"], paid["amount"], paid["currency"], paid["status"]) == (intent.id, 3000, "gbp", "succeeded")
    assert paid["metadata"] == {"budget": "9", "kind": "top-up"}

    tampered = body.replace(b'"amount": 3000', b'"amount": 3')
    assert tampered != body
    with pytest.raises(InvalidSignature):
        local_gateway.construct_event(tampered, header)
    with pytest.raises(InvalidSignature):
        StripeGateway("sk_test_local", api_base=localstripe, webhook_secret="whsec_other").construct_event(body, header)
    with pytest.raises(InvalidSignature):
        local_gateway.construct_event(body, None)


# --- StripeGateway.transfer against recorded Stripe responses ----------------------------------------------------


def recorded(name):
    return json.loads((RECORDED / name).read_text())


def form(request):
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    return dict(urllib.parse.parse_qsl(body))


def send_transfer(gateway, idempotency_key="payout-7-19"):
    return gateway.transfer(
        destination_account="acct_1QfSxAQ9PRzxEwkZ",
        amount_pence=123456,
        metadata={"payment_run": "7", "item": "19", "reference": "PHB-000042"},
        idempotency_key=idempotency_key,
    )


def test_a_connect_transfer_sends_our_idempotency_key_and_reads_stripes_answer():
    body = recorded("transfer_200.json")
    with responses.RequestsMock() as stripe_api:
        stripe_api.post(STRIPE_TRANSFERS, json=body, headers={"Request-Id": "req_Gk3pX8vLq2Rt5n"})

        transfer = send_transfer(StripeGateway("sk_test_recorded"))

        sent = stripe_api.calls[0].request
    assert transfer == Transfer(
        id="tr_1QfT7yLkdIwHu7ixZb3nR8Vq",
        destination="acct_1QfSxAQ9PRzxEwkZ",
        amount_pence=123456,
        metadata={"payment_run": "7", "item": "19", "reference": "PHB-000042"},
    )
    assert sent.headers["Idempotency-Key"] == "payout-7-19"
    assert sent.headers["Authorization"] == "Bearer sk_test_recorded"
    assert form(sent) == {
        "amount": "123456",
        "currency": "gbp",
        "destination": "acct_1QfSxAQ9PRzxEwkZ",
        "metadata[payment_run]": "7",
        "metadata[item]": "19",
        "metadata[reference]": "PHB-000042",
    }


@pytest.mark.parametrize(
    ("recording", "message"),
    [
        ("transfer_400_no_such_destination.json", "The payment service refused the request: No such destination"),
        ("transfer_400_balance_insufficient.json", "The payment service refused the request: You have insufficient"),
        ("transfer_400_idempotency_error.json", payments.KEY_REUSED),
    ],
)
def test_a_refused_transfer_is_a_gateway_error_with_a_message(recording, message):
    with responses.RequestsMock() as stripe_api:
        stripe_api.post(STRIPE_TRANSFERS, json=recorded(recording), status=400)

        with pytest.raises(GatewayError) as failed:
            send_transfer(StripeGateway("sk_test_recorded"))

        assert len(stripe_api.calls) == 1  # a 400 is final: never retried
    assert str(failed.value).startswith(message)
    assert failed.value.http_status == 400
    assert failed.value.code == recorded(recording)["error"].get("code")


def test_stripe_python_retries_a_500_with_the_same_idempotency_key():
    with responses.RequestsMock() as stripe_api:
        retry = {"Stripe-Should-Retry": "true"}
        stripe_api.post(STRIPE_TRANSFERS, json=recorded("transfer_500_api_error.json"), status=500, headers=retry)
        stripe_api.post(STRIPE_TRANSFERS, json=recorded("transfer_200.json"))

        transfer = send_transfer(StripeGateway("sk_test_recorded"), idempotency_key="payout-7-19")

        keys = [call.request.headers["Idempotency-Key"] for call in stripe_api.calls]
    assert keys == ["payout-7-19", "payout-7-19"]
    assert transfer.id == "tr_1QfT7yLkdIwHu7ixZb3nR8Vq"


def test_a_decline_from_real_stripe_names_the_reason_and_the_intent():
    with responses.RequestsMock() as stripe_api:
        body = recorded("payment_intent_402_insufficient_funds.json")
        stripe_api.post("https://api.stripe.com/v1/payment_intents", json=body, status=402)

        with pytest.raises(PaymentDeclined) as declined:
            pay(StripeGateway("sk_test_recorded"), 2500, payment_method="pm_card_visa", idempotency_key="pay-42-1")

        sent = stripe_api.calls[0].request
    assert str(declined.value) == payments.DECLINE_MESSAGES["insufficient_funds"]
    assert declined.value.code == "insufficient_funds"
    assert declined.value.intent_id == "pi_3QfU2bLkdIwHu7ix0m1vYc8T"
    assert sent.headers["Idempotency-Key"] == "pay-42-1"
    assert form(sent) == {
        "amount": "2500",
        "currency": "gbp",
        "description": "Personal contribution",  # real Stripe takes it; localstripe would not
        "metadata[budget]": "42",
        "metadata[kind]": "contribution",
        "payment_method_types[0]": "card",
        "payment_method": "pm_card_visa",
        "confirm": "true",
    }


def test_a_network_failure_on_transfer_is_a_gateway_error():
    with responses.RequestsMock() as stripe_api:
        stripe_api.post(STRIPE_TRANSFERS, body=ConnectionError("connection reset"))
        with pytest.raises(GatewayError, match="could not be reached"):
            send_transfer(StripeGateway("sk_test_recorded", max_network_retries=0))


# --- FakeGateway -------------------------------------------------------------------------------------------------


def transfer_with(fake, idempotency_key, amount_pence=5000, destination="acct_provider1"):
    return fake.transfer(
        destination_account=destination,
        amount_pence=amount_pence,
        metadata={"payment_run": "3"},
        idempotency_key=idempotency_key,
    )


def test_fake_same_key_gives_the_same_transfer_once(fake):
    first = transfer_with(fake, "payout-1")
    again = transfer_with(fake, "payout-1")

    assert again == first
    assert fake.transfers == [
        Transfer(id=first.id, destination="acct_provider1", amount_pence=5000, metadata={"payment_run": "3"})
    ]

    transfer_with(fake, "payout-2")
    assert len(fake.transfers) == 2


def test_fake_same_key_with_a_different_request_is_refused(fake):
    transfer_with(fake, "payout-1", amount_pence=5000)

    with pytest.raises(GatewayError, match="already sent with different details"):
        transfer_with(fake, "payout-1", amount_pence=5001)
    assert len(fake.transfers) == 1


def test_fake_payments_and_refunds_are_idempotent_too(fake):
    intent = pay(fake, 2000, idempotency_key="pay-1")
    assert pay(fake, 2000, idempotency_key="pay-1") == intent
    assert len(fake.intents) == 1

    refund = fake.refund(intent_id=intent.id, amount_pence=500, idempotency_key="refund-1")
    assert fake.refund(intent_id=intent.id, amount_pence=500, idempotency_key="refund-1") == refund
    assert fake.refunds == [refund]


@pytest.mark.parametrize(
    ("payment_method", "code", "message"),
    [
        ("pm_card_chargeDeclined", "card_declined", payments.DECLINED),
        ("pm_test_card_declined_by_bank", "card_declined", payments.DECLINED),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "not enough money in the account"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "Your card has expired"),
    ],
)
def test_fake_declines(fake, payment_method, code, message):
    with pytest.raises(PaymentDeclined, match=message) as declined:
        pay(fake, payment_method=payment_method, idempotency_key="pay-1")

    assert declined.value.code == code
    assert fake.retrieve_intent(declined.value.intent_id).status == "requires_payment_method"
    assert [e["type"] for e in fake.events] == ["payment_intent.created", "payment_intent.payment_failed"]

    with pytest.raises(PaymentDeclined):  # Stripe stores the decline under the key: a replay is declined again
        pay(fake, payment_method=payment_method, idempotency_key="pay-1")
    assert len(fake.intents) == 1


def test_fake_refunds_no_more_than_was_paid(fake):
    intent = pay(fake, 1000)
    fake.refund(intent_id=intent.id, amount_pence=600, idempotency_key=key())

    with pytest.raises(GatewayError, match=r"greater than unrefunded amount on charge \(£4.00\)"):
        fake.refund(intent_id=intent.id, amount_pence=401, idempotency_key=key())
    fake.refund(intent_id=intent.id, amount_pence=400, idempotency_key=key())
    with pytest.raises(GatewayError):
        fake.refund(intent_id=intent.id, amount_pence=1, idempotency_key=key())

    assert sum(refund.amount_pence for refund in fake.refunds) == 1000


@pytest.mark.parametrize("destination", ["ba_1QfSxAQ9PRzxEwkZ", "", "cus_provider1"])
def test_fake_refuses_a_destination_that_is_not_a_connected_account(fake, destination):
    with pytest.raises(GatewayError, match="No such destination") as failed:
        transfer_with(fake, "payout-1", destination=destination)
    assert failed.value.code == "resource_missing"
    assert fake.transfers == []


@pytest.mark.parametrize("amount_pence", [0, -100])
def test_fake_refuses_amounts_below_a_penny(fake, amount_pence):
    with pytest.raises(GatewayError):
        transfer_with(fake, key(), amount_pence=amount_pence)
    with pytest.raises(GatewayError):
        pay(fake, amount_pence)


def test_fake_needs_an_idempotency_key(fake):
    with pytest.raises(GatewayError, match="idempotency key"):
        transfer_with(fake, "")


def test_fake_outage_then_retry_with_the_same_key_pays_once(fake):
    fake.fail_next(GatewayError(payments.UNREACHABLE))

    with pytest.raises(GatewayError, match="could not be reached"):
        transfer_with(fake, "payout-1")
    assert fake.transfers == []

    transfer_with(fake, "payout-1")
    transfer_with(fake, "payout-1")
    assert len(fake.transfers) == 1


def test_fake_browser_confirmation_and_its_signed_webhook(fake):
    intent = fake.create_intent(
        amount_pence=1500, description="Repay surplus", metadata={"budget": "5"}, idempotency_key=key()
    )

    paid = fake.confirm(intent.id)

    assert paid == Intent(
        id=intent.id,
        status="succeeded",
        amount_pence=1500,
        client_secret=intent.client_secret,
        metadata={"budget": "5"},
    )
    [succeeded] = fake.event_of_type("payment_intent.succeeded")
    body, header = fake.signed(succeeded)
    assert fake.construct_event(body, header) == succeeded
    with pytest.raises(InvalidSignature):
        fake.construct_event(body.replace(b"1500", b"15"), header)
    with pytest.raises(InvalidSignature):
        fake.construct_event(b"not json", payments.sign_payload(b"not json", SECRET))


def test_fake_refund_of_an_unknown_intent_is_a_gateway_error(fake):
    with pytest.raises(GatewayError, match="No such payment_intent"):
        fake.refund(intent_id="pi_missing", amount_pence=100, idempotency_key=key())


# --- Choosing the adapter from settings --------------------------------------------------------------------------


def test_settings_choose_the_fake_and_it_is_shared(fake_payments):
    payments.gateway().transfer(
        destination_account="acct_provider1", amount_pence=700, metadata={}, idempotency_key="payout-9"
    )
    assert payments.gateway() is fake_payments
    assert [transfer.amount_pence for transfer in fake_payments.transfers] == [700]


def test_settings_choose_stripe_and_where_it_is(settings):
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = "sk_test_local"
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"
    local = payments.gateway()
    assert isinstance(local, StripeGateway) and local.local

    settings.STRIPE_API_BASE = None
    assert not payments.gateway().local


def test_settings_refuse_an_unknown_gateway(settings):
    settings.PAYMENTS_GATEWAY = "paypal"
    with pytest.raises(ImproperlyConfigured):
        payments.gateway()


def test_refund_result_is_a_plain_value():
    refund = Refund(id="re_1", payment_intent_id="pi_1", amount_pence=100, status="succeeded")
    with pytest.raises(AttributeError):
        refund.amount_pence = 1
