"""Seed realistic demo data: each installed app with a `demo` module adds its own part, in app order.

Deterministic for a given --seed; sized by --people. Safe to run again: apps create what is missing.
"""

from __future__ import annotations

import random
from importlib import import_module
from importlib.util import find_spec

import pghistory
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Seed demo data for every app (deterministic, idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--people", type=int, default=50, help="how many people with plans and budgets")
        parser.add_argument("--seed", type=int, default=2026, help="random seed, for repeatable data")

    def handle(self, *args, people: int, seed: int, **options):
        context: dict = {}
        with transaction.atomic(), pghistory.context(source="seed_demo"):
            for app_name in settings.LOCAL_APPS:
                module_name = f"{app_name}.demo"
                if find_spec(module_name) is None:
                    continue
                # Each app gets its own stream of random numbers, so adding data to one app
                # does not change what another app seeds.
                rng = random.Random(f"{seed}:{app_name}")
                import_module(module_name).seed(rng=rng, people=people, context=context)
                self.stdout.write(f"seeded {app_name}")
