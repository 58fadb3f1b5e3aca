"""A plan exported as a FHIR R4 Bundle: CarePlan with its Patient, Practitioner (care coordinator) and
Organization (accountable ICB), using the NHS number and ODS code identifier systems. An export only: the
plan itself lives in our own model."""

from __future__ import annotations

from brokerage.models import CarePlan, ManagementType, PlanStatus

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"

# FHIR R4 CarePlan.status (required binding http://hl7.org/fhir/ValueSet/request-status).
FHIR_STATUS = {
    PlanStatus.DRAFT: "draft",
    PlanStatus.SUBMITTED: "draft",
    PlanStatus.RETURNED: "draft",
    PlanStatus.APPROVED: "draft",
    PlanStatus.AGREED: "active",
    PlanStatus.SETTING_UP: "active",
    PlanStatus.ACTIVE: "active",
    PlanStatus.UNDER_REVIEW: "active",
    PlanStatus.SUSPENDED: "on-hold",
    PlanStatus.STOPPING: "active",
    PlanStatus.FINAL_AUDIT: "active",
    PlanStatus.VARIED: "revoked",
    PlanStatus.CLOSED: "completed",
}
# CarePlan.intent (http://hl7.org/fhir/ValueSet/care-plan-intent): agreed plans are orders to act on.
AGREED_STATES = {
    PlanStatus.AGREED,
    PlanStatus.SETTING_UP,
    PlanStatus.ACTIVE,
    PlanStatus.UNDER_REVIEW,
    PlanStatus.SUSPENDED,
    PlanStatus.STOPPING,
    PlanStatus.FINAL_AUDIT,
    PlanStatus.CLOSED,
    PlanStatus.VARIED,
}
# CarePlan.activity.detail.status (http://hl7.org/fhir/ValueSet/care-plan-activity-status).
ACTIVITY_STATUS = {
    "draft": "not-started",
    "active": "in-progress",
    "on-hold": "on-hold",
    "revoked": "stopped",
    "completed": "completed",
}
MANAGEMENT_LABEL = {choice.value: choice.label for choice in ManagementType}


def plan_bundle(plan: CarePlan, *, base_url: str) -> dict:
    person = plan.person
    patient_id = f"patient-{person.pk}"
    organisation_id = f"organisation-{person.icb_id}"
    status = FHIR_STATUS[plan.status]
    patient = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number}],
        "name": [{"use": "official", "family": person.family_name, "given": [person.given_name]}],
        "birthDate": person.date_of_birth.isoformat(),
        "address": [{"text": person.address, "postalCode": person.postcode}],
        "managingOrganization": {"reference": f"Organization/{organisation_id}"},
    }
    organisation = {
        "resourceType": "Organization",
        "id": organisation_id,
        "name": person.icb.name,
        "identifier": [{"system": ODS_CODE_SYSTEM, "value": person.icb.ods_code}] if person.icb.ods_code else [],
    }
    entries = [patient, organisation]
    care_plan = {
        "resourceType": "CarePlan",
        "id": f"careplan-{plan.pk}",
        "identifier": [{"system": "urn:phb:care-plan", "value": f"{plan.pk}-v{plan.version}"}],
        "status": status,
        "intent": "order" if plan.status in AGREED_STATES else "plan",
        "title": f"Care and support plan (personal health budget), version {plan.version}",
        "description": plan.about_me or None,
        "subject": {"reference": f"Patient/{patient_id}", "display": person.full_name},
        "created": plan.created_at.isoformat(),
        "note": [{"text": f"Need: {need.description}"} for need in plan.needs.all()],
        "activity": [],
    }
    if plan.agreed_on:
        care_plan["period"] = {"start": plan.agreed_on.isoformat()}
    coordinator = plan.care_coordinator
    if coordinator is not None:
        practitioner_id = f"practitioner-{coordinator.pk}"
        entries.append(
            {
                "resourceType": "Practitioner",
                "id": practitioner_id,
                "name": [{"text": coordinator.full_name}],
                "telecom": [{"system": "email", "value": coordinator.email}],
            }
        )
        care_plan["author"] = {"reference": f"Practitioner/{practitioner_id}", "display": coordinator.full_name}
    for line in plan.lines.select_related("outcome", "provider"):
        detail = {
            "kind": "ServiceRequest",
            "status": ACTIVITY_STATUS[status],
            "description": f"{line.description}: {line.outcome.description} ({MANAGEMENT_LABEL[line.management_type]})",
            "scheduledString": line.frequency,
            "quantity": {"value": float(line.quantity)},
        }
        care_plan["activity"].append({"detail": detail})
    if not care_plan["note"]:
        del care_plan["note"]
    if not care_plan["description"]:
        del care_plan["description"]
    entries.append(care_plan)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{base_url}{resource['resourceType']}/{resource['id']}", "resource": resource}
            for resource in entries
        ],
    }
