"""Service categories as reference data (DESIGN.md rule 10). Administrators change them in the admin; this
is only the starting list, including everything the regulations say a budget cannot buy."""

from __future__ import annotations

CATEGORIES = [
    # name, registration the provider must hold, description
    ("Personal care", "cqc", "Help with washing, dressing, eating and other personal care"),
    ("Nursing care", "cqc", "Care from a registered nurse, including district nursing"),
    ("Personal assistant support", "", "Support from a personal assistant employed by the person"),
    ("Therapy", "professional", "Physiotherapy, occupational therapy, speech and language therapy"),
    ("Counselling and talking therapies", "professional", "Counselling, psychotherapy and similar"),
    ("Respite and short breaks", "cqc", "Short stays or support that give carers a break"),
    ("Equipment and adaptations", "", "Equipment, aids and minor adaptations"),
    ("Leisure and wellbeing", "", "Gym membership, classes, music or singing lessons that meet an outcome"),
    ("Transport", "", "Travel to appointments and activities"),
    ("Day opportunities", "", "Day services and community activities"),
    ("Care home placement", "cqc", "Residential or nursing home care"),
    ("Employment costs", "", "Payroll, employer insurance and other costs of employing a personal assistant"),
]

PROHIBITED = [
    ("Alcohol", "Alcohol cannot be bought with a personal health budget"),
    ("Tobacco", "Tobacco cannot be bought with a personal health budget"),
    ("Gambling", "Gambling cannot be paid for with a personal health budget"),
    ("Debt repayment", "A personal health budget cannot repay debts"),
    ("Anything illegal", "A personal health budget cannot be spent on anything illegal"),
    ("Emergency care", "Emergency and urgent care are provided by the NHS, not bought from a budget"),
    ("GP services", "Primary medical (GP) services are provided by the NHS, not bought from a budget"),
    ("Services the NHS already provides", "Services the NHS already provides free cannot be bought from a budget"),
]


def ensure_service_categories(category_model=None) -> None:
    """Create any starting category that is missing; never changes one an administrator has edited."""
    if category_model is None:
        from providers.models import ServiceCategory as category_model
    existing = set(category_model.objects.values_list("name", flat=True))
    for name, registration, description in CATEGORIES:
        if name not in existing:
            category_model.objects.create(name=name, requires_registration=registration, description=description)
    for name, reason in PROHIBITED:
        if name not in existing:
            category_model.objects.create(name=name, is_prohibited=True, prohibited_reason=reason)
