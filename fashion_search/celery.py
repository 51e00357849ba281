"""Celery app configured from Django settings (CELERY_ prefix); tasks.py modules are autodiscovered."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")

app = Celery("fashion_search")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
