"""Multi-factor authentication (R8): who needs a one-time code, their authenticator device, and checking a code.

Built on django-otp: a confirmed TOTPDevice is someone's authenticator app; `django_otp.login` marks the session
verified and OTPMiddleware exposes that as `request.user.is_verified()`.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import django_otp
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import hotp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import MFA_ROLES

DEVICE_NAME = "Authenticator app"


def needs_two_factor(user) -> bool:
    """Staff who approve or move money, and anyone who can use the admin site, must enter a code after the password."""
    if not settings.MFA_REQUIRED or not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_staff or user.is_superuser or user.roles & MFA_ROLES)


def is_verified(user) -> bool:
    """True when this session has passed a code (set by OTPMiddleware from the session)."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def has_confirmed_device(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def next_step_url(user, next_url: str = "") -> str:
    """The code page for someone with an authenticator app, else the page that sets one up; `next` carried along."""
    name = "accounts:sign-in-code" if has_confirmed_device(user) else "accounts:two-factor"
    url = reverse(name)
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def unconfirmed_device(user) -> TOTPDevice:
    """The device being set up: the same one (and so the same secret) every time the set-up page is shown."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def secret_base32(device: TOTPDevice) -> str:
    """The secret as people type it into an app: base32, in groups of four."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_code_data_uri(text: str) -> str:
    """An SVG QR code as a data: URI for an <img> (the CSP allows data: images; no inline script or style)."""
    import qrcode
    import qrcode.image.svg

    out = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathFillImage, border=4).save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    wait_seconds: int = 0  # > 0 when django-otp's throttle refused to check at all


def check_code(request, device: TOTPDevice, code: str) -> CodeCheck:
    """Verify a code against one device (its throttle and replay protection apply); a wrong or throttled code counts
    as a failed sign-in for axes, so repeated wrong codes lock the account like wrong passwords. While the account is
    locked even the right code is refused; `request.axes_locked_out` then tells AxesMiddleware to say so."""
    credentials = {settings.AXES_USERNAME_FORM_FIELD: request.user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        request.axes_locked_out = True
        request.axes_credentials = credentials
        return CodeCheck(ok=False)
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        allowed, info = locked.verify_is_allowed()
        if not allowed:
            wait = 0
            if info and info.get("locked_until"):
                wait = max(1, int((info["locked_until"] - timezone.now()).total_seconds() + 0.999))
            result = CodeCheck(ok=False, wait_seconds=wait or 1)
        else:
            result = CodeCheck(ok=bool(django_otp.verify_token(request.user, locked.persistent_id, code)))
    if result.ok:
        device.refresh_from_db()
        return result
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    return result


def confirm_device(request, device: TOTPDevice) -> None:
    """The code matched the device being set up: it becomes the person's authenticator, and this session is verified."""
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=device.user, confirmed=False).exclude(pk=device.pk).delete()
    mark_verified(request, device)


def mark_verified(request, device: TOTPDevice) -> None:
    # A new session key at the step up in privilege, as at sign-in (session fixation).
    request.session.cycle_key()
    django_otp.login(request, device)


def acceptable_code(device: TOTPDevice, now: float | None = None) -> str | None:
    """A code the device accepts now: the one an app shows at this moment, or if that was just used (django-otp accepts
    each time step once) a later one still inside the tolerance window. None when those are used up too: the next
    step, within 30 seconds, brings a new one. For the demo's `demo_code` and for tests."""
    now = time.time() if now is None else now
    current = int(now - device.t0) // device.step + device.drift
    for t in range(current, current + device.tolerance + 1):
        if t > device.last_t:
            return f"{hotp(device.bin_key, t, digits=device.digits):0{device.digits}d}"
    return None
