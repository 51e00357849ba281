"""When a tagging syncs the index: at once when the last sync is long enough ago, else queued; and what
becomes of a sync that fails, cannot be queued, or finds another process syncing."""

from __future__ import annotations

import fcntl
import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from catalog.models import Photo
from catalog.services.index import (
    SYNC_QUEUED_STALE_S,
    SYNC_RECHECK_S,
    index_compact,
    index_sync,
)
from catalog.services.tagging import photo_tag
from catalog.tasks import sync_index, tag_photo
from recognition.index_store import (
    CURRENT_FILE,
    SYNC_DONE_FILE,
    SYNC_LOCK_FILE,
    SYNC_REQUEST_FILE,
    SYNC_RUNNING_FILE,
)
from recognition.services import index_store_get
from tests.catalog.index_helpers import indexed_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_syncs(monkeypatch) -> list[dict]:
    """Tasks sent to a broker, as workers run them (not eagerly): the `sync_index` messages sent, by their options."""
    sent: list[dict] = []
    sync_index.app.conf.task_always_eager = False  # the autouse `eager_tasks` fixture sets it back
    monkeypatch.setattr(sync_index, "apply_async", lambda *args, **options: sent.append(options))
    return sent


def untagged_photo() -> int:
    """A photo of the catalog made pending again and dropped from the index; returns its id."""
    photo_id = Photo.objects.order_by("pk").values_list("pk", flat=True).first()
    Photo.objects.filter(pk=photo_id).update(status=Photo.Status.PENDING, embedding=None)
    index_sync()
    return photo_id


def last_sync_was(*, seconds_ago: float, took_s: float) -> None:
    done = index_store_get().directory / SYNC_DONE_FILE
    done.write_text(str(took_s))
    ended = time.time() - seconds_ago
    os.utime(done, (ended, ended))


def test_a_tagging_long_after_the_last_sync_publishes_its_photo_itself(tagged_catalog, sent_syncs):
    # given a worker whose last sync took 0.5 s and ended 10 s ago
    photo_id = untagged_photo()
    last_sync_was(seconds_ago=10, took_s=0.5)

    # when it tags a photo, then the photo is searchable at once, and no sync was queued
    photo_tag(photo_id=photo_id)
    assert photo_id in indexed_ids() and sent_syncs == []


def test_a_tagging_soon_after_a_long_sync_leaves_its_photo_to_a_queued_sync(tagged_catalog, sent_syncs, settings):
    # given a worker whose last sync took 5 s and ended 10 s ago: a sync now would make syncs a third of its time
    photo_id = untagged_photo()
    last_sync_was(seconds_ago=10, took_s=5)

    # when it tags a photo, then it queues one sync for later and publishes nothing itself
    photo_tag(photo_id=photo_id)
    assert photo_id not in indexed_ids()
    assert [options["countdown"] for options in sent_syncs] == [settings.INDEX_SYNC_DELAY_S]

    # and the queued sync indexes it
    sync_index.apply()
    assert photo_id in indexed_ids()


def test_a_tagging_whose_sync_cannot_be_queued_syncs_now_and_leaves_no_mark(tagged_catalog, monkeypatch):
    # given a broker that refuses the sync a tagging queues (and a last sync too recent to sync inline)
    photo_id = untagged_photo()
    last_sync_was(seconds_ago=0, took_s=5)
    sync_index.app.conf.task_always_eager = False  # the autouse `eager_tasks` fixture sets it back

    def broker_down(*args, **options):
        raise BrokerUnavailable("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(sync_index, "apply_async", broker_down)

    # when the photo is tagged, then it is searchable all the same (a retry of the tagging would need
    # the broker too), and no mark is left for later taggings to count on
    assert photo_tag(photo_id=photo_id).status == Photo.Status.TAGGED
    assert photo_id in indexed_ids()
    assert not index_store_get().sync_queued(within_s=SYNC_QUEUED_STALE_S)


def test_a_retry_finding_its_photo_tagged_by_a_worker_whose_clock_runs_ahead_still_indexes_it(tagged_catalog):
    # given a photo an earlier try tagged and committed, on a host whose clock runs 90 s ahead, then died
    # before its sync
    embedding = Photo.objects.order_by("pk").values_list("embedding", flat=True).first()
    photo_id = untagged_photo()
    ahead = timezone.now() + timedelta(seconds=90)
    Photo.objects.filter(pk=photo_id).update(status=Photo.Status.TAGGED, tagged_at=ahead, embedding=embedding)
    last_sync_was(seconds_ago=0, took_s=0.5)

    # when the task is tried again, then it skips the tagging and makes sure of the vector
    tag_photo.apply(args=[photo_id], retries=1)
    assert Photo.objects.get(pk=photo_id).tagged_at == ahead
    assert photo_id in indexed_ids()


def test_in_development_a_tagging_whose_index_cannot_be_read_is_stored_without_an_error(tagged_catalog):
    # given tasks run in-process (no REDIS_URL, as `make run`) and an index whose file is gone
    photo_id = untagged_photo()
    store = index_store_get()
    (store.directory / f"index-{store.current_version()}.faiss").unlink()
    (store.directory / CURRENT_FILE).write_text(f"{store.current_version()}0")  # a version never written

    # when a photo is tagged, syncing itself or not, then its tagging is stored and raises nothing
    for seconds_ago in (60, 0):
        last_sync_was(seconds_ago=seconds_ago, took_s=0.5)
        assert photo_tag(photo_id=photo_id, force=True).status == Photo.Status.TAGGED


def test_a_queued_sync_that_finds_another_process_syncing_looks_again_later(tagged_catalog, sent_syncs):
    # given a photo tagged while another process holds the sync (a compaction, say)
    embedding = Photo.objects.order_by("pk").values_list("embedding", flat=True).first()
    photo_id = untagged_photo()
    lock = index_store_get().directory / SYNC_LOCK_FILE
    with lock.open("w") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        Photo.objects.filter(pk=photo_id).update(status=Photo.Status.TAGGED, embedding=embedding)

        # when the queued sync runs, then it leaves its request to that process and queues a look later
        assert sync_index.apply().get() is None
        assert [options["countdown"] for options in sent_syncs] == [SYNC_RECHECK_S]

    # and when that process died without serving the request, the later look indexes the photo
    sync_index.apply()
    assert photo_id in indexed_ids()


def test_a_tagging_during_a_sync_round_leaves_its_photo_to_a_queued_sync(tagged_catalog, sent_syncs):
    # given a sync round running in another process (which would run again for every request left meanwhile)
    photo_id = untagged_photo()
    last_sync_was(seconds_ago=60, took_s=0.5)
    (index_store_get().directory / SYNC_RUNNING_FILE).touch()

    # when a photo is tagged, then it queues a sync and leaves no request for another round
    photo_tag(photo_id=photo_id)
    assert len(sent_syncs) == 1
    assert not (index_store_get().directory / SYNC_REQUEST_FILE).exists()


def test_a_compaction_does_not_hold_back_the_next_taggings_sync(tagged_catalog, sent_syncs):
    # given a worker whose last sync ended 10 s ago, and a compaction (minutes at a million photos) just now
    photo_id = untagged_photo()
    last_sync_was(seconds_ago=10, took_s=0.5)
    index_compact()

    # when a photo is tagged, then it syncs at once as after any sync long enough ago
    photo_tag(photo_id=photo_id)
    assert photo_id in indexed_ids() and sent_syncs == []


def test_a_tagging_whose_index_cannot_be_read_is_stored_and_queues_a_sync(tagged_catalog, sent_syncs):
    # given an index whose file is gone (deleted by hand, a volume not mounted)
    photo_id = untagged_photo()
    store = index_store_get()
    (store.directory / f"index-{store.current_version()}.faiss").unlink()
    (store.directory / CURRENT_FILE).write_text(f"{store.current_version()}0")  # a version never written
    last_sync_was(seconds_ago=60, took_s=0.5)  # so the tagging syncs itself

    # when a photo is tagged, then its tags are stored all the same and a sync is queued for later
    assert photo_tag(photo_id=photo_id).status == Photo.Status.TAGGED
    assert len(sent_syncs) == 1


def test_a_retry_that_tags_the_photo_itself_leaves_it_to_the_queued_sync(tagged_catalog, sent_syncs):
    # given a photo whose first try failed before tagging it, and a sync that ended a moment ago
    photo_id = untagged_photo()
    last_sync_was(seconds_ago=0, took_s=0.5)

    # when the retry tags it, then it queues its sync as any tagging does, without syncing itself
    tag_photo.apply(args=[photo_id], retries=1)
    assert Photo.objects.get(pk=photo_id).status == Photo.Status.TAGGED
    assert photo_id not in indexed_ids() and len(sent_syncs) == 1
