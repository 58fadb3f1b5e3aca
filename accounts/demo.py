"""Demo data for users, organisations and roles: one sign-in per role, all sharing DEMO_PASSWORD; the staff who
approve or move money also share one authenticator secret (DEMO_TOTP_SECRET) for their security code."""

from __future__ import annotations

import base64
import random

from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, OrganisationKind, RoleMembership, User
from accounts.roles import MFA_ROLES, Role

DEMO_PASSWORD = "demo-phb-2026"  # noqa: S105 - printed by the run command; demo data only
DEMO_DOMAIN = "demo.phb.example"
# 20 bytes, as authenticator apps expect; printed (base32) by the run command for adding to an app. Demo data only.
DEMO_TOTP_KEY = b"phb-demo-totp-secret"
DEMO_TOTP_SECRET = base64.b32encode(DEMO_TOTP_KEY).decode()
DEMO_DEVICE_NAME = "Demo authenticator"

ORGANISATIONS = [
    ("icb", "NHS North East and North Cumbria Integrated Care Board", OrganisationKind.ICB, "QHM"),
    ("la", "Newcastle City Council", OrganisationKind.LOCAL_AUTHORITY, "E08000021"),
    ("trust", "Tyneside Independent User Trust", OrganisationKind.THIRD_PARTY_HOLDER, ""),
    ("support", "Direct Payments Support North East", OrganisationKind.SUPPORT_ORGANISATION, ""),
]

# (role, email local part, full name, organisation key or None)
DEMO_USERS = [
    (Role.CARE_BROKER, "broker", "Priya Shah", "icb"),
    (Role.CARE_COORDINATOR, "coordinator", "Tom Elliott", "icb"),
    (Role.ICB_APPROVER, "approver", "Dr Helen Marsh", "icb"),
    (Role.PATIENT, "patient", "Joan Robson", None),
    (Role.REPRESENTATIVE, "representative", "Michael Robson", None),
    (Role.NOMINEE, "nominee", "Aisha Khan", None),
    (Role.THIRD_PARTY_STAFF, "thirdparty", "Gary Lister", "trust"),
    (Role.FINANCE_OFFICER, "finance", "Sam Okafor", "icb"),
    (Role.FINANCE_MANAGER, "financemanager", "Rachel Dunn", "icb"),
    (Role.AUDITOR, "auditor", "Ian Fairbairn", "icb"),
    (Role.ADMINISTRATOR, "admin", "Lucy Chambers", "icb"),
]


def demo_email(local_part: str) -> str:
    return f"{local_part}@{DEMO_DOMAIN}"


def seed(*, rng: random.Random, people: int, context: dict) -> None:
    organisations = {}
    for key, name, kind, ods in ORGANISATIONS:
        organisations[key], _ = Organisation.objects.get_or_create(name=name, defaults={"kind": kind, "ods_code": ods})
    users = {}
    for role, local_part, full_name, org_key in DEMO_USERS:
        user = User.objects.filter(email=demo_email(local_part)).first()
        if user is None:
            user = User.objects.create_user(
                demo_email(local_part),
                DEMO_PASSWORD,
                full_name=full_name,
                organisation=organisations.get(org_key),
                is_staff=role == Role.ADMINISTRATOR,
                is_superuser=role == Role.ADMINISTRATOR,
            )
        RoleMembership.objects.get_or_create(user=user, role=role)
        if role in MFA_ROLES:
            TOTPDevice.objects.get_or_create(
                user=user, name=DEMO_DEVICE_NAME, defaults={"key": DEMO_TOTP_KEY.hex(), "confirmed": True}
            )
        users[role] = user
    context["organisations"] = organisations
    context["users"] = users


def sign_ins() -> list[tuple[str, str]]:
    return [(role.label, demo_email(local_part)) for role, local_part, _name, _org in DEMO_USERS]


def is_demo_user(user) -> bool:
    return user.email in {demo_email(local_part) for _role, local_part, _name, _org in DEMO_USERS}


def demo_device(user) -> TOTPDevice | None:
    """The demo authenticator of a demo user who needs a code; None for anyone else (never a real person's)."""
    if not is_demo_user(user):
        return None
    return TOTPDevice.objects.filter(user=user, name=DEMO_DEVICE_NAME, key=DEMO_TOTP_KEY.hex(), confirmed=True).first()
