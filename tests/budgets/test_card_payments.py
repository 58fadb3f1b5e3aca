"""Card payments in and Stripe's webhooks: end to end against a real localstripe that signs and sends its
webhooks to Django's live server, and with the in-memory fake for what needs control over delivery (bad
signatures, duplicates, events out of order, and 8 deliveries of each of 600 events at once). Who may see the
pages: only the person and those acting for them; the finance list only finance."""

from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.roles import FINANCE_ROLES, Role
from brokerage.models import ActorKind, CarePlan, Representative, RepresentativeBasis
from budgets import card_payments, payments
from budgets.card_payments import CardPaymentError, card_payment_confirm, card_payment_refund, card_payment_start
from budgets.models import CardPayment, CardPaymentPurpose, CardPaymentStatus, StripeEvent
from config import localstripe_server
from ledger.models import Account, Transfer
from ledger.verification import ledger_verify
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_payment_runs import set_up
from tests.factories import user_with_role

WEBHOOK = "/webhooks/stripe/"
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"


# --- Builders --------------------------------------------------------------------------------------------------


CONTRIBUTION_POUNDS = 1200


def crew_with_patient() -> dict:
    """Journey 1's plan with a £1,200 assessed contribution, its budget set up (plan: setting up), and the person's
    own sign-in."""
    crew = agreed_crew(contribution_pounds=CONTRIBUTION_POUNDS)
    crew["budget"] = set_up(crew)
    crew["patient"] = user_with_role(Role.PATIENT)
    crew["person"].user = crew["patient"]
    crew["person"].save(update_fields=["user"])
    return crew


def card_transfers(budget=None):
    transfers = Transfer.objects.filter(code__in=[card_payments.LEDGER_CODE, card_payments.REFUND_CODE])
    return transfers.filter(reference=budget.owner_ref) if budget is not None else transfers


def card_account(budget, purpose="contribution") -> Account:
    return Account.objects.get(code=f"budget:{budget.pk}:card:{purpose}")


def start(crew, amount_pence=2500, purpose=CardPaymentPurpose.CONTRIBUTION) -> CardPayment:
    return card_payment_start(
        budget=crew["budget"],
        purpose=purpose,
        amount_pence=amount_pence,
        acting_user=crew["patient"],
        key=uuid.uuid4().hex,
    )


def token_for(base_url: str, number: str) -> str:
    """What card-payment.js does in the browser: card details to Stripe with the publishable key, a token back."""
    body = urllib.parse.urlencode(
        {"card[number]": number, "card[exp_month]": "12", "card[exp_year]": "2030", "card[cvc]": "123"}
        | {"key": "pk_test_local"}
    ).encode()
    with urllib.request.urlopen(urllib.request.Request(base_url + "/v1/tokens", data=body), timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())["id"]


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def stripe_webhooks(settings, localstripe, live_server):
    """The app talks to localstripe, and localstripe sends its signed webhooks to the live server."""
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_API_BASE = localstripe
    settings.STRIPE_SECRET_KEY = "sk_test_local"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_local"
    settings.STRIPE_WEBHOOK_SECRET = f"whsec_{uuid.uuid4().hex}"
    url = live_server.url.replace("localhost", "127.0.0.1") + WEBHOOK
    events = ["payment_intent.succeeded", "payment_intent.payment_failed"]
    localstripe_server.register_webhook(
        localstripe, url, settings.STRIPE_WEBHOOK_SECRET, events=events, webhook_id="cards"
    )
    yield localstripe
    # localstripe cannot forget a webhook: point it at a closed port so later tests in this worker get nothing.
    localstripe_server.register_webhook(localstripe, "http://127.0.0.1:9/", "whsec_gone", webhook_id="cards")


# --- Against localstripe, with its real signed webhooks --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_card_payment_is_credited_once_when_the_signed_webhook_arrives(stripe_webhooks):
    crew = crew_with_patient()
    budget = crew["budget"]
    payment = start(crew, 2500)
    assert payment.status == CardPaymentStatus.STARTED and payment.intent_id.startswith("pi_")
    assert payments.gateway().retrieve_intent(payment.intent_id).metadata == {
        "budget": str(budget.pk),
        "card_payment": str(payment.pk),
        "purpose": "contribution",
    }

    payment = card_payment_confirm(
        payment=payment, token_or_payment_method=token_for(stripe_webhooks, GOOD_CARD), acting_user=crew["patient"]
    )
    assert payment.status == CardPaymentStatus.PROCESSING
    assert not card_transfers(budget).exists()  # the browser's word is not enough: only the webhook credits

    assert wait_for(lambda: CardPayment.objects.get(pk=payment.pk).status == CardPaymentStatus.SUCCEEDED)
    transfer = card_transfers(budget).get()
    assert transfer.idempotency_key == payment.ledger_key
    assert transfer.amount == 2500
    assert transfer.debit_account.code == card_payments.STRIPE_BALANCE_CODE
    assert transfer.credit_account == card_account(budget)
    assert card_account(budget).posted_balance == 2500
    assert card_account(budget).name == "Paid by card: My assessed contribution"
    # (Filtered by payment: a webhook from an earlier test in this worker may still land here.)
    event = StripeEvent.objects.get(type="payment_intent.succeeded", result__card_payment=payment.pk)
    assert event.result == {"card_payment": payment.pk, "status": "succeeded", "credited_pence": 2500}
    assert CardPayment.objects.get(pk=payment.pk).succeeded_at is not None

    # Confirming again (a second press of "Pay") changes nothing.
    card_payment_confirm(payment=payment, token_or_payment_method="tok_again", acting_user=crew["patient"])
    assert card_transfers(budget).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_declined_card_fails_with_a_readable_message_and_changes_nothing(stripe_webhooks):
    crew = crew_with_patient()
    payment = start(crew, 4000)
    balances_before = list(Account.objects.order_by("pk").values_list("code", "debits_posted", "credits_posted"))

    payment = card_payment_confirm(
        payment=payment, token_or_payment_method=token_for(stripe_webhooks, DECLINED_CARD), acting_user=crew["patient"]
    )
    assert payment.status == CardPaymentStatus.FAILED
    assert payment.failure == payments.DECLINED
    assert "No money has been taken" in payment.failure

    # localstripe's signed payment_failed webhook arrives a second later and agrees.
    failed = StripeEvent.objects.filter(type="payment_intent.payment_failed", result__card_payment=payment.pk)
    assert wait_for(failed.exists)
    assert failed.get().result["status"] == "failed"
    assert CardPayment.objects.get(pk=payment.pk).status == CardPaymentStatus.FAILED
    assert not card_transfers().exists()
    assert list(Account.objects.order_by("pk").values_list("code", "debits_posted", "credits_posted")) == (
        balances_before
    )


@pytest.mark.django_db(transaction=True)
def test_a_refund_posts_the_reverse_and_never_more_than_was_paid(stripe_webhooks):
    crew = crew_with_patient()
    budget = crew["budget"]
    payment = start(crew, 2500, purpose=CardPaymentPurpose.CONTRIBUTION)
    card_payment_confirm(
        payment=payment, token_or_payment_method=token_for(stripe_webhooks, GOOD_CARD), acting_user=crew["patient"]
    )
    assert wait_for(lambda: CardPayment.objects.get(pk=payment.pk).status == CardPaymentStatus.SUCCEEDED)

    payment = card_payment_refund(payment=payment, amount_pence=1000, acting_user=crew["finance"], refund_number=1)
    assert (payment.refunded_pence, payment.status) == (1000, CardPaymentStatus.SUCCEEDED)
    refund = Transfer.objects.get(idempotency_key=f"{payment.ledger_key}:refund:1")
    assert refund.amount == 1000 and refund.code == "card_refund"
    assert refund.debit_account == card_account(budget, "contribution")
    assert refund.credit_account.code == card_payments.STRIPE_BALANCE_CODE
    assert card_account(budget, "contribution").posted_balance == 1500

    with pytest.raises(CardPaymentError, match="already been made"):  # the same form posted twice
        card_payment_refund(payment=payment, amount_pence=1000, acting_user=crew["finance"], refund_number=1)
    with pytest.raises(CardPaymentError) as refused:
        card_payment_refund(payment=payment, amount_pence=1501, acting_user=crew["finance"])
    assert str(refused.value) == "You can refund at most £15.00, which is what is left of this payment"
    assert CardPayment.objects.get(pk=payment.pk).refunded_pence == 1000

    payment = card_payment_refund(payment=payment, amount_pence=1500, acting_user=crew["finance"])
    assert (payment.refunded_pence, payment.status) == (2500, CardPaymentStatus.REFUNDED)
    assert card_account(budget, "contribution").posted_balance == 0
    assert card_transfers(budget).count() == 3
    with pytest.raises(CardPaymentError, match=r"at most £0\.00"):
        card_payment_refund(payment=payment, amount_pence=1, acting_user=crew["finance"])
    assert ledger_verify().ok


# --- The webhook endpoint, with the fake gateway ----------------------------------------------------------------


def deliver(client: Client, fake, event: dict, *, header: str | None = None):
    body, signature = fake.signed(event)
    return client.post(WEBHOOK, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header or signature)


def paid_event(crew, fake, amount_pence=2500, purpose=CardPaymentPurpose.CONTRIBUTION):
    """A payment confirmed with the fake, and the payment_intent.succeeded event Stripe would send for it."""
    payment = start(crew, amount_pence, purpose)
    payment = card_payment_confirm(payment=payment, token_or_payment_method="tok_visa", acting_user=crew["patient"])
    assert payment.status == CardPaymentStatus.PROCESSING
    [event] = [
        e for e in fake.event_of_type("payment_intent.succeeded") if e["data"]["object"]["id"] == payment.intent_id
    ]
    return payment, event


def failed_event(intent_id: str, amount_pence: int, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_intent.payment_failed",
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount_pence,
                "currency": "gbp",
                "status": "requires_payment_method",
                "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"},
                "metadata": {},
            }
        },
    }


@pytest.mark.django_db
def test_a_bad_signature_is_refused_with_a_reason_and_nothing_is_stored(client, fake_payments):
    crew = crew_with_patient()
    payment, event = paid_event(crew, fake_payments)
    body, signature = fake_payments.signed(event)

    tampered = body.replace(b"2500", b"9999")
    response = client.post(WEBHOOK, data=tampered, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
    assert response.status_code == 400 and "signature" in response.json()["error"].lower()
    assert client.post(WEBHOOK, data=body, content_type="application/json").status_code == 400  # no header
    wrong_secret = payments.sign_payload(body, "whsec_someone_else")
    assert deliver(client, fake_payments, event, header=wrong_secret).status_code == 400
    stale = payments.sign_payload(body, fake_payments._secret(), timestamp=int(time.time()) - 3600)
    assert deliver(client, fake_payments, event, header=stale).status_code == 400
    garbage = b"not json at all"
    response = client.post(
        WEBHOOK,
        data=garbage,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=payments.sign_payload(garbage, fake_payments._secret()),
    )
    assert response.status_code == 400
    assert client.get(WEBHOOK).status_code == 405

    assert not StripeEvent.objects.exists()
    assert not card_transfers().exists()
    assert CardPayment.objects.get(pk=payment.pk).status == CardPaymentStatus.PROCESSING


@pytest.mark.django_db
def test_unknown_event_types_and_unknown_intents_are_stored_and_acknowledged(client, fake_payments):
    unknown_type = {"id": "evt_unknown_type", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    response = deliver(client, fake_payments, unknown_type)
    assert response.status_code == 200 and response.json() == {"ignored": True}

    someone_elses = failed_event("pi_not_ours", 100, event_id="evt_not_ours")
    someone_elses["type"] = "payment_intent.succeeded"
    response = deliver(client, fake_payments, someone_elses)
    assert response.status_code == 200 and response.json()["ignored"] is True

    assert set(StripeEvent.objects.values_list("event_id", flat=True)) == {"evt_unknown_type", "evt_not_ours"}
    assert not card_transfers().exists()


@pytest.mark.django_db
def test_a_duplicate_delivery_is_answered_with_the_first_result_and_credits_once(client, fake_payments):
    crew = crew_with_patient()
    payment, event = paid_event(crew, fake_payments, 2500)

    first = deliver(client, fake_payments, event)
    assert first.status_code == 200
    assert first.json() == {"card_payment": payment.pk, "status": "succeeded", "credited_pence": 2500}
    again = deliver(client, fake_payments, event)
    assert again.status_code == 200 and again.json() == first.json()

    assert card_transfers(crew["budget"]).get().amount == 2500
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1
    # A different event about the same intent (Stripe may send more than one) credits nothing more.
    resent = {**event, "id": f"evt_{uuid.uuid4().hex}"}
    assert deliver(client, fake_payments, resent).json()["credited_pence"] == 0
    assert card_transfers(crew["budget"]).count() == 1


@pytest.mark.django_db
def test_a_failure_after_success_keeps_the_success_and_a_success_after_failure_still_credits(client, fake_payments):
    crew = crew_with_patient()
    paid, paid_ok = paid_event(crew, fake_payments, 1200)
    assert deliver(client, fake_payments, paid_ok).json()["status"] == "succeeded"
    late = deliver(client, fake_payments, failed_event(paid.intent_id, 1200))
    assert late.status_code == 200 and late.json()["ignored"] is True
    paid.refresh_from_db()
    assert (paid.status, paid.failure) == (CardPaymentStatus.SUCCEEDED, "")

    later, later_ok = paid_event(crew, fake_payments, 3400)
    assert deliver(client, fake_payments, failed_event(later.intent_id, 3400)).json()["status"] == "failed"
    later.refresh_from_db()
    assert later.status == CardPaymentStatus.FAILED
    assert later.failure == payments.decline_message("insufficient_funds")
    assert deliver(client, fake_payments, later_ok).json()["credited_pence"] == 3400
    later.refresh_from_db()
    assert (later.status, later.failure) == (CardPaymentStatus.SUCCEEDED, "")

    assert sorted(card_transfers(crew["budget"]).values_list("amount", flat=True)) == [1200, 3400]


@pytest.mark.django_db
def test_an_event_whose_amount_differs_from_the_payment_credits_nothing(client, fake_payments):
    crew = crew_with_patient()
    payment, event = paid_event(crew, fake_payments, 2500)
    event["data"]["object"]["amount"] = 250_000
    response = deliver(client, fake_payments, event)
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert not card_transfers().exists()
    assert CardPayment.objects.get(pk=payment.pk).status == CardPaymentStatus.PROCESSING


@pytest.mark.django_db
def test_an_intent_whose_id_was_never_saved_is_found_by_its_metadata(client, fake_payments):
    crew = crew_with_patient()
    payment, event = paid_event(crew, fake_payments, 700)
    CardPayment.objects.filter(pk=payment.pk).update(intent_id="")  # the process stopped before saving it
    assert deliver(client, fake_payments, event).json()["credited_pence"] == 700
    assert CardPayment.objects.get(pk=payment.pk).intent_id == event["data"]["object"]["id"]


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
def test_600_events_each_delivered_8_times_at_once_and_out_of_order_have_exactly_one_effect_each(fake_payments):
    crew = crew_with_patient()
    budget = crew["budget"]
    purposes = CardPaymentPurpose.values
    rows = CardPayment.objects.bulk_create(
        CardPayment(
            budget=budget,
            purpose=purposes[i % len(purposes)],
            amount_pence=100 + i,
            status=CardPaymentStatus.PROCESSING,
            intent_id=f"pi_conc{i:04d}",
            idempotency_key=f"conc:{i}",
            paid_by=crew["patient"],
        )
        for i in range(500)
    )
    events = []
    for i, row in enumerate(rows):
        succeeded = failed_event(row.intent_id, row.amount_pence, event_id=f"evt_conc_ok_{i:04d}")
        succeeded["type"] = "payment_intent.succeeded"
        events.append(succeeded)
        if i % 5 == 0:  # and, for one in five, a late or early failure of the same intent
            events.append(failed_event(row.intent_id, row.amount_pence, event_id=f"evt_conc_failed_{i:04d}"))
    random.Random(20261124).shuffle(events)
    signed = [fake_payments.signed(event) for event in events]

    threads_count = 8
    answers: list[list[tuple[str, int, bytes]]] = [[] for _ in range(threads_count)]
    crashes: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def deliver_all(index: int) -> None:
        client = Client()
        try:
            barrier.wait()
            for event, (body, header) in zip(events, signed, strict=True):
                response = client.post(
                    WEBHOOK, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
                )
                answers[index].append((event["id"], response.status_code, response.content))
        except BaseException as exc:  # reported below, so a thread's failure fails the test
            crashes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_all, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert crashes == []
    assert all(status == 200 for answer in answers for _, status, _ in answer)
    by_event: dict[str, set[bytes]] = {}
    for answer in answers:
        for event_id, _, content in answer:
            by_event.setdefault(event_id, set()).add(content)
    assert len(by_event) == 600
    differing = {event_id: contents for event_id, contents in by_event.items() if len(contents) != 1}
    assert differing == {}  # every delivery of an event got the first result, byte for byte
    failures = [json.loads(next(iter(by_event[e["id"]]))) for e in events if e["type"].endswith("failed")]
    assert {"failed", "succeeded"} == {result["status"] for result in failures}  # both orders happened

    assert StripeEvent.objects.filter(event_id__startswith="evt_conc_").count() == 600
    credits = card_transfers(budget).filter(code=card_payments.LEDGER_CODE)
    assert credits.count() == 500
    assert sorted(credits.values_list("amount", flat=True)) == [100 + i for i in range(500)]
    assert set(CardPayment.objects.filter(budget=budget).values_list("status", flat=True)) == {"succeeded"}
    stripe_balance = Account.objects.get(code=card_payments.STRIPE_BALANCE_CODE)
    assert stripe_balance.posted_balance == sum(100 + i for i in range(500))
    assert sum(card_account(budget, purpose).posted_balance for purpose in purposes) == stripe_balance.posted_balance
    assert ledger_verify().ok


# --- Pages -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_person_pays_by_card_through_the_pages(client, fake_payments):
    crew = crew_with_patient()
    budget = crew["budget"]
    client.force_login(crew["patient"])
    pay_url = reverse("budgets:card-pay", kwargs={"pk": budget.pk})

    page = client.get(pay_url)
    assert page.status_code == 200
    assert b"My assessed contribution" in page.content and b'name="key"' in page.content
    key = re.search(r'name="key" value="(\w+)"', page.content.decode()).group(1)

    problems = client.post(pay_url, {"purpose": "", "amount": "20000", "key": key})
    assert problems.status_code == 200
    assert "Error: " in problems.content.decode()[:2000]
    assert card_payments.CHOOSE_PURPOSE in problems.content.decode()
    assert card_payments.AMOUNT_RANGE in problems.content.decode()
    assert b'href="#purpose"' in problems.content

    first = client.post(pay_url, {"purpose": "contribution", "amount": "25.00", "key": key})
    again = client.post(pay_url, {"purpose": "contribution", "amount": "25.00", "key": key})  # a double click
    assert first.status_code == again.status_code == 302 and first.url == again.url
    payment = CardPayment.objects.get(budget=budget)
    assert (payment.amount_pence, payment.purpose, payment.paid_by) == (2500, "contribution", crew["patient"])

    card_page = client.get(first.url)
    html = card_page.content.decode()
    assert "Pay £25.00" in html and "My assessed contribution" in html and "<noscript>" in html
    for field in ("card-number", "card-exp-month", "card-exp-year", "card-cvc"):
        [tag] = re.findall(rf'<input[^>]*id="{field}"[^>]*>', html)
        assert f'for="{field}"' in html
        assert "name=" not in tag  # card details are never posted to us
    assert re.search(r'<input type="hidden" name="token" id="card-token"', html)
    assert "http://127.0.0.1:8420" in card_page["Content-Security-Policy"].split("connect-src")[1].split(";")[0]
    assert card_page["Cache-Control"] == "no-store"

    no_javascript = client.post(first.url, {"token": ""})
    assert card_payments.NEEDS_JAVASCRIPT in no_javascript.content.decode()
    confirmed = client.post(first.url, {"token": "tok_visa"})
    assert confirmed.status_code == 302
    assert "We are confirming your payment" in client.get(first.url).content.decode()
    assert client.get(first.url, HTTP_ACCEPT="application/json").json() == {"status": "processing"}

    [event] = fake_payments.event_of_type("payment_intent.succeeded")
    assert deliver(Client(), fake_payments, event).status_code == 200
    received = client.get(first.url).content.decode()
    assert "Payment received" in received and "£25.00" in received
    assert card_account(budget).posted_balance == 2500


@pytest.mark.django_db
def test_a_declined_card_shows_the_reason_and_a_try_again_link_with_the_answers(client, fake_payments):
    crew = crew_with_patient()
    client.force_login(crew["patient"])
    payment = start(crew, 1999, CardPaymentPurpose.CONTRIBUTION)
    url = reverse("budgets:card-payment", kwargs={"pk": crew["budget"].pk, "payment_pk": payment.pk})
    client.post(url, {"token": "tok_chargeDeclined"})
    html = client.get(url).content.decode()
    assert "Your payment did not go through" in html and "No money has been taken" in html
    assert "pay-by-card/?purpose=contribution&amp;amount=19.99" in html
    assert not card_transfers().exists()
    prefilled = client.get(reverse("budgets:card-pay", kwargs={"pk": crew["budget"].pk}), {"purpose": "contribution"})
    assert re.search(r'value="contribution"\s+checked', prefilled.content.decode())


@pytest.mark.django_db
def test_only_what_the_person_owes_is_offered_and_taken_never_a_top_up_of_their_own_money(client, fake_payments):
    crew = crew_with_patient()
    budget = crew["budget"]
    assert card_payments.card_payments_due(budget) == {"contribution": 120_000}
    for purpose in ("top_up", "surplus"):
        with pytest.raises(CardPaymentError) as refused:
            start(crew, 100, purpose=purpose)
        assert str(refused.value) == card_payments.NOT_DUE[purpose]
    with pytest.raises(CardPaymentError) as refused:
        start(crew, 120_001)
    assert str(refused.value) == "Your contribution still to pay is £1,200.00: you can pay at most that"

    payment, event = paid_event(crew, fake_payments, 100_000)
    assert deliver(client, fake_payments, event).status_code == 200
    assert card_payments.card_payments_due(budget) == {"contribution": 20_000}
    card_payment_refund(payment=CardPayment.objects.get(pk=payment.pk), amount_pence=5_000, acting_user=crew["finance"])
    assert card_payments.card_payments_due(budget) == {"contribution": 25_000}  # a refund is owed again

    client.force_login(crew["patient"])
    budget_page = client.get(reverse("budgets:my-budget", kwargs={"pk": budget.pk})).content.decode()
    assert "Pay your assessed contribution by card</a> (£250.00 still to pay)" in budget_page
    pay_url = reverse("budgets:card-pay", kwargs={"pk": budget.pk})
    form = client.get(pay_url).content.decode()
    assert "My assessed contribution: £250.00 still to pay" in form
    assert "top-up" not in form.lower() and "surplus" not in form.lower()
    too_much = client.post(pay_url, {"purpose": "contribution", "amount": "250.01", "key": "k1"}).content.decode()
    assert "Your contribution still to pay is £250.00: you can pay at most that" in too_much
    assert 'href="#id_amount"' in too_much
    top_up = client.post(pay_url, {"purpose": "top_up", "amount": "5.00", "key": "k2"}).content.decode()
    assert card_payments.CHOOSE_PURPOSE in top_up
    assert CardPayment.objects.filter(budget=budget).count() == 1

    paid, event = paid_event(crew, fake_payments, 25_000)
    deliver(client, fake_payments, event)
    assert card_payments.card_payments_due(budget) == {}
    assert (
        "Pay your assessed contribution"
        not in client.get(reverse("budgets:my-budget", kwargs={"pk": budget.pk})).content.decode()
    )
    nothing = client.get(pay_url).content.decode()
    assert "There is nothing to pay by card for this budget at the moment" in nothing
    assert 'name="amount"' not in nothing


@pytest.mark.django_db
def test_card_payments_cannot_start_unless_the_plan_is_live(fake_payments):
    crew = agreed_crew()
    budget = set_up(crew)
    CarePlan.objects.filter(pk=crew["plan"].pk).update(status="suspended")
    with pytest.raises(CardPaymentError, match="plan is suspended"):
        card_payment_start(
            budget=budget, purpose="contribution", amount_pence=100, acting_user=crew["finance"], key="k-suspended"
        )
    with pytest.raises(CardPaymentError, match="between 1p"):
        card_payment_start(
            budget=budget, purpose="contribution", amount_pence=1_000_001, acting_user=crew["finance"], key="k-big"
        )
    assert not CardPayment.objects.exists()


@pytest.mark.django_db
def test_finance_refunds_from_the_card_payments_page_once_per_form(client, fake_payments):
    crew = crew_with_patient()
    payment, event = paid_event(crew, fake_payments, 5000)
    deliver(Client(), fake_payments, event)
    client.force_login(crew["finance"])
    url = reverse("budgets:card-payments")

    page = client.get(url).content.decode()
    assert f"Card payment {payment.pk}" in page and f'id="refund-amount-{payment.pk}"' in page

    too_much = client.post(url, {"payment": payment.pk, "number": 1, "amount": "50.01"})
    assert too_much.status_code == 200
    assert "You can refund at most £50.00" in too_much.content.decode()
    assert f'href="#refund-amount-{payment.pk}"' in too_much.content.decode()

    done = client.post(url, {"payment": payment.pk, "number": 1, "amount": "20.00"})
    twice = client.post(url, {"payment": payment.pk, "number": 1, "amount": "20.00"})
    assert done.status_code == 302
    assert card_payments.REFUND_ALREADY_MADE in twice.content.decode()
    assert fake_payments.refunds[0].amount_pence == 2000 and len(fake_payments.refunds) == 1
    assert CardPayment.objects.get(pk=payment.pk).refunded_pence == 2000
    assert 'name="number" value="2"' in client.get(url).content.decode()


# --- Who may see what ---------------------------------------------------------------------------------------------


def person_pages(budget, payment) -> list[str]:
    return [
        reverse("budgets:card-pay", kwargs={"pk": budget.pk}),
        reverse("budgets:card-payment", kwargs={"pk": budget.pk, "payment_pk": payment.pk}),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Role))
def test_someone_elses_budget_is_404_for_every_role(client, fake_payments, role):
    crew = crew_with_patient()
    payment = start(crew)
    client.force_login(user_with_role(role))  # nobody connected to this person
    for url in person_pages(crew["budget"], payment):
        assert client.get(url).status_code == 404
        assert (
            client.post(url, {"purpose": "contribution", "amount": "1.00", "key": "x", "token": "tok_visa"}).status_code
            == 404
        )
    assert CardPayment.objects.count() == 1
    assert CardPayment.objects.get().status == CardPaymentStatus.STARTED


@pytest.mark.django_db
def test_staff_who_can_see_the_budget_still_get_404_on_the_persons_card_pages(client, fake_payments):
    crew = crew_with_patient()
    payment = start(crew)
    for staff in (crew["broker"], crew["coordinator"], crew["approver"], crew["finance"]):
        client.force_login(staff)
        assert all(client.get(url).status_code == 404 for url in person_pages(crew["budget"], payment))


@pytest.mark.django_db
def test_a_payment_of_another_budget_is_404_even_through_the_persons_own_budget(client, fake_payments):
    mine, theirs = crew_with_patient(), crew_with_patient()
    their_payment = start(theirs)
    client.force_login(mine["patient"])
    url = reverse("budgets:card-payment", kwargs={"pk": mine["budget"].pk, "payment_pk": their_payment.pk})
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_an_active_representative_may_pay_and_an_inactive_one_may_not(client, fake_payments):
    crew = crew_with_patient()
    rep_user = user_with_role(Role.REPRESENTATIVE)
    rep = Representative.objects.create(
        person=crew["person"],
        kind=ActorKind.REPRESENTATIVE,
        name="Michael Robson",
        relationship="husband",
        basis=RepresentativeBasis.ADULT_LACKING_CAPACITY,
        user=rep_user,
    )
    client.force_login(rep_user)
    url = reverse("budgets:card-pay", kwargs={"pk": crew["budget"].pk})
    assert client.get(url).status_code == 200
    rep.active = False
    rep.save(update_fields=["active"])
    assert client.get(url).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Role))
def test_finance_acts_on_the_card_payments_page_auditors_only_read_it(client, role):
    client.force_login(user_with_role(role))
    expected = 200 if role in (*FINANCE_ROLES, Role.AUDITOR) else 404
    url = reverse("budgets:card-payments")
    assert client.get(url).status_code == expected
    if role not in FINANCE_ROLES:
        assert client.post(url, {"payment": 1, "number": 1, "amount": "1.00"}).status_code == 404


@pytest.mark.django_db
def test_an_auditor_reads_card_payments_without_refund_forms(client, fake_payments):
    crew = crew_with_patient()
    payment, event = paid_event(crew, fake_payments, 700)
    deliver(client, fake_payments, event)
    url = reverse("budgets:card-payments")
    client.force_login(crew["finance"])
    assert f'id="refund-amount-{payment.pk}"' in client.get(url).content.decode()
    client.force_login(user_with_role(Role.AUDITOR))
    page = client.get(url).content.decode()
    assert "£7.00" in page and "refund-amount-" not in page


# --- The Stripe adapter's request to real Stripe (localstripe cannot make a PaymentMethod from a token) ----------


def test_against_real_stripe_the_token_becomes_a_payment_method_attached_then_confirmed():
    import responses

    gateway = payments.StripeGateway("sk_test_123", webhook_secret="whsec_x")
    intent = {"id": "pi_123", "object": "payment_intent", "amount": 2500, "status": "succeeded", "metadata": {}}
    with responses.RequestsMock() as mocked:
        mocked.post("https://api.stripe.com/v1/payment_methods", json={"id": "pm_123", "object": "payment_method"})
        mocked.post(
            "https://api.stripe.com/v1/payment_intents/pi_123", json={**intent, "status": "requires_confirmation"}
        )
        mocked.post("https://api.stripe.com/v1/payment_intents/pi_123/confirm", json=intent)
        result = gateway.confirm_intent(intent_id="pi_123", card_token="tok_visa", idempotency_key="card-payment:9:c")
        method, attach, confirm = mocked.calls
    assert result.status == "succeeded"
    assert urllib.parse.parse_qs(method.request.body) == {"type": ["card"], "card[token]": ["tok_visa"]}
    assert urllib.parse.parse_qs(attach.request.body) == {"payment_method": ["pm_123"]}
    assert [call.request.headers["Idempotency-Key"] for call in (method, attach, confirm)] == [
        "card-payment:9:c:method",
        "card-payment:9:c:attach",
        "card-payment:9:c",
    ]
