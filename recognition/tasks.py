"""Celery tasks that train recognizer versions: thin and safe to repeat."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from recognition.versions import version_train


# Training a version embeds every photo once: minutes for thousands of photos on a CPU, hence the long
# limits. Acknowledged on receipt, not late: a run can outlast the broker's visibility timeout, and a
# redelivered copy would train the same version twice at once. A killed run leaves the version
# "training"; the merchant starts a new one.
@shared_task(
    acks_late=False,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    max_retries=3,
    time_limit=3 * 3600,
    soft_time_limit=3 * 3600 - 60,
)
def train_version(version_id: int) -> None:
    version_train(version_id=version_id)
