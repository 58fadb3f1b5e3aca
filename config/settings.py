"""Settings for every environment, driven by environment variables.

Development defaults are safe on a laptop (DEBUG on, embedded PostgreSQL, console email). Production sets
DJANGO_DEBUG=false, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and DATABASE_URL; with DEBUG off every
security setting below hardens itself and `manage.py check --deploy` is clean.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-change-me-" + "x" * 32

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SERVICE_NAME = "Personal health budgets"

# Our own apps, in dependency order (DESIGN.md §3): leaves first.
LOCAL_APPS = ["accounts", "ledger", "providers", "brokerage", "budgets"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rules.apps.AutodiscoverRulesConfig",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "procrastinate.contrib.django",
    "djmoney",
    "django_fsm",
    "rest_framework",
    "drf_spectacular",
    *LOCAL_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.access_log.AccessDenialLogMiddleware",  # every 403/404 to a signed-in user, every API refusal
    "accounts.middleware.IdleSessionMiddleware",
    # Marks request.user verified when this session passed a one-time code; then staff who approve or move money
    # reach nothing else until they have (accounts/middleware.py).
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.TwoFactorRequiredMiddleware",
    "pghistory.middleware.HistoryMiddleware",
    "brokerage.view_audit.RecordViewMiddleware",  # who read whose record (R9); fails closed with a 503
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        # Pages use NHS.UK frontend's Jinja templates; the admin keeps Django templates (below).
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "config.jinja2.environment"},
    },
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: DATABASE_URL, or the embedded PostgreSQL under var/ -------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    from config.embedded import ensure_server

    DATABASE_URL = ensure_server()
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
# The JIT only slows the small, indexed queries this app runs.
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
# A read replica for reports and exports (config/db_router.py): DATABASE_REPLICA_URL, e.g. a PostgreSQL streaming
# replica. Unset, the 'replica' alias is the primary itself and no read is sent there.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
REPORTS_READ_FROM_REPLICA = bool(DATABASE_REPLICA_URL)
DATABASES["replica"] = dj_database_url.parse(DATABASE_REPLICA_URL or DATABASE_URL, conn_max_age=0)
DATABASES["replica"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # tests read the test database through it
DATABASE_ROUTERS = ["config.db_router.ReportReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Users, sign-in and sessions ---------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:sign-in"
LOGIN_REDIRECT_URL = "accounts:dashboard"
LOGOUT_REDIRECT_URL = "accounts:sign-in"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = 60 * 60  # one hour

# Idle timeout: the session ends after this many seconds without a request; the page warns
# SESSION_WARNING_SECONDS before and lets the person stay signed in (WCAG 2.2.1).
SESSION_IDLE_SECONDS = int(os.environ.get("SESSION_IDLE_SECONDS", 30 * 60))
SESSION_WARNING_SECONDS = int(os.environ.get("SESSION_WARNING_SECONDS", 2 * 60))
SESSION_COOKIE_AGE = 12 * 60 * 60  # absolute limit
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"

AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = 0.5  # hours
# Lock the account wherever the attempts come from; the (ip, username) pair adds nothing but satisfies axes.W006
# without locking out a whole NHS site behind one shared address.
AXES_LOCKOUT_PARAMETERS = ["username", ["ip_address", "username"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.jinja"
AXES_VERBOSE = False

# Multi-factor authentication (R8): staff who approve or move money (accounts.roles.MFA_ROLES, and anyone who can use
# the admin site) enter a 6-digit code from an authenticator app (TOTP, django-otp) after their password; the first
# time, they set the app up. Off only for a local experiment: MFA_REQUIRED=false.
MFA_REQUIRED = env_bool("MFA_REQUIRED", True)
OTP_TOTP_ISSUER = SERVICE_NAME  # the name authenticator apps show beside the code
# Wrong codes wait 1, 2, 4, 8... seconds before the next try (django-otp's throttle, kept on the device), and count
# towards the axes lockout above like wrong passwords.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin can remove someone's authenticator (to reset it), never read its key

# --- Security headers; all strict unless DEBUG ---------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 0 if DEBUG else int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": ["'none'"],
        "base-uri": [SELF],
        "object-src": ["'none'"],
    },
}

# --- Static files: NHS.UK frontend is copied from node_modules into static/ at set-up ---------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads (receipts, statements) live outside the web root and are served only through views.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))

# --- Email: console in development; SMTP in production through EMAIL_URL-style variables ----------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", 25))
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Personal health budgets <no-reply@phb.nhs.example>")
# Links in emails that workers send (no request to take the host from), e.g. "your statement is ready".
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

# --- Jobs (Procrastinate): tasks live in each app's tasks.py; periodic ones in config/tasks.py -----
PROCRASTINATE_IMPORT_PATHS = ["config.tasks"]
# Each worker records a heartbeat; a job whose worker has missed them for PROCRASTINATE_STALLED_SECONDS (it was
# killed, or its machine lost) is put back in the queue by config.tasks.retry_stalled_jobs, run on this schedule
# (a 6th cron field counts seconds). The stalled time must stay well above the heartbeat interval.
PROCRASTINATE_HEARTBEAT_SECONDS = float(os.environ.get("PROCRASTINATE_HEARTBEAT_SECONDS", 10))
PROCRASTINATE_STALLED_SECONDS = float(os.environ.get("PROCRASTINATE_STALLED_SECONDS", 60))
PROCRASTINATE_STALLED_CRON = os.environ.get("PROCRASTINATE_STALLED_CRON", "* * * * *")
PROCRASTINATE_WORKER_DEFAULTS = {
    "update_heartbeat_interval": PROCRASTINATE_HEARTBEAT_SECONDS,
    "stalled_worker_timeout": PROCRASTINATE_STALLED_SECONDS,
}

# --- Paying out: the ICB's BACS originator details (issued by its sponsoring bank) -----------------------
BACS_ORIGINATOR = {
    "service_user_number": os.environ.get("BACS_SERVICE_USER_NUMBER", "123456"),
    "name": os.environ.get("BACS_ORIGINATOR_NAME", "NHS ICB PHB"),
    "sort_code": os.environ.get("BACS_SORT_CODE", "309950"),
    "account_number": os.environ.get("BACS_ACCOUNT_NUMBER", "00733445"),
}

# Rule 14/15: a direct-payment account holding more than this many weeks of scheduled spend is in surplus.
SURPLUS_WEEKS = int(os.environ.get("SURPLUS_WEEKS", 8))

# --- Monitoring: statutory periods and local choices, with the defaults of the domain notes ---------------
# Rule 13: health direct payments are first reviewed within 3 months of the first payment, social-care ones
# within 6; then at least every 12 months.
REVIEW_FIRST_MONTHS_HEALTH = int(os.environ.get("REVIEW_FIRST_MONTHS_HEALTH", 3))
REVIEW_FIRST_MONTHS_SOCIAL_CARE = int(os.environ.get("REVIEW_FIRST_MONTHS_SOCIAL_CARE", 6))
REVIEW_INTERVAL_MONTHS = int(os.environ.get("REVIEW_INTERVAL_MONTHS", 12))
# Rule 20: returns each quarter, due some days after the quarter ends; late ones escalate after these many days
# (a reminder, then the coordinator, then a review).
RETURN_PERIOD_MONTHS = int(os.environ.get("RETURN_PERIOD_MONTHS", 3))
RETURN_DUE_DAYS = int(os.environ.get("RETURN_DUE_DAYS", 28))
RETURN_ESCALATION_DAYS = tuple(int(d) for d in os.environ.get("RETURN_ESCALATION_DAYS", "7,21,42").split(","))

# --- Payments gateway (budgets/payments.py): Stripe, or the in-memory fake --------------------------------
# With no real secret key in the environment, Stripe calls go to a local localstripe server
# (`python -m config.localstripe_server --port 8420`), never to api.stripe.com.
PAYMENTS_GATEWAY = os.environ.get("PAYMENTS_GATEWAY", "stripe")
_STRIPE_KEY_FROM_ENV = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_SECRET_KEY = _STRIPE_KEY_FROM_ENV or "sk_test_local"
STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_local")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE") or (
    None if _STRIPE_KEY_FROM_ENV not in ("", "sk_test_local") else "http://127.0.0.1:8420"
)
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_local_demo")
# --- end payments gateway -------------------------------------------------------------------------------------

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Personal health budgets API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # A plan's status appears in two components (a plan in a list, and one plan): one name for its choices.
    "ENUM_NAME_OVERRIDES": {"PlanStatusEnum": "brokerage.models.PlanStatus"},
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
        "phb.security": {"handlers": ["console"], "level": "INFO"},
        "phb.access": {"handlers": ["console"], "level": "INFO"},  # refusals (config/access_log.py)
        "procrastinate": {"handlers": ["console"], "level": "WARNING"},
    },
}
