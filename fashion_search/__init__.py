from __future__ import annotations

from fashion_search.celery import app as celery_app

__all__ = ["celery_app"]
