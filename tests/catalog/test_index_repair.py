"""The index is brought back in step with the database after a crash; deleted items leave results at once."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from catalog.models import Photo
from catalog.services.index import index_matches_catalog, index_repair
from catalog.services.search import search_by_embedding
from catalog.tasks import tag_photo
from recognition.index import UNKNOWN_STAMP, VectorIndex
from recognition.services import index_store_get

pytestmark = pytest.mark.django_db


def indexed_ids() -> list[int]:
    return sorted(index_store_get().load().ids().tolist())


def tagged_ids() -> list[int]:
    return sorted(Photo.objects.filter(status=Photo.Status.TAGGED).values_list("pk", flat=True))


def vectors_of(ids: list[int]) -> np.ndarray:
    by_id = {photo.pk: photo.embedding_vector() for photo in Photo.objects.filter(pk__in=ids)}
    return np.vstack([by_id[photo_id] for photo_id in ids])


def test_a_tagged_photo_missing_from_the_index_is_added_back(tagged_catalog):
    # given a worker that died between committing a photo's tags and writing the index
    lost = Photo.objects.first()
    with index_store_get().editing() as index:
        index.remove(np.array([lost.pk]))
    assert not index_matches_catalog()

    # when the index is repaired
    repair = index_repair()

    # then the photo is back, and found by its own embedding
    assert (repair.added, repair.removed, repair.rebuilt) == (1, 0, False)
    assert indexed_ids() == tagged_ids()
    assert index_store_get().load().search(lost.embedding_vector().reshape(1, -1), 1)[0][0].id == lost.pk


def test_ids_of_photos_deleted_behind_the_index_are_removed(tagged_catalog):
    # given an item deleted without its on-commit index removal running (a crash right after commit)
    item = tagged_catalog[0]
    gone = set(item.photos.values_list("pk", flat=True))
    item.delete()
    assert gone <= set(indexed_ids())

    repair = index_repair()

    assert repair.removed == len(gone)
    assert not gone & set(indexed_ids())
    assert index_matches_catalog()


def test_an_id_indexed_twice_is_kept_once(tagged_catalog):
    # given an index holding one photo twice
    ids = tagged_ids() + [tagged_ids()[0]]
    index_store_get().replace(VectorIndex.build(np.array(ids), vectors_of(ids), flat_max_items=1000))
    assert len(index_store_get().load()) == len(tagged_ids()) + 1
    assert not index_matches_catalog()

    index_repair()

    assert indexed_ids() == tagged_ids()


def test_an_unreadable_index_is_rebuilt_from_the_database(tagged_catalog, settings):
    # given the published index file damaged on disk
    store = index_store_get()
    (settings.INDEX_DIR / f"index-{store.current_version()}.faiss").write_bytes(b"not a faiss index")

    repair = index_repair()

    assert repair.rebuilt
    assert indexed_ids() == tagged_ids()


def test_repairing_a_matching_index_publishes_nothing(tagged_catalog):
    version = index_store_get().current_version()

    repair = index_repair()

    assert not repair.changed
    assert index_store_get().current_version() == version


def test_repair_index_command_reports_what_it_did(tagged_catalog, capsys):
    with index_store_get().editing() as index:
        index.remove(np.array(tagged_ids()[:3]))

    call_command("repair_index")
    call_command("repair_index")

    assert capsys.readouterr().out.splitlines() == [
        "index repaired: 3 photos added, 0 out-of-date vectors replaced, 0 removed",
        "index matches the catalog",
    ]


def test_a_redelivered_tagging_task_puts_its_photo_back_into_the_index(tagged_catalog):
    # given a photo tagged in the database but not indexed: its worker died between the two writes
    photo = Photo.objects.first()
    tags_before = list(photo.tags.values_list("pk", "attribute", "value", "score"))
    with index_store_get().editing() as index:
        index.remove(np.array([photo.pk]))

    # when the broker delivers its task again
    tag_photo.push_request(delivery_info={"redelivered": True})
    try:
        tag_photo.run(photo.pk)
    finally:
        tag_photo.pop_request()

    # then tagging is skipped (already done) but the index holds the photo again, once
    assert indexed_ids() == tagged_ids()
    assert list(photo.tags.values_list("pk", "attribute", "value", "score")) == tags_before


def test_a_deleted_item_leaves_search_results_at_once_even_before_the_index_catches_up(tagged_catalog):
    # given an item whose photo is the best match for a query
    item = tagged_catalog[0]
    photo = item.photos.first()
    query = photo.embedding_vector()
    hits = search_by_embedding(embedding=query, predictions={})
    assert hits[0].item.pk == item.pk

    # when the item is deleted and its index removal has not run yet (still in on_commit)
    item.delete()
    assert photo.pk in indexed_ids()

    # then searching no longer returns it
    assert item.pk not in {hit.item.pk for hit in search_by_embedding(embedding=query, predictions={})}


def test_a_vector_older_than_its_photos_embedding_is_replaced(tagged_catalog):
    # given a photo re-embedded after the index was published, its new vector never indexed (a lost sync)
    target, other = Photo.objects.order_by("pk")[:2]
    Photo.objects.filter(pk=target.pk).update(embedding=other.embedding, tagged_at=timezone.now())
    assert not index_matches_catalog()

    # when the index is repaired
    repair = index_repair()

    # then the out-of-date vector was replaced by the stored one, and nothing else changed
    assert (repair.added, repair.removed, repair.replaced, repair.rebuilt) == (0, 0, 1, False)
    assert index_matches_catalog()
    hits = index_store_get().load().search(other.embedding_vector().reshape(1, -1), 2)[0]
    assert {hit.id for hit in hits} == {target.pk, other.pk}
    assert not index_repair().changed


def test_an_index_written_before_stamps_is_rebuilt_so_that_later_re_tags_reach_it(tagged_catalog):
    # given an index whose vectors carry no stamps (a file from before them, as after an upgrade)
    ids = tagged_ids()
    index_store_get().replace(VectorIndex.build(np.array(ids), vectors_of(ids), flat_max_items=1000))
    assert not index_matches_catalog()  # its vectors may be out of date, and nothing tells

    # when it is repaired
    repair = index_repair()

    # then it is rebuilt from the database, every vector stamped with its photo's tagging time
    assert repair.rebuilt and repair.added == len(ids)
    assert index_matches_catalog()
    assert UNKNOWN_STAMP not in index_store_get().load().stamps()


def test_repair_leaves_a_rebuild_to_the_process_already_doing_it(tagged_catalog, settings, capsys):
    # given an unreadable index, and another process (a worker started with the web server) rebuilding it
    store = index_store_get()
    (settings.INDEX_DIR / "CURRENT").write_text("gone")
    with store.rebuilding() as claimed:
        assert claimed

        # when this process repairs
        call_command("repair_index")

    # then it rebuilds nothing itself and says why
    assert capsys.readouterr().out.strip() == "another process is rebuilding the index; it is published when done"
    assert index_store_get().current_version() == "gone"


@pytest.mark.parametrize("command", ["rebuild_index", "repair_index"])
def test_an_index_folder_that_cannot_be_written_is_a_clean_command_error(settings, tmp_path, command):
    from django.core.management import CommandError

    settings.INDEX_DIR = tmp_path / "index"
    settings.INDEX_DIR.write_text("a file where the folder should be")

    with pytest.raises(CommandError, match=f"The index folder {settings.INDEX_DIR} cannot be written: "):
        call_command(command)


def test_a_version_replaced_twice_while_repair_reads_it_is_no_reason_to_rebuild(tagged_catalog, settings, monkeypatch):
    # given: a sound index, and another process publishing twice between repair reading CURRENT and
    # opening the file it names (each publish prunes all but itself and the version before)
    from recognition import index as index_module
    from recognition.index_store import IndexStore
    from recognition.services import EMBEDDING_DIM

    read = index_module.index_file_read
    other = IndexStore(settings.INDEX_DIR, EMBEDDING_DIM)
    raced = []

    def read_while_published_twice(path, **options):
        if not raced:
            raced.append(path)
            for _ in range(2):
                with other.editing() as index:
                    index.remove(index.ids()[:1])
        return read(path, **options)

    monkeypatch.setattr(index_module, "index_file_read", read_while_published_twice)

    # when
    repair = index_repair()

    # then: the newer version was read and brought in step, not rebuilt from scratch (minutes at a million)
    assert not repair.rebuilt and repair.added == 2
    assert index_matches_catalog()


def test_a_rebuild_reports_the_index_it_published_even_when_its_catch_up_left_it_empty(tagged_catalog, monkeypatch):
    # given: every photo untagged while the rebuild was reading them
    from catalog.services.index import index_rebuild

    build = VectorIndex.build

    def build_then_untag(*args, **kwargs):
        index = build(*args, **kwargs)
        Photo.objects.update(status=Photo.Status.PENDING)
        return index

    monkeypatch.setattr(VectorIndex, "build", staticmethod(build_then_untag))

    # when / then: its catch-up sync removed them all, and that is what it reports
    assert len(index_rebuild()) == 0 == len(index_store_get().load())


def test_repair_beside_a_long_compaction_returns_at_once_and_the_compaction_catches_up(tagged_catalog, settings):
    # given: a photo missing from the index, and another process holding the sync (a compaction at a
    # million photos holds it for minutes)
    from catalog.services.index import index_sync
    from recognition.index_store import SYNC_LOCK_FILE

    missing = Photo.objects.order_by("pk").first()
    store = index_store_get()
    with store.editing() as index:
        index.remove(np.array([missing.pk]))
    with store._locked(SYNC_LOCK_FILE, blocking=True):
        # when: a starting worker repairs
        repair = index_repair()

        # then: it does not wait for the lock, and leaves the work to the process holding it
        assert repair.syncing_elsewhere and not repair.changed
    # and: that process's next round (here, the next sync) reconciles the request it left
    index_sync()
    assert missing.pk in indexed_ids()
