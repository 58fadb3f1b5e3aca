"""The brokerage API (scoped, transitions checked with has_transition_perm) and the FHIR R4 export."""

import pytest
from fhir.resources.R4B.bundle import Bundle

from accounts.roles import Role
from brokerage.fhir import FHIR_STATUS, NHS_NUMBER_SYSTEM, ODS_CODE_SYSTEM
from brokerage.models import PlanStatus
from tests.brokerage.helpers import complete_plan, icb, make_person, team
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db

# The FHIR R4 value sets our codes must come from.
CAREPLAN_STATUS = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
CAREPLAN_INTENT = {"proposal", "plan", "order", "option"}
ACTIVITY_STATUS = {
    "not-started",
    "scheduled",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "stopped",
    "unknown",
    "entered-in-error",
}


@pytest.fixture
def crew():
    people = team()
    people["icb"].ods_code = "QHM"
    people["icb"].save()
    people["person"] = make_person(icb_org=people["icb"], staff=[people["broker"], people["coordinator"]])
    people["plan"] = complete_plan(person=people["person"], broker=people["broker"], coordinator=people["coordinator"])
    return people


def transition(client, plan, name, reasons=""):
    return client.post(
        f"/api/brokerage/plans/{plan.pk}/transition/",
        {"name": name, "reasons": reasons},
        content_type="application/json",
    )


def test_broker_submits_and_approver_decides_through_the_api(client, crew):
    plan = crew["plan"]
    client.force_login(crew["broker"])
    detail = client.get(f"/api/brokerage/plans/{plan.pk}/").json()
    assert detail["allowed_transitions"] == ["submit"] and len(detail["lines"]) == 3
    listed = client.get("/api/brokerage/plans/").json()
    listed = listed.get("results", listed)
    # A list leaves out what each plan allows next: working it out per plan grew the queries with the page.
    assert [row["id"] for row in listed] == [plan.pk] and "allowed_transitions" not in listed[0]
    submitted = transition(client, plan, "submit").json()
    assert submitted["status"] == "submitted" and submitted["allowed_transitions"] == []
    assert transition(client, plan, "approve").status_code == 409  # the broker may not approve
    client.force_login(crew["approver"])
    refused = transition(client, plan, "return_to_broker")
    assert refused.status_code == 400 and "reasons" in refused.json()["detail"]
    assert transition(client, plan, "approve").json()["status"] == "approved"
    assert transition(client, plan, "approve").status_code == 409  # not from approved


def test_api_is_scoped_and_answers_404_for_other_peoples_records(client, crew):
    stranger = user_with_role(Role.CARE_BROKER, organisation=icb("Other ICB"))
    client.force_login(stranger)
    assert client.get("/api/brokerage/people/").json()["count"] == 0
    assert client.get(f"/api/brokerage/people/{crew['person'].pk}/").status_code == 404
    assert client.get(f"/api/brokerage/plans/{crew['plan'].pk}/").status_code == 404
    assert client.get(f"/api/brokerage/plans/{crew['plan'].pk}/fhir/").status_code == 404
    assert transition(client, crew["plan"], "submit").status_code == 404
    line = crew["plan"].lines.first()
    assert client.get(f"/api/brokerage/plan-lines/{line.pk}/").status_code == 404


def test_unknown_transition_names_are_refused_with_a_reason(client, crew):
    client.force_login(crew["broker"])
    response = transition(client, crew["plan"], "teleport")
    assert response.status_code == 400 and "teleport" in response.content.decode()


def test_fhir_bundle_validates_against_r4_models_with_nhs_identifiers(client, crew):
    client.force_login(crew["broker"])
    response = client.get(f"/api/brokerage/plans/{crew['plan'].pk}/fhir/")
    assert response["Content-Type"].startswith("application/fhir+json")
    data = response.json()
    bundle = Bundle.model_validate(data)
    resources = {entry.resource.__resource_type__: entry.resource for entry in bundle.entry}
    assert set(resources) == {"Patient", "Organization", "Practitioner", "CarePlan"}
    assert resources["Patient"].identifier[0].system == NHS_NUMBER_SYSTEM
    assert resources["Patient"].identifier[0].value == crew["person"].nhs_number
    assert (resources["Organization"].identifier[0].system, resources["Organization"].identifier[0].value) == (
        ODS_CODE_SYSTEM,
        "QHM",
    )
    care_plan = resources["CarePlan"]
    assert care_plan.subject.reference == f"Patient/patient-{crew['person'].pk}"
    assert care_plan.author.reference.startswith("Practitioner/")
    assert len(care_plan.activity) == 3
    assert care_plan.status in CAREPLAN_STATUS and care_plan.intent in CAREPLAN_INTENT
    assert {activity.detail.status for activity in care_plan.activity} <= ACTIVITY_STATUS


def test_every_plan_status_maps_to_codes_in_the_fhir_value_sets():
    assert set(FHIR_STATUS) == set(PlanStatus)
    assert set(FHIR_STATUS.values()) <= CAREPLAN_STATUS
    from brokerage.fhir import ACTIVITY_STATUS as ours

    assert set(ours.values()) <= ACTIVITY_STATUS
