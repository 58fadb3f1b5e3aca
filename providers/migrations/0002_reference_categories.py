"""Service categories as reference data (DESIGN.md rule 10). Administrators change them in the admin; this
migration only seeds the starting list, including everything the regulations say a budget cannot buy."""

from django.db import migrations

CATEGORIES = [
    # name, requires registration, description
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


def seed(apps, schema_editor):
    category = apps.get_model("providers", "ServiceCategory")
    for name, registration, description in CATEGORIES:
        category.objects.get_or_create(
            name=name, defaults={"requires_registration": registration, "description": description}
        )
    for name, reason in PROHIBITED:
        category.objects.get_or_create(name=name, defaults={"is_prohibited": True, "prohibited_reason": reason})


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_providers")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
