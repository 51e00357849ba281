"""Celery app configured from Django settings (CELERY_ prefix); tasks.py modules are autodiscovered."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")

app = Celery("fashion_search")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

# How often the worker, waiting for its start-up repair, checks whether it was told to stop.
REPAIR_STOP_POLL_S = 0.5


@worker_ready.connect
def index_repair_on_worker_start(**kwargs: object) -> None:
    """Bring the index in step with the database when a worker starts (after a crash, say).

    It also forgets any queued index sync (catalog.services.index.index_sync_queue_forget), which a
    worker that died may have held.

    A signal of the worker only, so that migrations, `check` and the web processes never run it.
    Runs in a process forked for it, which the worker waits for: an HNSW build or edit starts FAISS's
    OpenMP threads, and every pool process forked afterwards from a parent holding them (to replace
    one killed at its time limit, say) hung at its first parallel FAISS call, as OpenMP does after a
    fork. A failure is logged and the worker serves anyway: tagging does not need a sound index.
    """
    from celery.worker import state as worker_state
    from django.db import connection

    connection.close()  # the child opens its own; neither the child nor the pool may share this one
    repairing = multiprocessing.get_context("fork").Process(target=_index_repair_logged, name="index-repair")
    repairing.start()
    while repairing.is_alive():
        repairing.join(timeout=REPAIR_STOP_POLL_S)
        # Told to stop (Ctrl-C, a supervisor's TERM): a rebuild takes minutes at a million photos, and a
        # repair cut short leaves the published index as it was, for the next start to repair.
        if repairing.is_alive() and (worker_state.should_stop is not None or worker_state.should_terminate is not None):
            logger.warning("worker stopping: the index repair is cut short")
            repairing.terminate()
            repairing.join()
            return
    if repairing.exitcode != 0:
        logger.error("the index repair process exited with status %s", repairing.exitcode)


def _index_repair_logged() -> None:
    from django.db import DatabaseError, connection

    from catalog.services.index import index_repair, index_sync_queue_forget
    from fashion_search.database import migrations_unapplied, unapplied_summary
    from recognition.errors import RecognitionError

    # Not the worker's handlers, which the fork copied: they would only note a stop and repair on.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        if unapplied := migrations_unapplied():
            # A first start before `migrate` (the README starts a worker, then `make serve`): a missing
            # table's traceback would say nothing of the fix. The tags written later reach the index anyway.
            logger.warning(
                "index repair on worker start skipped: the database has %s; run `manage.py migrate`",
                unapplied_summary(unapplied),
            )
            return
        # Before the repair reads the catalog: a tagging committed after that read finds no mark and
        # queues its own sync, where forgetting afterwards would erase the mark it relied on.
        index_sync_queue_forget()
        repair = index_repair()
    except (DatabaseError, OSError, RecognitionError):
        logger.exception("could not repair the index on worker start")
        return
    finally:
        connection.close()
    logger.info("index checked on worker start: %s", repair)
