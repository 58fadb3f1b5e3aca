"""Periodic jobs, declared in one place. Each is small or calls a task that lives in its own app.

Procrastinate defers a periodic task once per schedule slot across all workers (the slot is recorded
in its own table), so running several workers never runs the same tick twice.
"""

from django.contrib.sessions.models import Session
from django.utils import timezone
from procrastinate.contrib.django import app


@app.periodic(cron="17 3 * * *", periodic_id="clear-expired-sessions")
@app.task(name="config.clear_expired_sessions", queue="maintenance")
def clear_expired_sessions(timestamp: int) -> int:
    """Sessions hold who is signed in; expired ones are useless and should not linger."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
