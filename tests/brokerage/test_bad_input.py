"""Random input to every plan-builder and decision form never answers 500, and changes nothing when refused."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokerage.models import PlanStatus
from tests.brokerage.helpers import complete_plan, make_person, team

pytestmark = pytest.mark.django_db

junk = st.text(max_size=60) | st.sampled_from(["", "-1", "0", "1e9", "12.345", "£100", "2026-02-30", "NaN", "9" * 20])
FORMS = {
    ("brokerage:plan-section", "budget"): [
        "budget",
        "indicative_budget",
        "funding_icb",
        "funding_local_authority",
        "funding_contribution",
    ],
    ("brokerage:plan-section", "payments"): [
        "payment_frequency",
        "contingency_amount",
        "contingency_description",
    ],
    ("brokerage:plan-section", "coordination"): [
        "care_coordinator",
        "health_monitor",
        "first_review_date",
        "notice_period_days",
    ],
    ("brokerage:plan-section", "about"): ["about_me"],
    ("brokerage:plan-support", None): [
        "action",
        "service",
        "description",
        "category",
        "provider",
        "outcome",
        "management_type",
        "third_party_holder",
        "frequency",
        "quantity",
        "unit_cost",
    ],
    ("brokerage:plan-needs", None): ["action", "need-description", "outcome-description", "outcome-needs", "remove"],
    ("brokerage:plan-risks", None): ["action", "risk", "mitigation", "remove"],
}


@pytest.fixture
def draft(client):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    plan = complete_plan(person=person, broker=crew["broker"])
    client.force_login(crew["broker"])
    return plan


@pytest.mark.parametrize("form", sorted(FORMS, key=str))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_plan_forms_never_fail_with_a_server_error(client, draft, form, data):
    name, section = form
    kwargs = {"pk": draft.pk, **({"section": section} if section else {})}
    payload = {field: data.draw(junk, label=field) for field in FORMS[form]}
    if "action" in payload:
        payload["action"] = data.draw(
            st.sampled_from(
                [
                    "add_line",
                    "add_need",
                    "add_outcome",
                    "add_risk",
                    "remove_line",
                    "remove_need",
                    "remove_outcome",
                    "remove_risk",
                    payload["action"],
                ]
            )
        )
    response = client.post(reverse(name, kwargs=kwargs), payload)
    assert response.status_code in (200, 302)
    if response.status_code == 200 and section:
        assert b"nhsuk-error-summary" in response.content


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=junk, reasons=junk, exception=junk)
def test_the_decision_form_never_fails_and_an_empty_return_changes_nothing(client, action, reasons, exception):
    crew = team()
    person = make_person(icb_org=crew["icb"], staff=[crew["broker"]])
    plan = complete_plan(person=person, broker=crew["broker"])
    plan.submit()
    plan.save()
    client.force_login(crew["approver"])
    response = client.post(
        reverse("brokerage:plan-decide", kwargs={"pk": plan.pk}),
        {"action": action, "return-reasons": reasons, "approve-exception_reasons": exception},
    )
    assert response.status_code in (200, 302)
    plan.refresh_from_db()
    if response.status_code == 200:
        assert plan.status == PlanStatus.SUBMITTED
