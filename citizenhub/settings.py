"""CitizenHub settings: the one place configuration is read, all of it from the environment."""

from __future__ import annotations

from pathlib import Path

from celery.schedules import crontab
from kombu import Queue

from citizenhub.env import (
    EnvironmentConfigError,
    database_from_env,
    env_bool,
    env_int,
    env_list,
    env_str,
    redis_url_from_env,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core ---------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", default=False)

_INSECURE_DEV_KEY = "django-insecure-citizenhub-development-only-never-deploy-this"
SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise EnvironmentConfigError(
            "SECRET_KEY", "must be set when DEBUG is off (use a long random string)"
        )
    SECRET_KEY = _INSECURE_DEV_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "citizenhub",
    "channels.apps.ChannelsConfig",
    "engagement",
    "democracy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "citizenhub.middleware.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "citizenhub.portal.language.ResidentLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "citizenhub.staff.middleware.StaffMfaRequiredMiddleware",
]

ROOT_URLCONF = "citizenhub.urls"
WSGI_APPLICATION = "citizenhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "citizenhub.context_processors.council",
            ],
        },
    },
]

# --- Data ---------------------------------------------------------------------------------
DATABASES = {"default": database_from_env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if not IS_POSTGRES:
    # SQLite is the zero-setup demo database; a busy timeout keeps the in-process worker
    # and the web process from failing on each other's short write locks.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0

REDIS_URL = redis_url_from_env("REDIS_URL")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "citizenhub"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth ---------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
LOGIN_REDIRECT_URL = "/"
# Staff sign in with a password and an authenticator app (TOTP); residents may add one.
# Passkeys/security keys (WebAuthn, through fido2) are a second factor too, not a password
# replacement; adding one needs JavaScript, so TOTP stays the way that works without it.
# Recovery codes are the way back in when the phone is lost.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
# Accept the code of the 30-second step either side of now (RFC 6238 section 5.2): a phone
# a few seconds out, or a code typed as the step turns over, is not a failed sign-in.
MFA_TOTP_TOLERANCE = 1
# Staff pages (/staff/) and session use of the API (/api/v1/) need TOTP set up first
# (citizenhub.staff.middleware); API tokens of integration accounts are not affected.
STAFF_MFA_REQUIRED = env_bool("STAFF_MFA_REQUIRED", default=True)

# --- Internationalisation -----------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
LANGUAGES = [("en", "English"), ("cy", "Cymraeg")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# GOV.UK Frontend, HTMX and Chart.js are npm packages (package.json, `make install`), served
# by the app itself from node_modules under these prefixes; nothing loads from a CDN.
# govuk-frontend.citizenhub.min.css is the package's CSS with its /assets/ font and image
# URLs made relative (package.json's postinstall), so they resolve under STATIC_URL too.
NODE_MODULES_DIR = BASE_DIR / "node_modules"
FRONTEND_PACKAGE_DIRS = [
    ("govuk", NODE_MODULES_DIR / "govuk-frontend" / "dist" / "govuk"),
    ("vendor/htmx", NODE_MODULES_DIR / "htmx.org" / "dist"),
    ("vendor/chartjs", NODE_MODULES_DIR / "chart.js" / "dist"),
]
# Without node_modules the app still starts (management commands, API, health checks) and
# pages are unstyled; the system check citizenhub.W001 says so (citizenhub/apps.py).
STATICFILES_DIRS = [(prefix, path) for prefix, path in FRONTEND_PACKAGE_DIRS if path.is_dir()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

# --- Security (production when DEBUG is off) ----------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Sessions are read from the cache (Redis in production) and written through to the
# database, so a restart of Redis signs nobody out and a page view costs no session query.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
if not DEBUG:
    # The load balancer terminates TLS and says so in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and the Prometheus scraper speak plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Celery -------------------------------------------------------------------------------
# Without REDIS_URL, tasks run eagerly in the calling process so the demo needs only Python.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# A task is acknowledged only after it finished, and a worker killed mid-task hands it back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: ingest tasks are long-ish and uneven, so prefetching
# would starve idle workers while one sits on a backlog.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
# Redis redelivers an unacknowledged task only after visibility_timeout: it must exceed the
# longest task (time limit) and any countdown we use, or tasks run twice; short enough that a
# task lost with a killed worker is retried within minutes, not the default hour.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 900, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [
    Queue("ingest"),
    Queue("outbound"),
    Queue("bulk"),
    Queue("default"),
]
CELERY_TASK_CREATE_MISSING_QUEUES = False
# Every task's queue, by task name: ingest (inbound messages), outbound (sending), bulk
# (campaigns, imports, retention), default (everything short). Workers can then be scaled
# per queue, e.g. `celery -A citizenhub worker -Q ingest`.
CELERY_TASK_ROUTES = {
    "channels.ingest*": {"queue": "ingest"},
    "channels.poll*": {"queue": "ingest"},
    "channels.send*": {"queue": "outbound"},
    "channels.*": {"queue": "default"},
    # A resident is waiting for the link that confirms their subscription.
    "engagement.send_subscription_confirmation": {"queue": "outbound"},
    "engagement.*": {"queue": "bulk"},
    "citizenhub.anonymise_expired_cases": {"queue": "bulk"},
    "citizenhub.find_duplicate_candidates": {"queue": "bulk"},
    "citizenhub.*": {"queue": "default"},
}
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULE = {
    # Scheduled campaigns start within a minute of their time.
    "engagement-start-due-campaigns": {
        "task": "engagement.start_due_campaigns",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Campaigns whose send task was lost (worker died, publish lost, SITE_URL fixed later)
    # carry on.
    "engagement-resume-stalled-campaigns": {
        "task": "engagement.resume_stalled_campaigns",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # Texts held for quiet hours go once the quiet hours end.
    "engagement-release-held-deliveries": {
        "task": "engagement.release_held_deliveries",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # Subscription requests nobody confirmed in time lapse (double opt-in), in runs of 1,000.
    "engagement-expire-pending-subscriptions": {
        "task": "engagement.expire_pending_subscriptions",
        "schedule": crontab(minute=20),
        "options": {"expires": 3000},
    },
    # Hourly: the breach flag feeds SLA reports; queues compute "overdue" live anyway.
    "cases-mark-breached": {
        "task": "citizenhub.mark_breached_cases",
        "schedule": crontab(minute=5),
        "options": {"expires": 3000},
    },
    # Overnight, in bounded runs of 500 so a backlog is worked off over several beats.
    "cases-anonymise-expired": {
        "task": "citizenhub.anonymise_expired_cases",
        "schedule": crontab(minute="*/10", hour="1-4"),
        "options": {"expires": 540},
    },
    "citizens-find-duplicates": {
        "task": "citizenhub.find_duplicate_candidates",
        "schedule": crontab(minute=30, hour=0),
        "options": {"expires": 3 * 3600},
    },
    "channels-sweep-stale": {
        "task": "channels.sweep_stale",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "channels-poll-due": {
        "task": "channels.poll_due",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "worker-heartbeat": {
        "task": "citizenhub.record_worker_heartbeat",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 55},
    },
}

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["citizenhub.api.permissions.IsCouncilStaff"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "citizenhub.api.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "citizenhub.api.pagination.KeysetPagination",
    # Residents' own API (/api/v1/me/), per account; staff and integrations are not throttled.
    "DEFAULT_THROTTLE_RATES": {"resident": env_str("API_RESIDENT_THROTTLE", "600/hour")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CitizenHub API",
    "DESCRIPTION": (
        "API for council systems: citizen profiles, contact points and the single timeline "
        "of everything between a resident and the council; service cases; conversations; "
        "topics, subscriptions, the consent ledger and campaigns; and, for residents, "
        "their own profile and cases (/api/v1/me/)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI's assets come from the installed sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ChannelKindEnum": "citizenhub.models.ChannelKind",
        "ContactPointKindEnum": "citizenhub.models.ContactPoint.Kind",
        "TimelineEntryKindEnum": "citizenhub.models.TimelineEntry.Kind",
        "CitizenStatusEnum": "citizenhub.models.Citizen.Status",
        "ServiceCaseStatusEnum": "citizenhub.models.ServiceCase.Status",
        "ThreadStatusEnum": "channels.models.Thread.Status",
        "LoggedContactKindEnum": "channels.models.LoggedContact.Kind",
        "LoggedContactDirectionEnum": "channels.models.LoggedContact.Direction",
        "LoggedContactOutcomeEnum": "channels.models.LoggedContact.Outcome",
        "DirectionEnum": ["in", "out"],
        # Engagement: choice sets that share field names with others ("kind", "source").
        "TopicKindEnum": "engagement.models.Topic.Kind",
        "ConsentSourceEnum": "engagement.models.ConsentRecord.Source",
        "ConsentActionEnum": "engagement.models.ConsentRecord.Action",
    },
}

# --- Logging ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- E-mail (outbound relay; each channel may name its own) ------------------------------
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@citizenhub.invalid")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Channels -----------------------------------------------------------------------------
# Messages per ingest task and transaction: large enough that per-batch queries are cheap
# (the ingest benchmark: 200 -> 500 took two workers from ~910 to ~1,090 msgs/s), small
# enough that a batch takes about a second and a redelivered one redoes little.
CHANNELS_INGEST_BATCH_SIZE = env_int("CHANNELS_INGEST_BATCH_SIZE", 500, minimum=1)
CHANNELS_MAX_ATTACHMENT_BYTES = env_int("CHANNELS_MAX_ATTACHMENT_BYTES", 20 * 1024 * 1024)
# Webhook bodies above this are refused with 413 before being read.
CHANNELS_MAX_WEBHOOK_BYTES = env_int("CHANNELS_MAX_WEBHOOK_BYTES", 40 * 1024 * 1024)
CHANNELS_SMTP_MAX_MESSAGE_BYTES = env_int("CHANNELS_SMTP_MAX_MESSAGE_BYTES", 40 * 1024 * 1024)
# Executables are kept inside the raw message but never stored as files staff could open.
CHANNELS_REFUSED_ATTACHMENT_TYPES = {
    "application/x-msdownload",
    "application/x-dosexec",
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-elf",
    "application/x-mach-binary",
    "application/x-msi",
}
# How many reverse proxies (load balancers) sit in front of the web processes: the web form
# rate limit takes the client address that many hops from the right of X-Forwarded-For.
CHANNELS_TRUSTED_PROXY_COUNT = env_int("CHANNELS_TRUSTED_PROXY_COUNT", 0)
_first_host = ALLOWED_HOSTS[0].lstrip(".") if ALLOWED_HOSTS else ""
CHANNELS_MESSAGE_ID_DOMAIN = env_str(
    "CHANNELS_MESSAGE_ID_DOMAIN",
    _first_host if _first_host and "*" not in _first_host else "citizenhub.invalid",
)

# --- CitizenHub ---------------------------------------------------------------------------
COUNCIL_NAME = env_str("COUNCIL_NAME", "Northmoor District Council")
# Working days for case deadlines: which UK bank holidays apply, and optionally a newer copy
# of GOV.UK's https://www.gov.uk/bank-holidays.json than the one shipped (citizenhub/data/).
BANK_HOLIDAY_DIVISION = env_str("BANK_HOLIDAY_DIVISION", "england-and-wales")
if BANK_HOLIDAY_DIVISION not in ("england-and-wales", "scotland", "northern-ireland"):
    raise EnvironmentConfigError(
        "BANK_HOLIDAY_DIVISION",
        "must be england-and-wales, scotland or northern-ireland",
    )
BANK_HOLIDAYS_FILE = env_str("BANK_HOLIDAYS_FILE", "")
# The name an authenticator app shows next to the staff member's account.
MFA_TOTP_ISSUER = COUNCIL_NAME
# Region used to read phone numbers written without an international prefix.
PHONE_DEFAULT_REGION = env_str("PHONE_DEFAULT_REGION", "GB")
READINESS_TIMEOUT_SECONDS = 2

# --- Portal: accounts (sign-up, contact details, phone codes) ------------------------------
# Residents are told by e-mail when their password, e-mail address or second factor changes
# (templates/account/email/), so a change they did not make does not go unnoticed.
ACCOUNT_EMAIL_NOTIFICATIONS = True
# A verified e-mail address links the account to the resident's profile
# (citizenhub.portal.accounts, citizenhub.portal.signals); the forms carry our own, translated
# labels and hints.
ACCOUNT_ADAPTER = "citizenhub.portal.accounts.ResidentAccountAdapter"
ACCOUNT_FORMS = {
    "login": "citizenhub.portal.forms_account.ResidentLoginForm",
    "signup": "citizenhub.portal.forms_account.ResidentSignupForm",
    "reset_password": "citizenhub.portal.forms_account.ResidentResetPasswordForm",
    "reset_password_from_key": "citizenhub.portal.forms_account.ResidentResetPasswordKeyForm",
    "change_password": "citizenhub.portal.forms_account.ResidentChangePasswordForm",
    "set_password": "citizenhub.portal.forms_account.ResidentSetPasswordForm",
    "add_email": "citizenhub.portal.forms_account.ResidentAddEmailForm",
}
# Changing the e-mail address replaces it (one login address), once the new one is verified.
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{COUNCIL_NAME}] "
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
# Stated, not left to allauth's defaults, so a reviewer sees them (and a test reads them back).
# They count in Django's cache: Redis whenever REDIS_URL is set, shared by every web worker.
ACCOUNT_RATE_LIMITS = {
    # Wrong passwords: 10 a minute from one address, 5 per account in 5 minutes.
    "login_failed": "10/m/ip,5/300s/key",
    "login": "30/m/ip",
    "signup": "20/m/ip",
    # Reset e-mails: 20 a minute from one address, 5 a minute to one mailbox.
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    # Confirmation e-mails to one address: one every 3 minutes.
    "confirm_email": "1/180s/key",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
# Codes sent by text to prove a phone number (citizenhub.services.verification). Texts cost
# money and reach strangers' phones: limits per number (whoever asks), per resident, and on
# wrong codes per resident across all numbers. Counted in the database, not the cache.
PORTAL_CODE_TTL_SECONDS = env_int("PORTAL_CODE_TTL_SECONDS", 10 * 60, minimum=60)
PORTAL_CODE_RESEND_SECONDS = env_int("PORTAL_CODE_RESEND_SECONDS", 60, minimum=0)
PORTAL_CODES_PER_HOUR = env_int("PORTAL_CODES_PER_HOUR", 5, minimum=1)  # per number
PORTAL_CODE_MAX_ATTEMPTS = env_int("PORTAL_CODE_MAX_ATTEMPTS", 5, minimum=1)  # per code
PORTAL_CODES_PER_RESIDENT_PER_HOUR = env_int("PORTAL_CODES_PER_RESIDENT_PER_HOUR", 10, minimum=1)
PORTAL_CODES_PER_RESIDENT_PER_DAY = env_int("PORTAL_CODES_PER_RESIDENT_PER_DAY", 20, minimum=1)
PORTAL_CODE_FAILURES_PER_DAY = env_int("PORTAL_CODE_FAILURES_PER_DAY", 10, minimum=1)

# --- Portal: reports and uploads ----------------------------------------------------------
# Residents' photos with a report: at most this many, each at most this size. Bigger
# requests should be stopped earlier by the web server's body limit too.
PORTAL_UPLOAD_MAX_FILES = env_int("PORTAL_UPLOAD_MAX_FILES", 3, minimum=1)
PORTAL_UPLOAD_MAX_BYTES = env_int("PORTAL_UPLOAD_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
# A small file can decode to a huge image (a decompression bomb): refuse more pixels than
# a phone camera takes before decoding, and store photos no larger than this on each side.
PORTAL_UPLOAD_MAX_PIXELS = env_int("PORTAL_UPLOAD_MAX_PIXELS", 50_000_000, minimum=1)
PORTAL_IMAGE_MAX_EDGE = env_int("PORTAL_IMAGE_MAX_EDGE", 4096, minimum=1)
# A form sent without its CSRF token gets a page that says what to do, not Django's own.
CSRF_FAILURE_VIEW = "citizenhub.portal.views.public.csrf_failure"
# Reports an hour from one signed-in resident, and from one address without signing in.
PORTAL_REPORTS_PER_HOUR = env_int("PORTAL_REPORTS_PER_HOUR", 20, minimum=1)
PORTAL_ANONYMOUS_REPORTS_PER_HOUR = env_int("PORTAL_ANONYMOUS_REPORTS_PER_HOUR", 10, minimum=1)
# How long the link e-mailed to an anonymous reporter (to get updates) stays valid.
PORTAL_REPORT_FOLLOW_LINK_MAX_AGE = env_int(
    "PORTAL_REPORT_FOLLOW_LINK_MAX_AGE", 7 * 24 * 60 * 60, minimum=3600
)

# --- Portal: my cases and messages --------------------------------------------------------
# How long after a case is resolved its resident may reopen it from the portal (calendar
# days); after that they report the problem again, which starts a new case and clock.
PORTAL_REOPEN_DAYS = env_int("PORTAL_REOPEN_DAYS", 28, minimum=0)
# Longest "add information" text a resident may send from the portal or the API.
PORTAL_CASE_UPDATE_MAX_CHARS = env_int("PORTAL_CASE_UPDATE_MAX_CHARS", 5000, minimum=100)
# Information a resident may add to their cases in an hour (portal and /api/v1/me/).
PORTAL_CASE_UPDATES_PER_HOUR = env_int("PORTAL_CASE_UPDATES_PER_HOUR", 30, minimum=1)

# --- Engagement (topics, subscriptions, campaigns) ----------------------------------------
# The public address of the site, for links in messages sent by workers (no request there).
SITE_URL = env_str(
    "SITE_URL",
    "http://127.0.0.1:8000"
    if DEBUG
    else (f"https://{_first_host}" if _first_host and "*" not in _first_host else ""),
)
# Preference and unsubscribe links in messages keep working this long (seconds).
ENGAGEMENT_LINK_MAX_AGE = env_int("ENGAGEMENT_LINK_MAX_AGE", 180 * 24 * 60 * 60, minimum=86400)
# A subscription waits this long for its confirmation (double opt-in), then lapses.
ENGAGEMENT_CONFIRMATION_MAX_AGE = env_int(
    "ENGAGEMENT_CONFIRMATION_MAX_AGE", 7 * 24 * 60 * 60, minimum=3600
)

# --- Portal: my data (export, who viewed, erasure) and consents ---------------------------
# "Who viewed my record": how many of the latest staff views, exports and changes the page
# lists (the JSON export has them all).
MY_DATA_WHO_VIEWED_SHOWN = env_int("MY_DATA_WHO_VIEWED_SHOWN", 200, minimum=1)
# How long the audit log and the consent ledger are kept after their latest entry: the
# statement an erasure gives the resident ("kept until ..."). Six years is the limitation
# period for claims (Limitation Act 1980), the usual basis of council retention schedules.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 6 * 365)
CONSENT_LEDGER_RETENTION_DAYS = env_int("CONSENT_LEDGER_RETENTION_DAYS", 6 * 365)
