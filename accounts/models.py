"""People who sign in, the organisations they work for, and the roles they hold."""

from __future__ import annotations

import pghistory
import rules
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.roles import DASHBOARD_PRECEDENCE, Role


class OrganisationKind(models.TextChoices):
    ICB = "icb", "Integrated care board"
    LOCAL_AUTHORITY = "local_authority", "Local authority"
    THIRD_PARTY_HOLDER = "third_party_holder", "Third-party budget holder"
    PROVIDER = "provider", "Provider"
    SUPPORT_ORGANISATION = "support_organisation", "Support organisation"


@pghistory.track(append_only=True)
class Organisation(models.Model):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=OrganisationKind.choices)
    ods_code = models.CharField(
        "ODS code", max_length=10, blank=True, help_text="Organisation Data Service code, where it has one"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["ods_code"], condition=~models.Q(ods_code=""), name="organisation_ods_code_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(ods_code=models.functions.Upper("ods_code")),
                name="organisation_ods_code_upper",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.ods_code = self.ods_code.strip().upper()
        super().save(*args, **kwargs)


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        if not email:
            raise ValueError("A user needs an email address")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        fields.update(is_staff=True, is_superuser=True)
        user = self.create_user(email, password, **fields)
        RoleMembership.objects.get_or_create(user=user, role=Role.ADMINISTRATOR)
        return user

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email__iexact=username)


@pghistory.track(exclude=["password", "last_login"], append_only=True)
class User(AbstractBaseUser, PermissionsMixin):
    """Anyone who signs in: staff, patients, representatives and nominees. Signs in by email."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="users"
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May use the administration site")
    date_joined = models.DateTimeField(default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["full_name"]
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def roles(self) -> frozenset[str]:
        """The user's roles, cached on the instance: permission checks call this many times a request."""
        if not hasattr(self, "_roles_cache"):
            self._roles_cache = frozenset(self.role_memberships.values_list("role", flat=True))
        return self._roles_cache

    def has_perm(self, perm: str, obj=None) -> bool:
        # The service's own permissions are rules about roles and records (the apps' rules.py): a superuser holds
        # them only through their roles. Being a superuser opens the admin site, not everyone's care records.
        if self.is_active and self.is_superuser and rules.perm_exists(perm):
            return rules.has_perm(perm, self, obj)
        return super().has_perm(perm, obj)

    def has_role(self, *roles: str) -> bool:
        return self.is_active and bool(self.roles.intersection(roles))

    @property
    def primary_role(self) -> Role | None:
        for role in DASHBOARD_PRECEDENCE:
            if role in self.roles:
                return role
        return None


@pghistory.track(pghistory.InsertEvent(), pghistory.DeleteEvent(), append_only=True)
class RoleMembership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    granted_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["user", "role"]
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="role_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()}"


SCHEDULED_JOBS_EMAIL = "scheduled-jobs@phb.invalid"


def scheduled_jobs_user() -> User:
    """Who scheduled jobs act as, so their records name someone: an account that can never sign in (inactive, no
    usable password, no roles)."""
    user, _ = User.objects.get_or_create(
        email=SCHEDULED_JOBS_EMAIL, defaults={"full_name": "Scheduled jobs", "is_active": False, "password": "!"}
    )
    return user
