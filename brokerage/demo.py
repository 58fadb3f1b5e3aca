"""Demo people and plans: every plan state is represented, so each role's pages have something to show.

Builds through the services, as a broker and an approver would, so the audit trail is real too.
"""

from __future__ import annotations

import datetime
import random
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

from accounts.models import OrganisationKind
from accounts.roles import Role
from brokerage import services, sign_ins
from brokerage.models import (
    ActorKind,
    Capacity,
    CarePlan,
    Cohort,
    ManagementType,
    Person,
    PlanStatus,
    Representative,
    RepresentativeBasis,
)
from providers.models import Service

GIVEN = [
    "Joan",
    "Arthur",
    "Maureen",
    "David",
    "Aisha",
    "Connor",
    "Ellie",
    "George",
    "Priya",
    "Liam",
    "Margaret",
    "Mohammed",
    "Sophie",
    "Brian",
    "Grace",
    "Kevin",
    "Hannah",
    "Raymond",
    "Chloe",
    "Dennis",
]
FAMILY = [
    "Robson",
    "Charlton",
    "Milburn",
    "Armstrong",
    "Hussain",
    "Dodds",
    "Patterson",
    "Scott",
    "Begum",
    "Bell",
    "Wilson",
    "Ali",
    "Thompson",
    "Hall",
    "Nwosu",
    "Elliott",
    "Reay",
    "Taylor",
    "Forster",
    "Young",
]
STREETS = ["Grey Street", "Heaton Road", "Front Street", "Shields Road", "Chillingham Road", "Durham Road"]
NEEDS = [
    ("Help with washing and dressing each morning", "Stays living at home"),
    ("Keep lungs as strong as possible", "Can walk to the shops and back"),
    ("Company and a break for the family carer", "The family carer keeps going"),
    ("Regular wound care", "The leg ulcer heals"),
]
# The path of transitions that leads to each state (after the plan is complete and submitted).
PATHS = {
    PlanStatus.DRAFT: [],
    PlanStatus.SUBMITTED: ["submit"],
    PlanStatus.RETURNED: ["submit", "return_to_broker"],
    PlanStatus.APPROVED: ["submit", "approve"],
    PlanStatus.AGREED: ["submit", "approve", "record_agreement"],
    PlanStatus.SETTING_UP: ["submit", "approve", "record_agreement", "start_setting_up"],
    PlanStatus.ACTIVE: ["submit", "approve", "record_agreement", "start_setting_up", "activate"],
    PlanStatus.UNDER_REVIEW: ["submit", "approve", "record_agreement", "start_setting_up", "activate", "start_review"],
    PlanStatus.SUSPENDED: ["submit", "approve", "record_agreement", "start_setting_up", "activate", "suspend"],
    PlanStatus.STOPPING: ["submit", "approve", "record_agreement", "start_setting_up", "activate", "stop"],
    PlanStatus.FINAL_AUDIT: [
        "submit",
        "approve",
        "record_agreement",
        "start_setting_up",
        "activate",
        "stop",
        "begin_final_audit",
    ],
    PlanStatus.CLOSED: [
        "submit",
        "approve",
        "record_agreement",
        "start_setting_up",
        "activate",
        "stop",
        "begin_final_audit",
        "close",
    ],
}


def nhs_number(serial: int) -> str:
    while True:
        digits = f"999{serial:06d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return digits + str(check)
        serial += 1


def seed(*, rng: random.Random, people: int, context: dict) -> None:
    if Person.objects.exists():
        return
    users = context["users"]
    organisations = context["organisations"]
    broker, coordinator, approver = users[Role.CARE_BROKER], users[Role.CARE_COORDINATOR], users[Role.ICB_APPROVER]
    services_by_category = {}
    for service in Service.objects.select_related("category", "provider"):
        services_by_category.setdefault(service.category.name, []).append(service)
    today = timezone.localdate()
    count = max(people, len(PATHS) + 1)  # one more active person, still active once index 6 is varied
    # One person in every state first (index 6 is active and gets a variation, so "varied" appears too); the
    # rest are mostly active.
    statuses = list(PATHS) + [rng.choice([PlanStatus.ACTIVE] * 4 + list(PATHS)) for _ in range(count - len(PATHS))]
    statuses[len(PATHS)] = PlanStatus.ACTIVE
    # The demo's patient, nominee and representative act for people whose budgets are live, so their own pages
    # have something to show: two adults with capacity and a child (children have a parent as representative).
    live = [i for i in range(len(PATHS), count) if statuses[i] == PlanStatus.ACTIVE and i % 10 != 6]
    adults = [i for i in live if i % 9 != 4 and i % 11 != 3]
    children = [i for i in live if i % 9 == 4]
    patient_index, nominee_index = [*adults, 0, 1][:2]
    representative_index = [*children, 4][0]
    made = {}
    for index in range(count):
        child = index % 9 == 4
        born = today.replace(
            year=today.year - (rng.randint(6, 14) if child else rng.randint(19, 92))
        ) - datetime.timedelta(days=rng.randint(0, 360))
        person = services.person_create(
            acting_user=broker,
            nhs_number=nhs_number(100_000 + index * 37),
            given_name="Joan" if index == patient_index else GIVEN[index % len(GIVEN)],
            family_name="Robson" if index == patient_index else FAMILY[(index * 7) % len(FAMILY)],
            date_of_birth=born,
            address=f"{rng.randint(1, 180)} {rng.choice(STREETS)}, Newcastle upon Tyne",
            postcode=f"NE{rng.randint(1, 15)} {rng.randint(1, 9)}AB",
            capacity=Capacity.LACKS_CAPACITY if index % 11 == 3 else Capacity.HAS_CAPACITY,
            cohort=Cohort.CHILDRENS_CONTINUING_CARE
            if child
            else rng.choice(
                [Cohort.CONTINUING_HEALTHCARE] * 3 + [Cohort.S117_AFTERCARE, Cohort.WHEELCHAIR, Cohort.OTHER]
            ),
            icb=organisations["icb"],
            # The demo's patient has an integrated budget, so their pages show an assessed contribution to pay.
            local_authority=organisations["la"] if index % 3 == 0 or index == patient_index else None,
            care_coordinator=coordinator,
            health_monitor=f"Dr {rng.choice(FAMILY)}, {rng.choice(STREETS)} Surgery",
            communication_needs="Large print letters" if index % 5 == 0 else "",
        )
        person.assigned_staff.add(coordinator)
        made[index] = person
        if index == patient_index:
            person.user = users[Role.PATIENT]
            person.save()
        if child:
            Representative.objects.create(
                person=person,
                kind=ActorKind.REPRESENTATIVE,
                name="Parent",
                relationship="Mother",
                basis=RepresentativeBasis.CHILD_UNDER_16,
            )
        if index == representative_index:
            rep = person.representatives.get()
            rep.name, rep.user = users[Role.REPRESENTATIVE].full_name, users[Role.REPRESENTATIVE]
            rep.save()
        if index == nominee_index:
            Representative.objects.create(
                person=person,
                kind=ActorKind.NOMINEE,
                name=users[Role.NOMINEE].full_name,
                relationship="Daughter",
                nominated_on=today - datetime.timedelta(days=200),
                consent_recorded_on=today - datetime.timedelta(days=199),
                user=users[Role.NOMINEE],
            )
        plan = build_plan(
            person=person,
            broker=broker,
            rng=rng,
            services_by_category=services_by_category,
            holder=organisations["trust"],
            today=today,
        )
        # The plan side is walked here; the money side (setting up onwards) is left to the budgets demo, which
        # sets the budget up for real and pays it.
        steps = PATHS[statuses[index]]
        agreed_at = steps.index("record_agreement") + 1 if "record_agreement" in steps else len(steps)
        for name in steps[:agreed_at]:
            walk(
                plan,
                name,
                broker=broker,
                coordinator=coordinator,
                approver=approver,
                finance=users[Role.FINANCE_OFFICER],
            )
        if steps[agreed_at:]:
            context.setdefault("money_steps", {})[plan.pk] = steps[agreed_at:]
        if statuses[index] == PlanStatus.ACTIVE and index % 10 == 6:
            context.setdefault("vary", []).append(plan.pk)
    # Someone invited to sign in who has not chosen a password yet, so a record shows what an invitation looks like.
    able = [i for i in range(count) if i % 9 != 4 and i % 11 != 3]  # adults with capacity, live ones first
    invitee = next((made[i] for i in [*adults, *able] if i not in (patient_index, nominee_index)), None)
    if invitee is not None:
        sign_ins.sign_in_invite(
            person=invitee,
            acting_user=coordinator,
            email=f"{invitee.given_name}.{invitee.family_name}@example.org".lower().replace("'", ""),
        )
    context["plans"] = list(CarePlan.objects.all())
    assert organisations["trust"].kind == OrganisationKind.THIRD_PARTY_HOLDER


def build_plan(*, person, broker, rng, services_by_category, holder, today) -> CarePlan:
    plan = services.plan_create(person=person, acting_user=broker)
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="about",
        about_me=f"{person.given_name} wants to stay independent at home and see friends each week.",
    )
    outcomes = []
    for need_text, outcome_text in rng.sample(NEEDS, 2):
        need = services.need_add(plan=plan, acting_user=broker, description=need_text)
        outcomes.append(services.outcome_add(plan=plan, acting_user=broker, description=outcome_text, needs=[need]))
    choices = [
        ("Nursing care", ManagementType.NOTIONAL, "2 visits a week", Decimal("104")),
        ("Personal assistant support", ManagementType.THIRD_PARTY, "10 hours a week", Decimal("520")),
        ("Leisure and wellbeing", ManagementType.DIRECT_PAYMENT, "weekly", Decimal("50")),
    ]
    for category, management, frequency, quantity in choices:
        service = rng.choice(services_by_category[category])
        services.line_add(
            plan=plan,
            acting_user=broker,
            description=service.name,
            category=service.category,
            outcome=rng.choice(outcomes),
            management_type=management,
            frequency=frequency,
            quantity=quantity,
            unit_cost=service.unit_rate,
            service=service,
            third_party_holder=holder if management == ManagementType.THIRD_PARTY else None,
        )
    total = plan.lines_total.amount
    budget = (total * Decimal("1.05")).quantize(Decimal("1"))
    la_share = (budget * Decimal("0.25")).quantize(Decimal("1")) if person.local_authority_id else Decimal("0")
    # Social care is means-tested for adults: the assessed contribution is part of the local authority's share.
    adult = person.cohort != Cohort.CHILDRENS_CONTINUING_CARE
    contribution = (la_share * Decimal("0.2")).quantize(Decimal("1")) if adult else Decimal("0")
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="budget",
        indicative_budget=Money(budget, "GBP"),
        budget=Money(budget, "GBP"),
        funding_icb=Money(budget - la_share, "GBP"),
        funding_local_authority=Money(la_share - contribution, "GBP"),
        funding_contribution=Money(contribution, "GBP"),
    )
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="payments",
        payment_frequency="four_weekly",
        contingency_amount=Money(budget - total, "GBP"),
        contingency_description="The agency covers if the personal assistant is ill or on holiday.",
    )
    services.risk_add(plan=plan, acting_user=broker, risk="Falls at home", mitigation="Pendant alarm and grab rails")
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="coordination",
        first_review_date=today + datetime.timedelta(days=rng.randint(30, 90)),
    )
    return plan


def walk(plan, name, *, broker, coordinator, approver, finance) -> None:
    if name == "return_to_broker":
        services.plan_return(plan=plan, acting_user=approver, reasons="Please add how the PA's holidays are covered")
    elif name == "approve":
        services.plan_approve(plan=plan, acting_user=approver)
    elif name == "record_agreement":
        services.plan_record_agreement(
            plan=plan,
            acting_user=broker,
            agreed_by_name=plan.person.full_name,
            agreed_on=timezone.localdate(),
            icb_signatory=approver,
        )
    else:
        actor = (
            finance
            if name in ("start_setting_up", "activate", "suspend", "stop", "begin_final_audit", "close")
            else (coordinator if name in ("start_review", "finish_review") else broker)
        )
        services.plan_transition(plan=plan, name=name, acting_user=actor)
