"""Print the security code a demo user's authenticator app would show now, for signing in to the demo."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import demo_device
from accounts.mfa import acceptable_code
from accounts.models import User


class Command(BaseCommand):
    help = "Print the current security code for a demo user (demo only: refuses when DEBUG is off)."

    def add_arguments(self, parser):
        parser.add_argument("email", help="a demo sign-in, e.g. finance@demo.phb.example")

    def handle(self, *args, email: str, **options):
        # Codes are a second factor: printing them is only for the local demo, never a real service.
        if not settings.DEBUG:
            raise CommandError("demo_code only works in the local demo (DJANGO_DEBUG on).")
        user = User.objects.filter(email__iexact=email.strip()).first()
        device = demo_device(user) if user is not None else None
        if device is None:
            raise CommandError(f"{email} is not a demo user with a demo authenticator app.")
        code = acceptable_code(device)
        if code is None:
            raise CommandError("The last codes were just used; run this again in 30 seconds.")
        self.stdout.write(code)
