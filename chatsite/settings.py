"""Django settings for the chat site.

Every value comes from the environment through `chatsite.env`, with defaults
that need no configuration: SQLite, the in-memory channel layer, one daphne
process. `DATABASE_URL` switches to PostgreSQL and `REDIS_URL` to
channels-redis; see README.md for the production variables.
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from chatsite.env import env_bool, env_database, env_email, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CHAT_VAR_DIR") or BASE_DIR / "var")

# SECURITY

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    key_file = Path(env_str("DJANGO_SECRET_KEY_FILE") or VAR_DIR / "secret_key")
    if not key and key_file.is_file():
        key = key_file.read_text().strip()
    if key:
        return key
    if DEBUG:
        return "django-insecure-development-only-key"
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (nor DJANGO_SECRET_KEY_FILE / var/secret_key); "
        "`make run` creates var/secret_key, or set DJANGO_DEBUG=1 for development."
    )


SECRET_KEY = _secret_key()
# Old keys still decrypt provider API keys and verify sessions while rotating.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Variables and form fields marked sensitive (provider API keys) stay hidden
# on error pages even in DEBUG.
DEFAULT_EXCEPTION_REPORTER_FILTER = "chatsite.error_reports.SensitiveAlwaysHiddenFilter"
# Production over HTTPS (README "Production"): redirect http to https, secure
# cookies, HSTS. Off by default so `make run` works on plain http.
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading binds the whole registrable domain to HTTPS for months, and
# cannot be undone quickly: opt-in only, so its deploy-check reminder is
# silenced while it is off (README "Production").
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto and appends the
# client's address to X-Forwarded-For. Never on without such a proxy: a
# client could claim https, or another address for the login rate limits.
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    ALLAUTH_TRUSTED_PROXY_COUNT = 1

# APPLICATIONS

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # intcomma on the usage pages
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.feishu",
    "accounts",
    "personas",
    "attachments",
    "conversations",
    "transfer",
    "bots",
    "api",
    "sharing",
    "usage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in user's saved language over LocaleMiddleware's pick (cookie, then browser).
    "accounts.locale.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After CSPMiddleware: the provider sign-in pages may post on to the identity provider (accounts/csp.py).
    "accounts.csp.SocialLoginFormActionMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "conversations.context_processors.input_limits",
                "accounts.theme.theme",
                "conversations.context_processors.site_name",
            ],
        },
    },
]

# DATABASE

DATABASES = {
    "default": env_database(
        "DATABASE_URL",
        {
            "ENGINE": "chatsite.sqlite",  # Django's, its writers taking turns (chatsite/sqlite/base.py).
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets daphne read while a reply is being saved; IMMEDIATE
                # avoids "database is locked" on lock upgrades.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file, so a daphne process started by a test sees the test data.
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
            # Kept open between requests and channel layer calls, as DATABASE_URL's are (chatsite/env.py):
            # reopening it after every call was a measurable share of a reply's CPU (bench/load.py).
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        },
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CHANNELS

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 caps a pool at 100 connections and fails the 101st at once
                        # (MaxConnectionsError): a hundred replies streaming at once take more (bench/load.py).
                        "max_connections": 1000,
                        # redis-py 8 gives up a read after 5 s by default, which cut channels-redis's idle
                        # waits: idle sockets were torn down every 5 s (channels_redis issue #422). A longer
                        # bound keeps a dead server detectable.
                        "socket_timeout": 30,
                    }
                ],
            },
        }
    }
else:
    # One process: Channels' in-memory layer, without its per-send scans (chatsite/channel_layers.py).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chatsite.channel_layers.LocalChannelLayer", "CONFIG": {"capacity": 1500, "expiry": 60}}
    }

# CACHE

# Login rate limits count in the cache: with REDIS_URL every process shares
# one count; the default in-process cache only suits a single process.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# ACCOUNTS

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
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"username"}
# Mail (password resets): DJANGO_EMAIL_URL names the mail server (README "Mail"). Without one, mails
# are printed to the server's log, and the password reset page says to ask an admin instead.
_CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"
_EMAIL = env_email("DJANGO_EMAIL_URL")
EMAIL_BACKEND = _EMAIL.get("EMAIL_BACKEND") or env_str("DJANGO_EMAIL_BACKEND", _CONSOLE_EMAIL)
EMAIL_HOST = _EMAIL.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _EMAIL.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _EMAIL.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _EMAIL.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 20  # seconds: a mail server that does not answer fails the reset rather than hanging it
# Whether mail reaches people (a mail server is configured), as the password reset page needs to know.
CHAT_EMAIL_ENABLED = EMAIL_BACKEND not in (_CONSOLE_EMAIL, "django.core.mail.backends.dummy.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "chat@localhost")
# With mail configured, new accounts give an email address and confirm it before signing in.
# CHAT_EMAIL_VERIFICATION overrides (none, optional, mandatory).
ACCOUNT_EMAIL_VERIFICATION = env_str("CHAT_EMAIL_VERIFICATION", "mandatory" if CHAT_EMAIL_ENABLED else "none")
if ACCOUNT_EMAIL_VERIFICATION not in ("none", "optional", "mandatory"):
    raise ImproperlyConfigured("CHAT_EMAIL_VERIFICATION must be none, optional or mandatory.")
ACCOUNT_SIGNUP_FIELDS = [
    "username*",
    "email*" if ACCOUNT_EMAIL_VERIFICATION == "mandatory" else "email",
    "password1*",
    "password2*",
]
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
# Sign-in with an identity provider (OpenID Connect, Feishu): the admin adds a "Social application" per
# provider (client id, secret, and for OpenID Connect the issuer URL in settings: {"server_url": ...}).
SOCIALACCOUNT_ADAPTER = "accounts.adapter.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never take over an existing account by its email address alone
SOCIALACCOUNT_LOGIN_ON_GET = False  # the provider's button posts a form (CSRF-protected), as allauth advises
# Failed logins: 5 per account and 20 per client address in 5 minutes, then
# "Too many failed login attempts" even for the right password. The per-address
# limit leaves room for a team behind one NAT; allauth's other limits are kept.
ACCOUNT_RATE_LIMITS = {"login_failed": "20/5m/ip,5/5m/key"}

# I18N

LANGUAGE_CODE = "en"
# Django's own codes (its locale folders zh_Hans, zh_Hant). LocaleMiddleware maps a browser's zh-CN and zh-SG
# to zh-hans, zh-TW, zh-HK and zh-MO to zh-hant through LANG_INFO's fallbacks; without zh-hant here it fell
# back to the first zh-* language, Simplified (tests/accounts/test_language.py).
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese")), ("zh-hant", _("Traditional Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# A visitor's pick from the language switch (accounts.views.language_set); a signed-in user's is also saved.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # s; Django's default (None) would forget it when the browser closes
LANGUAGE_COOKIE_SECURE = HTTPS
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# STATIC FILES

STATIC_URL = "static/"
# Where `collectstatic` writes; tests point it at a temporary folder.
STATIC_ROOT = Path(env_str("CHAT_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# UPLOADS

MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"  # Never served: uploads are read by the site, not downloaded.
# A form post's fields (files excluded: imports have CHAT_IMPORT_MAX_BYTES)
# larger than this, or with more fields, is refused with 400 before any view runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 500

# LOGGING

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "openai": {"level": "WARNING"}},
}

# CHAT

# The site's name in tab titles ("conversation title · site name"); empty: "Chat", translated.
CHAT_SITE_NAME = env_str("CHAT_SITE_NAME")
# A user message longer than this is refused before anything is saved.
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 32_000, minimum=1)
# A websocket frame larger than this (bytes) closes the socket with 4400.
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 256 * 1024, minimum=1024)
# The largest frame the site sends (bytes), well under daphne's 1 MiB: a larger fragment (a huge reply, a
# page of long messages) is replaced by one that has the page fetch the messages over HTTP.
CHAT_MAX_SENT_FRAME_BYTES = env_int("CHAT_MAX_SENT_FRAME_BYTES", 256 * 1024, minimum=4096)
# Open websockets one user may hold in one worker process; more are closed with 4429.
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20, minimum=1)
# Deltas after the first are coalesced over this window before going out; with more than 25 replies
# streaming in a process it widens in proportion, up to CHAT_COALESCE_MAX_MS (conversations.coalescing).
CHAT_COALESCE_MS = env_int("CHAT_COALESCE_MS", 40, minimum=0)
CHAT_COALESCE_MAX_MS = env_int("CHAT_COALESCE_MAX_MS", 120, minimum=0)
# A streaming reply is saved this often (seconds), so a crash loses at most that
# much; with no new text a heartbeat is still written every CHAT_HEARTBEAT_S.
CHAT_CHECKPOINT_S = env_int("CHAT_CHECKPOINT_S", 2, minimum=1)
CHAT_HEARTBEAT_S = env_int("CHAT_HEARTBEAT_S", 10, minimum=1)
# A streaming reply whose heartbeat is older than this (seconds) was left by a
# worker that died: it is shown as interrupted and the conversation moves on.
CHAT_STALE_AFTER_S = env_int("CHAT_STALE_AFTER_S", 45, minimum=5)
# A 429 or 5xx before the first token is retried this many times, waiting the
# upstream's Retry-After (if at most CHAT_UPSTREAM_RETRY_MAX_WAIT_S) or 0.5 s, 1 s, ...
CHAT_UPSTREAM_RETRIES = env_int("CHAT_UPSTREAM_RETRIES", 2, minimum=0)
CHAT_UPSTREAM_RETRY_MAX_WAIT_S = env_int("CHAT_UPSTREAM_RETRY_MAX_WAIT_S", 10, minimum=0)
# Markdown images load remote URLs only when this is on.
CHAT_ALLOW_REMOTE_IMAGES = env_bool("CHAT_ALLOW_REMOTE_IMAGES", False)
# Staff read conversation titles and message text in the admin only when this is on.
CHAT_ADMIN_SHOWS_MESSAGE_TEXT = env_bool("CHAT_ADMIN_SHOWS_MESSAGE_TEXT", False)
# Uploaded conversation exports larger than this (bytes) are refused.
CHAT_IMPORT_MAX_BYTES = env_int("CHAT_IMPORT_MAX_BYTES", 50 * 1024 * 1024, minimum=1024)
# Each import runs in a child process (manage.py import_job_run) rather than a thread of the server.
CHAT_IMPORT_SUBPROCESS = env_bool("CHAT_IMPORT_SUBPROCESS", True)
# How much lower that child's CPU priority is than the server's (os.nice: 0 the same, 19 the lowest).
CHAT_IMPORT_NICENESS = env_int("CHAT_IMPORT_NICENESS", 10, minimum=0)
# Site-wide usage limits per user, 0 = no limit; the admin overrides them per
# user and per group (accounts.UsageLimit). Tokens are per day, site time zone.
CHAT_DEFAULT_SENDS_PER_MINUTE = env_int("CHAT_DEFAULT_SENDS_PER_MINUTE", 20, minimum=0)
CHAT_DEFAULT_CONCURRENT_REPLIES = env_int("CHAT_DEFAULT_CONCURRENT_REPLIES", 2, minimum=0)
CHAT_DEFAULT_DAILY_TOKENS = env_int("CHAT_DEFAULT_DAILY_TOKENS", 0, minimum=0)

# BOTS

# Feishu/Lark bots and WeChat Official Accounts (bots/, README "Chat apps").
# The platforms' API roots: tests and private deployments point them elsewhere.
BOTS_FEISHU_BASE_URL = env_str("BOTS_FEISHU_BASE_URL", "https://open.feishu.cn")
BOTS_LARK_BASE_URL = env_str("BOTS_LARK_BASE_URL", "https://open.larksuite.com")
BOTS_WECHAT_BASE_URL = env_str("BOTS_WECHAT_BASE_URL", "https://api.weixin.qq.com")
# A callback body larger than this (bytes) is refused with 400; platform events are a few KiB.
BOTS_MAX_BODY_BYTES = env_int("BOTS_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# A signed callback whose timestamp is further than this from now (seconds) is refused as a replay.
BOTS_MAX_CLOCK_SKEW_S = env_int("BOTS_MAX_CLOCK_SKEW_S", 300, minimum=1)
# A streaming reply is shown (a Feishu card updated) at most this often; Feishu allows 5 updates/s per message.
BOTS_STREAM_INTERVAL_MS = env_int("BOTS_STREAM_INTERVAL_MS", 500, minimum=200)
# A Feishu card holds at most this many characters of a reply (cards are limited to 30 KB); more goes on.
BOTS_FEISHU_CARD_MAX_CHARS = env_int("BOTS_FEISHU_CARD_MAX_CHARS", 8000, minimum=100)
# WeChat text messages hold 2048 bytes; a longer reply is sent in several.
BOTS_WECHAT_MAX_BYTES = env_int("BOTS_WECHAT_MAX_BYTES", 2048, minimum=64)
# How long a WeChat callback waits for the reply to answer it passively (WeChat gives up at 5 s).
BOTS_WECHAT_PASSIVE_WAIT_MS = env_int("BOTS_WECHAT_PASSIVE_WAIT_MS", 4000, minimum=0)
# Platform API calls: timeout (s), retries of transport errors, 429 and 5xx, first backoff (ms, doubled each time).
BOTS_API_TIMEOUT_S = env_int("BOTS_API_TIMEOUT_S", 10, minimum=1)
BOTS_API_RETRIES = env_int("BOTS_API_RETRIES", 3, minimum=0)
BOTS_API_BACKOFF_MS = env_int("BOTS_API_BACKOFF_MS", 500, minimum=0)
# Access tokens (valid 2 h) are fetched again this long (s) before they expire.
BOTS_TOKEN_REFRESH_MARGIN_S = env_int("BOTS_TOKEN_REFRESH_MARGIN_S", 300, minimum=0)

# API

# The OpenAI-compatible API under /v1 and gRPC (api/): off here forces it off for the whole site (403),
# whatever the admin's switches say; on, the admin turns it off for the site (Site settings, "API on")
# or per group (api.GroupApiAccess).
CHAT_API_ENABLED = env_bool("CHAT_API_ENABLED", True)
# Origins whose pages may call /v1 from a browser (CORS), e.g. "https://tools.example.com"; none by default.
CHAT_API_CORS_ORIGINS = env_list("CHAT_API_CORS_ORIGINS", [])
# A /v1 request body larger than this (bytes) is refused with 413 before it is parsed.
CHAT_API_MAX_BODY_BYTES = env_int("CHAT_API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
# A chat completion with more messages than this is refused with 400 before any is read.
CHAT_API_MAX_MESSAGES = env_int("CHAT_API_MAX_MESSAGES", 1000, minimum=1)
# How long the API page's console key lasts (seconds).
CHAT_API_CONSOLE_KEY_S = env_int("CHAT_API_CONSOLE_KEY_S", 3600, minimum=60)
# `manage.py grpcserve` (api/rpc): the address the gRPC chat service listens on (plaintext HTTP/2: keep it
# on loopback or a private network, or put a TLS-terminating proxy in front). Port 0 picks a free port.
CHAT_GRPC_HOST = env_str("CHAT_GRPC_HOST", "127.0.0.1")
CHAT_GRPC_PORT = env_int("CHAT_GRPC_PORT", 50051, minimum=0)

# CONTENT SECURITY POLICY

# django-csp 4 (csp.middleware.CSPMiddleware). No inline script or style
# anywhere: templates load static files only, htmx's indicator style is off
# (base.html's htmx-config) and eval is refused (allowEval: false). 'self' in
# connect-src covers the page's own ws:/wss: origin (CSP Level 3, "Match
# URL to source expression"). Remote Markdown images need https: in img-src.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "https:"] if CHAT_ALLOW_REMOTE_IMAGES else ["'self'"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
