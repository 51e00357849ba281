"""Settings, read once from the environment.

With nothing set the app runs on embedded defaults: SQLite, Celery tasks executed in-process and
the vector index on local disk. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and a Redis
broker with separate workers. Every variable is listed in `.env.example`.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from fashion_search.env import env_bool, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", True)
# The default key only serves local development; deployments set DJANGO_SECRET_KEY.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "recognition",
    "catalog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded default keeps its SQLite file here
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")

# --- Uploads -----------------------------------------------------------------------------------
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024

# --- Recognition and index ------------------------------------------------------------------------
INDEX_DIR = env_path("INDEX_DIR", VAR_DIR / "index")
# Exact (flat) search up to this many vectors, an approximate HNSW index beyond.
FLAT_INDEX_MAX_ITEMS = env_int("FLAT_INDEX_MAX_ITEMS", 100_000)
RECOGNITION_DEVICE = env_str("RECOGNITION_DEVICE", "auto")  # auto | cpu | cuda
# Threads per process for inference; web and worker processes run side by side and compete for cores.
RECOGNITION_THREADS = env_int("RECOGNITION_THREADS", 0)  # 0: let torch decide
SEARCH_RESULTS = env_int("SEARCH_RESULTS", 12)
SEARCH_VISUAL_WEIGHT = env_float("SEARCH_VISUAL_WEIGHT", 1.0)
SEARCH_TYPE_WEIGHT = env_float("SEARCH_TYPE_WEIGHT", 0.3)

# --- Celery ------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in-process so that the app works with nothing else installed.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "catalog": {"level": LOG_LEVEL},
        "recognition": {"level": LOG_LEVEL},
    },
}

# Serve catalog photos from Django itself (fine for a self-hosted shop; put a web server in front at scale).
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)
FORMS_URLFIELD_ASSUME_HTTPS = True  # shop URLs typed without a scheme are https
