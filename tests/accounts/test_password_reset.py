"""Password reset: the email is a job enqueued in the request's transaction and sent once by a real worker."""

import re
import threading

import pytest
from django.core import mail
from django.db import transaction
from django.urls import reverse
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.forms import QueuedPasswordResetForm
from accounts.roles import Role
from tests.factories import TEST_PASSWORD, user_with_role


def run_worker_until_idle() -> None:
    """A real Procrastinate worker on its own psycopg connection, stopping when the queue is empty. It runs in
    a thread of its own: Playwright may have left an event loop running in this one."""
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with app.replace_connector(app.connector.get_worker_connector()) as worker_app:
                worker_app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
        except BaseException as exc:  # re-raised in the test's thread below
            failures.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the worker did not stop when the queue was empty"
    if failures:
        raise failures[0]


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("empty_job_queue")
def test_reset_email_is_queued_then_delivered_exactly_once_by_a_worker(client):
    user = user_with_role(Role.PATIENT, email="joan@example.org")
    response = client.post(reverse("accounts:password-reset"), {"email": "joan@example.org"})
    assert response["Location"] == reverse("accounts:password-reset-done")

    # Nothing is sent in the request: the job waits in the queue.
    assert mail.outbox == []
    job = ProcrastinateJob.objects.get(task_name="accounts.send_email")
    assert job.status == "todo"

    run_worker_until_idle()
    run_worker_until_idle()  # a second worker pass finds nothing left to do

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["joan@example.org"]
    assert ProcrastinateJob.objects.get(pk=job.pk).status == "succeeded"

    # The emailed link works: it leads to a form that sets the new password.
    link = re.search(r"https?://[^/]+(/password-reset/[^\s]+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    new_password = "a-much-better-passphrase-2026"
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done["Location"] == reverse("accounts:password-reset-complete")
    user.refresh_from_db()
    assert user.check_password(new_password)


@pytest.mark.dblevel
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("empty_job_queue")
def test_a_rolled_back_request_leaves_no_job():
    user_with_role(Role.PATIENT, email="rollback@example.org")
    with pytest.raises(RuntimeError), transaction.atomic():
        form = QueuedPasswordResetForm({"email": "rollback@example.org"})
        assert form.is_valid()
        form.save(domain_override="testserver")
        assert ProcrastinateJob.objects.filter(task_name="accounts.send_email").count() == 1
        raise RuntimeError("the business transaction fails")
    assert ProcrastinateJob.objects.filter(task_name="accounts.send_email").count() == 0


@pytest.mark.django_db
def test_unknown_email_gets_the_same_answer_and_no_job(client):
    response = client.post(reverse("accounts:password-reset"), {"email": "nobody@example.org"})
    assert response["Location"] == reverse("accounts:password-reset-done")
    assert not ProcrastinateJob.objects.exists()


@pytest.mark.django_db
def test_invalid_email_shows_the_error_summary(client):
    page = client.post(reverse("accounts:password-reset"), {"email": "not an email"}).content.decode()
    assert "<title>Error: Reset your password" in page
    assert "Enter an email address in the correct format" in page


@pytest.mark.django_db
def test_a_used_or_forged_link_explains_it_has_expired(client):
    user = user_with_role(Role.PATIENT)
    response = client.get(f"/password-reset/{user.pk}/forged-token/")
    assert "This link has expired" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)
