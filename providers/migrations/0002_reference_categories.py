"""Seeds the starting list of service categories (see providers/reference.py)."""

from django.db import migrations


def seed(apps, schema_editor):
    from providers.reference import ensure_service_categories

    ensure_service_categories(apps.get_model("providers", "ServiceCategory"))


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_providers")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
