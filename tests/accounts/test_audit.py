"""django-pghistory records changes to users, organisations and roles, with the acting user attached."""

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError
from django.urls import reverse

from accounts.models import RoleMembership, User
from accounts.roles import Role
from tests.factories import OrganisationFactory, user_with_role

pytestmark = [pytest.mark.django_db, pytest.mark.dblevel]


def test_an_administrators_change_is_recorded_with_who_made_it(client):
    admin = user_with_role(Role.ADMINISTRATOR, is_staff=True, is_superuser=True)
    target = user_with_role(Role.CARE_BROKER, full_name="Before Name")
    client.force_login(admin)
    response = client.post(
        reverse("admin:accounts_user_change", args=[target.pk]),
        {
            "email": target.email,
            "full_name": "After Name",
            "organisation": target.organisation_id,
            "is_active": "on",
            "role_memberships-TOTAL_FORMS": "1",
            "role_memberships-INITIAL_FORMS": "1",
            "role_memberships-MIN_NUM_FORMS": "0",
            "role_memberships-MAX_NUM_FORMS": "1000",
            "role_memberships-0-id": target.role_memberships.get().pk,
            "role_memberships-0-user": target.pk,
            "role_memberships-0-role": Role.CARE_BROKER,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = target.events.order_by("pgh_id").last()
    assert event.full_name == "After Name"
    assert event.pgh_label == "update"
    assert event.pgh_context.metadata["user"] == admin.pk
    assert event.pgh_context.metadata["url"] == reverse("admin:accounts_user_change", args=[target.pk])


def test_every_create_and_change_is_tracked():
    organisation = OrganisationFactory(name="Old name")
    organisation.name = "New name"
    organisation.save()
    user = user_with_role(Role.AUDITOR, organisation=organisation)
    User.objects.filter(pk=user.pk).update(full_name="Changed in bulk")  # bulk updates are caught too
    RoleMembership.objects.filter(user=user).delete()

    assert [e.name for e in organisation.events.order_by("pgh_id")] == ["Old name", "New name"]
    assert list(user.events.order_by("pgh_id").values_list("pgh_label", "full_name"))[-1] == (
        "update",
        "Changed in bulk",
    )
    membership_events = RoleMembership.pgh_event_model.objects.filter(user_id=user.pk).order_by("pgh_id")
    assert [e.pgh_label for e in membership_events] == ["insert", "delete"]


def test_password_hashes_are_not_copied_into_the_audit_trail():
    user = user_with_role(Role.PATIENT)
    assert not hasattr(user.events.first(), "password")


@pytest.mark.parametrize("statement", ["UPDATE {table} SET full_name = 'x'", "DELETE FROM {table}"])
def test_audit_rows_cannot_be_altered(statement):
    user_with_role(Role.PATIENT)
    table = User.pgh_event_model._meta.db_table
    with (
        pytest.raises(ProgrammingError, match="Cannot update or delete"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement.format(table=table))
