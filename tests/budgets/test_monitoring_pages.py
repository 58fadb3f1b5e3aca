"""Monitoring pages: the dashboard lists overdue reviews, a review is completed from its page, a suspension and
resumption, a stop needing reasons; the person sends a return and can withdraw consent; others get 404;
random input never answers 500."""

import datetime

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.roles import Role
from brokerage.models import CarePlan, PlanStatus
from budgets import monitoring
from budgets.models import DirectPaymentReturn, Review, StopDecision, Suspension
from budgets.services import BudgetError
from tests.budgets.test_person_pages import PDF, budget_in_use
from tests.factories import issued_recovery, user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)
LATER = datetime.datetime(2027, 3, 20, 9, 0)


@pytest.fixture
def live(agreed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    agreed["budget"] = budget_in_use(agreed, start=START)
    agreed["budget"].refresh_from_db()  # the first payment set first_paid_on through another instance
    monitoring.reviews_schedule(agreed["budget"])
    return agreed


def test_the_coordinator_sees_the_overdue_review_and_completes_it(client, live):
    with time_machine.travel(LATER, tick=False):
        client.force_login(live["coordinator"])
        dashboard = client.get("/dashboard/", follow=True).content.decode()
        assert "Overdue reviews" in dashboard and "First review after the first payment" in dashboard
        review = Review.objects.get()
        page = client.get(f"/reviews/{review.pk}/").content.decode()
        assert all(outcome.description in page for outcome in live["plan"].outcomes.all())
        bad = client.post(f"/reviews/{review.pk}/", {"decision": "vary"}).content.decode()
        assert "Say who took part in the review" in bad and "Give the reasons for the decision" in bad
        body = {"participants": "Joan Robson\nAlex Carter, coordinator", "decision": "no_change"}
        body.update({f"outcome_{outcome.pk}": "achieved" for outcome in live["plan"].outcomes.all()})
        assert client.post(f"/reviews/{review.pk}/", body).status_code == 302
        review.refresh_from_db()
        assert review.completed_on == LATER.date() and review.decision == "no_change"
        assert "No reviews are overdue." in client.get("/dashboard/", follow=True).content.decode()
    assert CarePlan.objects.get(pk=live["plan"].pk).status == PlanStatus.ACTIVE


def test_suspend_resume_and_stop_from_the_monitoring_page(client, live):
    url = f"/budgets/{live['budget'].pk}/monitoring/"
    client.force_login(live["coordinator"])
    with time_machine.travel(LATER, tick=False):
        client.force_login(live["coordinator"])
        refused = client.post(url, {"action": "suspend", "suspend-reason": "hospital"}).content.decode()
        assert "Give the reasons for the suspension" in refused
        client.post(url, {"action": "suspend", "suspend-reason": "hospital", "suspend-reasons": "In hospital"})
        assert Suspension.objects.filter(ended_on__isnull=True).exists()
        client.post(url, {"action": "resume"})
        assert not Suspension.objects.filter(ended_on__isnull=True).exists()
        no_reasons = client.post(url, {"action": "stop", "stop-ground": "misuse"}).content.decode()
        assert "Give the reasons for stopping the budget" in no_reasons
        client.post(url, {"action": "stop", "stop-ground": "misuse", "stop-reasons": "Spent on a holiday"})
    assert StopDecision.objects.get().ground == "misuse"
    assert CarePlan.objects.get(pk=live["plan"].pk).status == PlanStatus.STOPPING


def test_the_person_sends_a_return_and_can_withdraw_consent(client, live):
    patient = user_with_role(Role.PATIENT)
    person = live["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    with time_machine.travel(LATER, tick=False):
        monitoring.returns_schedule(live["budget"])
        client.force_login(patient)
        url = f"/my/budgets/{live['budget'].pk}/returns/"
        assert "Return for 1 December 2026 to 28 February 2027" in client.get(url).content.decode()
        undeclared = client.post(url, {"kind": "bank_statement", "file": SimpleUploadedFile("s.pdf", PDF)})
        assert "Confirm the declaration" in undeclared.content.decode()
        client.post(
            url, {"kind": "bank_statement", "declaration": "on", "file": SimpleUploadedFile("statement.pdf", PDF)}
        )
        dp_return = DirectPaymentReturn.objects.get(holder=None)
        assert dp_return.submitted_at is not None and dp_return.evidence.get().content_type == "application/pdf"
        consent = f"/my/budgets/{live['budget'].pk}/consent/"
        assert "Withdraw consent and stop the budget" in client.get(consent).content.decode()
        client.post(consent, {"confirm": "withdraw"})
    assert StopDecision.objects.get().ground == "consent_withdrawn"
    assert CarePlan.objects.get(pk=live["plan"].pk).status == PlanStatus.STOPPING


@pytest.mark.parametrize("role", [Role.PATIENT, Role.THIRD_PARTY_STAFF, Role.AUDITOR, Role.CARE_COORDINATOR])
def test_others_get_404_on_the_monitoring_pages(client, live, role):
    review = Review.objects.get()
    client.force_login(user_with_role(role))
    for url in (
        f"/budgets/{live['budget'].pk}/monitoring/",
        f"/reviews/{review.pk}/",
        f"/my/budgets/{live['budget'].pk}/returns/",
        f"/my/budgets/{live['budget'].pk}/consent/",
    ):
        assert client.get(url).status_code == 404


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_monitoring_forms_never_fail_with_random_input(client, live, data):
    client.force_login(live["coordinator"])
    junk = st.text(max_size=30) | st.sampled_from(["", "hospital", "misuse", "consent_withdrawn", "vary", "stop"])
    review = Review.objects.first()
    posts = {
        f"/budgets/{live['budget'].pk}/monitoring/": [
            "action",
            "trigger-reason",
            "trigger-note",
            "suspend-reason",
            "suspend-reasons",
            "stop-ground",
            "stop-reasons",
        ],
        f"/reviews/{review.pk}/": ["participants", "decision", "reasons"],
    }
    for url, names in posts.items():
        body = {name: data.draw(junk) for name in names if data.draw(st.booleans())}
        assert client.post(url, body).status_code in (200, 302)


def test_the_person_asks_for_a_recovery_to_be_reconsidered_which_pauses_it(client, live):
    from budgets import ending

    patient = user_with_role(Role.PATIENT)
    person = live["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    notice = issued_recovery(
        budget=live["budget"],
        reasons="Money spent on a holiday, which the plan does not cover",
        amount_pence=5_000,
        deadline=datetime.date.today() + datetime.timedelta(days=28),
        addressee="person",
        addressee_name=person.full_name,
        acting_user=live["finance"],
    )
    client.force_login(patient)
    page = client.get(f"/my/budgets/{live['budget'].pk}/").content.decode()
    url = f"/my/budgets/{live['budget'].pk}/recoveries/{notice.pk}/reconsider/"
    assert url in page
    empty = client.post(url, {"evidence": " "}).content.decode()
    assert "Tell us why we should look at this again" in empty
    assert client.post(url, {"evidence": "It was a respite break agreed with my coordinator"}).status_code == 302
    notice.refresh_from_db()
    assert notice.status == "reconsidering" and "respite" in notice.reconsideration_evidence
    with pytest.raises(BudgetError, match="reconsider"):
        ending.recovery_repaid(recovery=notice, amount_pence=100, key="k", acting_user=live["finance"], method="bank")
    client.force_login(user_with_role(Role.PATIENT))
    assert client.get(url).status_code == 404
