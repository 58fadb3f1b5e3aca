"""Demo providers across the North East with realistic services and 2026 rates."""

from __future__ import annotations

import random
from decimal import Decimal

from djmoney.money import Money

from providers.models import Provider, ProviderKind, Service, ServiceCategory

AREAS = ["Newcastle", "Gateshead", "North Tyneside", "South Tyneside", "Sunderland", "Northumberland"]

# name, kind, area index, CQC number or "", [(service, category, unit, rate in pounds)]
PROVIDERS = [
    (
        "Tyne Home Care Ltd",
        ProviderKind.AGENCY,
        0,
        "1-101234567",
        [
            ("Personal care visit", "Personal care", "hour", "27.40"),
            ("Night sitting", "Personal care", "hour", "24.10"),
        ],
    ),
    (
        "Northumbria District Nursing",
        ProviderKind.COMMUNITY_SERVICE,
        5,
        "1-102345678",
        [("District nursing visit", "Nursing care", "visit", "58.00")],
    ),
    (
        "Quayside Physiotherapy",
        ProviderKind.COMMUNITY_SERVICE,
        0,
        "",
        [("Physiotherapy session", "Therapy", "visit", "55.00")],
    ),
    (
        "Riverside Care Home",
        ProviderKind.CARE_HOME,
        1,
        "1-103456789",
        [("Respite stay", "Respite and short breaks", "week", "1150.00")],
    ),
    (
        "Sunderland Carers Centre",
        ProviderKind.VOLUNTARY_ORGANISATION,
        4,
        "",
        [("Carer support group", "Day opportunities", "visit", "12.00")],
    ),
    (
        "Tyneside Leisure Trust",
        ProviderKind.OTHER,
        2,
        "",
        [
            ("Gym membership", "Leisure and wellbeing", "week", "7.50"),
            ("Hydrotherapy pool session", "Leisure and wellbeing", "visit", "9.00"),
        ],
    ),
    (
        "Coast Community Transport",
        ProviderKind.VOLUNTARY_ORGANISATION,
        3,
        "",
        [("Accessible minibus journey", "Transport", "item", "14.00")],
    ),
    (
        "Mobility Plus North",
        ProviderKind.OTHER,
        1,
        "",
        [("Riser recliner chair", "Equipment and adaptations", "item", "695.00")],
    ),
    (
        "Harmony Singing Group",
        ProviderKind.VOLUNTARY_ORGANISATION,
        0,
        "",
        [("Singing for lung health", "Leisure and wellbeing", "visit", "6.00")],
    ),
    (
        "Payroll for PAs CIC",
        ProviderKind.OTHER,
        0,
        "",
        [("Payroll and employer liability insurance", "Employment costs", "week", "6.25")],
    ),
]

PERSONAL_ASSISTANTS = [
    "Karen Dobson",
    "Lee Armstrong",
    "Grace Nwosu",
    "Paul Hetherington",
    "Fatima Begum",
    "Steven Milburn",
]


def seed(*, rng: random.Random, people: int, context: dict) -> None:
    categories = {c.name: c for c in ServiceCategory.objects.all()}
    providers = []
    for name, kind, area, cqc, services in PROVIDERS:
        provider, created = Provider.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "area": AREAS[area],
                "cqc_registration": cqc,
                "email": f"accounts@{name.lower().replace(' ', '').replace('.', '')[:20]}.example",
                "sort_code": f"{rng.randint(10, 99)}{rng.randint(10, 99)}{rng.randint(10, 99)}",
                "account_number": f"{rng.randint(0, 99_999_999):08d}",
                "account_name": name.upper()[:18],
                "stripe_account_id": f"acct_demo{rng.randint(10**6, 10**7)}" if rng.random() < 0.4 else "",
            },
        )
        if created:
            for service_name, category, unit, rate in services:
                Service.objects.create(
                    provider=provider,
                    category=categories[category],
                    name=service_name,
                    unit=unit,
                    unit_rate=Money(Decimal(rate), "GBP"),
                )
        providers.append(provider)
    for index, name in enumerate(PERSONAL_ASSISTANTS):
        provider, created = Provider.objects.get_or_create(
            name=name,
            defaults={
                "kind": ProviderKind.PERSONAL_ASSISTANT,
                "area": AREAS[index % len(AREAS)],
                "sort_code": f"{rng.randint(10, 99)}{rng.randint(10, 99)}{rng.randint(10, 99)}",
                "account_number": f"{rng.randint(0, 99_999_999):08d}",
                "account_name": name.upper()[:18],
            },
        )
        if created:
            Service.objects.create(
                provider=provider,
                category=categories["Personal assistant support"],
                name="Personal assistant hours",
                unit="hour",
                unit_rate=Money(Decimal(rng.choice(["13.50", "14.00", "14.75", "15.20"])), "GBP"),
            )
        providers.append(provider)
    context["providers"] = providers
