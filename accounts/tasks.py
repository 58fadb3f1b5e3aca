"""Jobs run by the Procrastinate worker."""

from __future__ import annotations

from django.core.mail import EmailMessage
from procrastinate.contrib.django import app


@app.task(name="accounts.send_email", queue="email", retry=3)
def send_email(*, subject: str, body: str, to: list[str]) -> None:
    EmailMessage(subject=subject, body=body, to=to).send()
