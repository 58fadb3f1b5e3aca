"""The roles people hold in the service, and where each lands after signing in."""

from django.db import models


class Role(models.TextChoices):
    CARE_BROKER = "care_broker", "Care broker"
    CARE_COORDINATOR = "care_coordinator", "Care coordinator"
    ICB_APPROVER = "icb_approver", "ICB approver"
    PATIENT = "patient", "Patient"
    REPRESENTATIVE = "representative", "Representative"
    NOMINEE = "nominee", "Nominee"
    THIRD_PARTY_STAFF = "third_party_staff", "Third-party holder staff"
    FINANCE_OFFICER = "finance_officer", "Finance officer"
    FINANCE_MANAGER = "finance_manager", "Finance manager"
    AUDITOR = "auditor", "Auditor"
    ADMINISTRATOR = "administrator", "Administrator"


# The order decides which dashboard someone with several roles lands on: the most powerful staff role first.
DASHBOARD_PRECEDENCE = [
    Role.ADMINISTRATOR,
    Role.FINANCE_MANAGER,
    Role.FINANCE_OFFICER,
    Role.ICB_APPROVER,
    Role.CARE_COORDINATOR,
    Role.CARE_BROKER,
    Role.THIRD_PARTY_STAFF,
    Role.AUDITOR,
    Role.REPRESENTATIVE,
    Role.NOMINEE,
    Role.PATIENT,
]

FINANCE_ROLES = frozenset({Role.FINANCE_OFFICER, Role.FINANCE_MANAGER})
PERSON_ROLES = frozenset({Role.PATIENT, Role.REPRESENTATIVE, Role.NOMINEE})
STAFF_ROLES = frozenset(Role) - PERSON_ROLES
# Staff who approve or move money (R8): after their password they must enter a code from an authenticator app.
MFA_ROLES = frozenset({Role.ICB_APPROVER, Role.FINANCE_OFFICER, Role.FINANCE_MANAGER, Role.ADMINISTRATOR})
