"""Factories for users and organisations, shared by every test folder."""

from __future__ import annotations

import factory

from accounts.models import Organisation, OrganisationKind, RoleMembership, User
from accounts.roles import Role

TEST_PASSWORD = "correct-horse-battery-staple"


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Test organisation {n}")
    kind = OrganisationKind.ICB
    ods_code = factory.Sequence(lambda n: f"T{n:04d}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.nhs.uk")
    # Without apostrophes: tests look for names in pages, where "O'Connor" is escaped (escaping is Jinja's own).
    full_name = factory.LazyFunction(lambda: factory.Faker._get_faker(locale="en_GB").name().replace("'", ""))
    organisation = factory.SubFactory(OrganisationFactory)
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        self.save()
        for role in extracted or []:
            RoleMembership.objects.create(user=self, role=role)


def user_with_role(role: Role, **kwargs) -> User:
    if role in (Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE):
        kwargs.setdefault("organisation", None)
    return UserFactory(roles=[role], **kwargs)


def issued_recovery(*, approved_by=None, today=None, **proposal):
    """A recovery notice written by `acting_user` and approved by someone else (rule 4): a finance manager of the
    budget's ICB unless `approved_by` is given."""
    from budgets import ending

    recovery = ending.recovery_propose(today=today, **proposal)
    if approved_by is None:
        approved_by = user_with_role(Role.FINANCE_MANAGER, organisation=proposal["budget"].plan.person.icb)
    return ending.recovery_approve(recovery=recovery, acting_user=approved_by, today=today)
