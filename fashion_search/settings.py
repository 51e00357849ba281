"""Settings, read once from the environment.

With nothing set the app runs on embedded defaults: SQLite, Celery tasks executed in-process and
the vector index on local disk. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and a Redis
broker with separate workers. Every variable is listed in `.env.example`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from fashion_search.env import env_bool, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

# --- Environment: development (default) or production ------------------------------------------
# Production turns DEBUG off and the HTTPS settings on (block "Production security" below), and refuses
# to start without the secrets and hosts that development fills in with local defaults.
DJANGO_ENV = env_str("DJANGO_ENV", "development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r} is not one of: development, production")
PRODUCTION = DJANGO_ENV == "production"
for _required in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
    if PRODUCTION and not env_str(_required):
        raise ImproperlyConfigured(f"{_required} must be set in the environment when DJANGO_ENV=production")

DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
# Secrets come only from the environment; the default key only serves local development.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves the Swagger UI files of the API docs page itself, so it works offline
    "recognition",
    "catalog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves STATIC_ROOT (filled by collectstatic) under gunicorn, where Django itself serves no static files.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CSRF, which would otherwise be the first to read an oversized body and answer a bare 400.
    "fashion_search.upload_limits.UploadLimitMiddleware",
    "fashion_search.admin_input.AdminInputMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "catalog.api_error_answers.ApiErrorAnswersMiddleware",
]

ROOT_URLCONF = "fashion_search.urls"
WSGI_APPLICATION = "fashion_search.wsgi.application"

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
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    except ValueError as exc:  # an unknown scheme or a malformed address: say which variable
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database address like postgres://user@host:5432/name: {exc}"
        ) from None
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded default keeps its SQLite file here
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # `retag` or an import beside an admin save: SQLite's default (transactions that read first
            # and then write, no write-ahead log, 5 s of waiting) answered one of them "database is
            # locked" at once, and the admin's edit was lost. A transaction now takes the write lock as
            # it begins and waits up to 30 s for it; readers never wait for a writer.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "staticfiles")
# Until collectstatic has run there is no STATIC_ROOT; with DEBUG on (`make run`) WhiteNoise serves
# from the apps' own folders meanwhile, so its warning about the missing folder says nothing useful.
warnings.filterwarnings("ignore", message="No directory at: ")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic also writes a gzip copy of each text file, which WhiteNoise sends to browsers that
    # accept it (the API docs' 1.5 MB script, 0.4 MB gzipped).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")

# --- Uploads -----------------------------------------------------------------------------------
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024

# --- Recognition and index ------------------------------------------------------------------------
INDEX_DIR = env_path("INDEX_DIR", VAR_DIR / "index")
# Searching processes memory-map the published index, so its vectors sit once in the page cache for
# every web worker on the host instead of once per worker. Turn off when INDEX_DIR is a network file
# system that other hosts write to: a file another host deletes under a mapping can crash the reader.
INDEX_MEMORY_MAP = env_bool("INDEX_MEMORY_MAP", True)
# Exact (flat) search up to this many vectors, an approximate HNSW index beyond; a flat index that grows
# past it becomes HNSW at its next edit. Exact search reads every vector for every query, so it costs
# memory bandwidth: 0.15 to 0.37 ms per 1,000 photos on the 2-core machines measured (bench/README.md,
# "Vector search"), 1.5 to 2.7 ms at 10k and 3.3 to 7.4 ms at 20k, against 1.8 to 3.4 ms for HNSW's 200
# candidates at 1M (recall@10 0.974 or better). Up to 10k exact search is never the slowest size.
FLAT_INDEX_MAX_ITEMS = env_int("FLAT_INDEX_MAX_ITEMS", 10_000)
# The least seconds between two index syncs that taggings start (and the delay of a queued one), so that
# the photos tagged meanwhile share one sync (each reads every tagged photo's id and tagging time: 0.6 s
# at a million on PostgreSQL). A worker also waits nine times as long as its last sync took.
INDEX_SYNC_DELAY_S = env_float("INDEX_SYNC_DELAY", 2.0)
RECOGNITION_DEVICE = env_str("RECOGNITION_DEVICE", "auto")  # auto | cpu | cuda
# Fine-tuned backbone weights; by default the file shipped in recognition/artifacts/backbone/ when present.
_SHIPPED_TUNED_WEIGHTS = BASE_DIR / "recognition" / "artifacts" / "backbone" / "tuned.pt"
BACKBONE_TUNED_WEIGHTS = env_path("BACKBONE_TUNED_WEIGHTS", _SHIPPED_TUNED_WEIGHTS)
# Threads per process for inference (torch and ONNX Runtime alike); web and worker processes run side
# by side and compete for cores, so give each a share (e.g. 1 each for 2 gunicorn workers on 2 cores).
RECOGNITION_THREADS = env_int("RECOGNITION_THREADS", 0)  # 0: the runtime's default, one per core
SEARCH_RESULTS = env_int("SEARCH_RESULTS", 12)
# Hybrid ranking: score = visual weight x cosine similarity + each attribute's weight x the query's
# predicted probability of the item's value. Set before any evaluation, not fitted to a test split.
SEARCH_VISUAL_WEIGHT = env_float("SEARCH_VISUAL_WEIGHT", 1.0)
SEARCH_TAG_WEIGHTS = {
    "type": env_float("SEARCH_TYPE_WEIGHT", 0.3),
    "pattern": env_float("SEARCH_PATTERN_WEIGHT", 0.1),
    "colour": env_float("SEARCH_COLOUR_WEIGHT", 0.1),
    "style": env_float("SEARCH_STYLE_WEIGHT", 0.05),
}

# --- Inference runtime and warm-up (recognition/backbone_onnx.py, fashion_search/wsgi.py) ---------
# auto: ONNX Runtime on CPU (per photo, decoding included, 2.1-2.9x faster than eager PyTorch on 2 quiet
# cores, 8-15x when the cores are shared or photos are large: bench/README.md), eager PyTorch on a GPU.
# torch: always PyTorch. onnx: always ONNX Runtime. Both give the same embeddings (cosine > 0.999) and the
# same version, so switching never makes stored embeddings stale.
RECOGNITION_RUNTIME = env_str("RECOGNITION_RUNTIME", "auto")
if RECOGNITION_RUNTIME not in ("auto", "torch", "onnx"):
    raise ImproperlyConfigured(f"RECOGNITION_RUNTIME={RECOGNITION_RUNTIME!r} is not one of: auto, torch, onnx")
# ONNX exports of the backbone, one file per backbone version, written on first use (a few seconds).
# Shared by the processes of a host (a file lock makes one of them export, the others wait).
MODEL_CACHE_DIR = env_path("MODEL_CACHE_DIR", VAR_DIR / "models")
# The web server's WSGI module loads the backbone, the heads and the index and embeds one image before
# the first request, so that request is not the one that waits for them (fashion_search/wsgi.py).
WARM_UP_ON_START = env_bool("WARM_UP_ON_START", True)
# OpenMP threads FAISS uses in a web process. A shopper's search is one query; with faiss's default (one
# thread per core) exact search over 10k to 1M vectors measured 2.1-5.2x slower on 2 shared cores than with
# one thread (bench/README.md, "Vector search"), and request threads already run searches side by side.
INDEX_SEARCH_THREADS = env_int("INDEX_SEARCH_THREADS", 1)
# Web processes freeze their start-up objects and collect garbage less often after the warm-up: Python's
# default thresholds turned each search's reference cycles into 100-190 ms full collections every few
# requests (fashion_search/wsgi.py, garbage_collector_tune).
WEB_GC_TUNE = env_bool("WEB_GC_TUNE", True)

# --- Celery ------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"  # a host named, or kombu warns it assumed one
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in-process so that the app works with nothing else installed.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
# Time limit of the index rebuild and compaction tasks (catalog/tasks.py), which build a whole HNSW
# graph: 21 s at 100k vectors and 333 s at 1M on 2 cores, past CELERY_TASK_TIME_LIMIT, which would
# kill them every time. Their soft limit is 90% of it. They acknowledge on receipt (not late), so
# running past the broker visibility timeout does not hand them to a second worker.
INDEX_REBUILD_TIME_LIMIT = env_int("INDEX_REBUILD_TIME_LIMIT", 3600)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR or CRITICAL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "catalog": {"level": LOG_LEVEL},
        "recognition": {"level": LOG_LEVEL},
        "fashion_search": {"level": LOG_LEVEL},  # the web server's warm-up (fashion_search/wsgi.py)
    },
}

# Serve catalog photos from Django itself (fine for a self-hosted shop; put a web server in front at scale).
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)

# --- Upload handling: shopper photos leave nothing on disk -----------------------------------------
# Every uploaded file is kept in memory, never spooled to a temporary file (Django's default handler
# writes anything over 2.5 MB to /tmp), and a request body over the cap is refused before it is read:
# MAX_UPLOAD_BYTES plus form overhead for shoppers, STAFF_UPLOAD_MAX_BYTES for merchants in admin
# (catalog photos may be up to 50 MB, catalog/services/tagging.py; training zips too). A page answers
# a larger body with a readable 413 (fashion_search/upload_limits.py), the API with a JSON 413.
FILE_UPLOAD_HANDLERS = ["fashion_search.uploads.BoundedMemoryUploadHandler"]
STAFF_UPLOAD_MAX_BYTES = env_int("STAFF_UPLOAD_MAX_BYTES", 64 * 1024 * 1024)
# Keep each shopper photo (re-encoded as a plain JPEG, without metadata) after the request, e.g. to
# collect training data. Off by default: the photo only lives in memory while it is searched.
KEEP_SHOPPER_UPLOADS = env_bool("KEEP_SHOPPER_UPLOADS", False)
# Outside MEDIA_ROOT, so that kept photos are never served.
SHOPPER_UPLOADS_DIR = env_path("SHOPPER_UPLOADS_DIR", VAR_DIR / "shopper-uploads")
# Merchants' training zips (Recognition > Recognizer versions), also outside MEDIA_ROOT: never served.
TRAINING_UPLOADS_DIR = env_path("TRAINING_UPLOADS_DIR", VAR_DIR / "training-uploads")
# The only folders a "Folder on the server" version may train on: any other named in the admin form (/etc)
# was read, and its listing shown in the version's failure.
TRAINING_FOLDERS_ROOT = env_path("TRAINING_FOLDERS_ROOT", VAR_DIR / "training-folders")

# --- Cache (rate-limit counters) --------------------------------------------------------------------
# Redis when REDIS_URL is set, shared by every web process; otherwise memory local to each process, so
# that a limit then counts per process (fine for `make run`, a single process).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "fashion-search",
            # A counter is one round trip: a Redis that stops answering costs a request a second at
            # most, then it is served uncounted (fashion_search/ratelimit.py), instead of hanging.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fashion-search"}}

# --- Rate limits (django-ratelimit; fashion_search/ratelimit.py) -----------------------------------
# Per client: an anonymous client is its IP address (an IPv6 /64), a signed-in one its user; staff are
# never limited. Over a limit, the API answers 429 JSON and the shopper page a 429 page, both with
# Retry-After. Rates are "<count>/<period>", the period one of s, m, h, d, optionally with a multiplier
# ("100/15m").


def _env_rate(name: str, default: str) -> str:
    value = env_str(name, default)
    if not re.fullmatch(r"\d+/([1-9]\d*)?[smhd]", value):  # a period of 0 would divide by zero per request
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 30/m or 100/15m")
    return value


RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
RATE_LIMIT_UPLOADS = _env_rate("RATE_LIMIT_UPLOADS", "30/m")  # photos sent: shopper page and API
RATE_LIMIT_API = _env_rate("RATE_LIMIT_API", "120/m")  # every API call
# Searches without a photo: a refine ("the same, but in red"), text search, Complete the look, an item's
# page. Each costs tens of milliseconds of database work; a shopper browsing opens a few a minute.
RATE_LIMIT_PAGES = _env_rate("RATE_LIMIT_PAGES", "240/m")
# Reverse proxies in front of the app that append to X-Forwarded-For; 0 trusts REMOTE_ADDR only. Set it
# behind a proxy, or every client shares the proxy's address and its limit.
RATE_LIMIT_PROXY_COUNT = env_int("RATE_LIMIT_PROXY_COUNT", 0)
RATELIMIT_IP_META_KEY = "fashion_search.ratelimit.client_ip"

# --- Production security (DJANGO_ENV=production; `manage.py check --deploy` reports nothing) --------
if PRODUCTION:
    # Behind a proxy that terminates TLS, name the header it sets, e.g. HTTP_X_FORWARDED_PROTO, so that
    # Django knows a request came over HTTPS. Only set it when the proxy always sets or strips it.
    _PROXY_SSL_HEADER = env_str("DJANGO_SECURE_PROXY_SSL_HEADER")
    if _PROXY_SSL_HEADER:
        SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER, "https")
    # Turn off where the proxy already redirects plain HTTP to HTTPS.
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Origins (scheme and host) that may POST forms when they differ from the Host header, e.g. behind
    # a proxy that rewrites it: https://shop.example.com
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
    X_FRAME_OPTIONS = "DENY"

# --- Crash recovery of tagging workers (catalog/tasks.py, tests/e2e/test_worker_crash.py) ----------
# With Redis, a message taken by a worker that then dies (SIGKILL, OOM, power) stays unacknowledged
# and is delivered again only once it is older than the visibility timeout (kombu's default: 1 h).
# Keep it above the longest a live worker may hold a message: a running task (CELERY_TASK_TIME_LIMIT)
# or a retry waiting for its countdown (at most 120 s, catalog/tasks.py). A shorter one delivers
# such messages twice: harmless, since the tasks are idempotent, but wasted work.
BROKER_VISIBILITY_TIMEOUT_S = env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_S,
    # How often a worker looks for such messages; kombu's default (10 s x throttle 10) is 100 s.
    "unacked_restore_interval": env_int("CELERY_BROKER_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": 1,
}

# --- Trainable recognizers -----------------------------------------------------------------------
# Versions trained in the admin or by `train_recognizer --version` are stored here, one folder each.
RECOGNIZER_DIR = env_path("RECOGNIZER_DIR", VAR_DIR / "recognizers")
# Share of each label's photos held out to evaluate a new version (never trained on).
RECOGNIZER_HOLDOUT_SHARE = env_float("RECOGNIZER_HOLDOUT_SHARE", 0.2)
# Uploaded training zips are refused past STAFF_UPLOAD_MAX_BYTES (the admin's request body cap, held in
# memory), and when they would unpack to more than this.
RECOGNIZER_ZIP_MAX_UNPACKED_BYTES = env_int("RECOGNIZER_ZIP_MAX_UNPACKED_BYTES", 2 * 1024 * 1024 * 1024)
