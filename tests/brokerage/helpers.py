"""Builders for people and complete plans, shared by brokerage, budgets and browser tests."""

from __future__ import annotations

import datetime
import itertools
from decimal import Decimal

from django.utils import timezone
from djmoney.money import Money

from accounts.models import Organisation, OrganisationKind
from accounts.roles import Role
from brokerage import services
from brokerage.models import Capacity, Cohort, ManagementType, Person
from providers.models import Provider, ProviderKind, Service, ServiceCategory
from tests.factories import OrganisationFactory, user_with_role

_serial = itertools.count(1)


def make_nhs_number(serial: int) -> str:
    """A valid number in the 999 synthetic range (never a real person's)."""
    while True:
        digits = f"999{serial:06d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return digits + str(check)
        serial += 1


def icb(name="Test ICB") -> Organisation:
    return OrganisationFactory(name=name, kind=OrganisationKind.ICB)


def make_person(
    *, icb_org=None, staff=None, capacity=Capacity.HAS_CAPACITY, born=datetime.date(1960, 5, 17), **fields
) -> Person:
    icb_org = icb_org or icb()
    person = Person.objects.create(
        nhs_number=make_nhs_number(next(_serial) * 7919 % 999_999),
        given_name=fields.pop("given_name", "Joan"),
        family_name=fields.pop("family_name", "Robson"),
        date_of_birth=born,
        address="1 Grey Street, Newcastle",
        postcode="NE1 6AE",
        capacity=capacity,
        cohort=fields.pop("cohort", Cohort.CONTINUING_HEALTHCARE),
        icb=icb_org,
        health_monitor="Dr Patel, Grey Street Surgery",
        **fields,
    )
    for user in staff or []:
        person.assigned_staff.add(user)
    return person


def service(name, category, provider_name, *, cqc="", rate="20.00", unit="hour", kind=ProviderKind.AGENCY):
    provider, _ = Provider.objects.get_or_create(name=provider_name, defaults={"kind": kind, "cqc_registration": cqc})
    return Service.objects.create(
        provider=provider,
        category=ServiceCategory.objects.get(name=category),
        name=name,
        unit=unit,
        unit_rate=Money(Decimal(rate), "GBP"),
    )


def complete_plan(*, person: Person, broker, coordinator=None, contribution_pounds: int = 0):
    """A plan with every section filled and three lines, one of each management type (journey 1); the person's
    assessed contribution, if any, is part of the £12,000."""
    coordinator = coordinator or broker
    plan = services.plan_create(person=person, acting_user=broker)
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="about",
        about_me="Joan loves her garden and wants to stay at home with her husband.",
    )
    need = services.need_add(plan=plan, acting_user=broker, description="Help with washing and dressing each morning")
    breathing = services.need_add(plan=plan, acting_user=broker, description="Keep her lungs as strong as possible")
    at_home = services.outcome_add(plan=plan, acting_user=broker, description="Joan stays living at home", needs=[need])
    active = services.outcome_add(
        plan=plan, acting_user=broker, description="Joan can walk to the shops", needs=[breathing]
    )
    nursing = service(
        "District nursing visit", "Nursing care", "Northumbria Nursing", cqc="1-1000001", rate="58.00", unit="visit"
    )
    trust = OrganisationFactory(name="Tyneside Independent User Trust", kind=OrganisationKind.THIRD_PARTY_HOLDER)
    pa = service(
        "Personal assistant hours",
        "Personal assistant support",
        "Karen Dobson",
        rate="14.00",
        kind=ProviderKind.PERSONAL_ASSISTANT,
    )
    singing = service("Singing for lung health", "Leisure and wellbeing", "Harmony Singers", rate="6.00", unit="visit")
    services.line_add(
        plan=plan,
        acting_user=broker,
        description="District nursing",
        category=nursing.category,
        outcome=at_home,
        management_type=ManagementType.NOTIONAL,
        frequency="2 visits a week",
        quantity=Decimal("104"),
        unit_cost=nursing.unit_rate,
        service=nursing,
    )
    services.line_add(
        plan=plan,
        acting_user=broker,
        description="Personal assistant, mornings",
        category=pa.category,
        outcome=at_home,
        management_type=ManagementType.THIRD_PARTY,
        frequency="7 hours a week",
        quantity=Decimal("364"),
        unit_cost=pa.unit_rate,
        service=pa,
        third_party_holder=trust,
    )
    services.line_add(
        plan=plan,
        acting_user=broker,
        description="Singing for lung health",
        category=singing.category,
        outcome=active,
        management_type=ManagementType.DIRECT_PAYMENT,
        frequency="1 session a week",
        quantity=Decimal("50"),
        unit_cost=singing.unit_rate,
        service=singing,
    )
    # 104 x £58 + 364 x £14 + 50 x £6 = £6,032 + £5,096 + £300 = £11,428
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="budget",
        indicative_budget=Money(12000, "GBP"),
        budget=Money(12000, "GBP"),
        funding_icb=Money(12000 - contribution_pounds, "GBP"),
        funding_local_authority=Money(0, "GBP"),
        funding_contribution=Money(contribution_pounds, "GBP"),
    )
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="payments",
        payment_frequency="four_weekly",
        contingency_amount=Money(572, "GBP"),
        contingency_description="If Karen is ill, Tyne Home Care covers mornings.",
    )
    services.risk_add(
        plan=plan,
        acting_user=broker,
        risk="Falls in the bathroom",
        mitigation="Grab rails fitted; PA present for showers",
    )
    services.plan_update(
        plan=plan,
        acting_user=broker,
        section="coordination",
        care_coordinator=coordinator,
        health_monitor="Dr Patel, Grey Street Surgery",
        first_review_date=timezone.localdate() + datetime.timedelta(days=90),
        notice_period_days=28,
    )
    return plan


def team(icb_org=None):
    """A broker, a coordinator and two approvers in one ICB."""
    icb_org = icb_org or icb()
    return {
        "icb": icb_org,
        "broker": user_with_role(Role.CARE_BROKER, organisation=icb_org),
        "coordinator": user_with_role(Role.CARE_COORDINATOR, organisation=icb_org),
        "approver": user_with_role(Role.ICB_APPROVER, organisation=icb_org),
        "approver2": user_with_role(Role.ICB_APPROVER, organisation=icb_org),
    }


def agreed_crew(*, contribution_pounds: int = 0) -> dict:
    """A team, a person assigned to its broker and coordinator, and journey 1's plan submitted, approved and
    agreed: ready for its budget to be set up. Adds a finance officer of the same ICB."""
    from brokerage.services import plan_approve, plan_record_agreement, plan_submit

    crew = team()
    crew["person"] = make_person(icb_org=crew["icb"], staff=[crew["broker"], crew["coordinator"]])
    plan = complete_plan(
        person=crew["person"],
        broker=crew["broker"],
        coordinator=crew["coordinator"],
        contribution_pounds=contribution_pounds,
    )
    plan_submit(plan=plan, acting_user=crew["broker"])
    plan_approve(plan=plan, acting_user=crew["approver"])
    plan_record_agreement(
        plan=plan,
        acting_user=crew["broker"],
        agreed_by_name="Joan Robson",
        agreed_on=timezone.localdate(),
        icb_signatory=crew["approver"],
    )
    crew["plan"] = plan
    crew["finance"] = user_with_role(Role.FINANCE_OFFICER, organisation=crew["icb"])
    return crew
