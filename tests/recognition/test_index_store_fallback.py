"""A store that already serves an index keeps serving it when a newer published file cannot be read."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recognition.index import IndexUnreadable, VectorIndex
from recognition.index_store import CURRENT_FILE, IndexStore
from tests.recognition.index_helpers import found_ids, unit_vectors


def published_store(tmp_path) -> tuple[IndexStore, str]:
    """A store that has loaded a published index of 20 vectors (ids 0-19); returns it and its version."""
    store = IndexStore(tmp_path, 32)
    store.replace(VectorIndex.build(np.arange(20), unit_vectors(20), flat_max_items=1000))
    return store, store.load().version


def test_a_corrupt_newer_version_leaves_the_held_version_serving_with_a_warning(tmp_path, caplog):
    # given a store serving version A, and a newer version B whose file is then damaged
    store, held = published_store(tmp_path)
    store.replace(VectorIndex.build(np.arange(5), unit_vectors(5, seed=1), flat_max_items=1000))
    newer = store.current_version()
    (tmp_path / f"index-{newer}.faiss").write_bytes(b"not an index")

    # when the store is asked for the index
    with caplog.at_level(logging.WARNING, logger="recognition.index_store"):
        index = store.load()

    # then it still searches version A, and the log says which version it could not read
    assert index.version == held
    assert found_ids(index, unit_vectors(20)[3:4], 1) == [[3]]
    assert newer in caplog.text and held in caplog.text


def test_a_missing_file_with_no_version_held_is_still_an_error(tmp_path):
    # given a fresh process (nothing held) and CURRENT naming a file that is not there
    (tmp_path / CURRENT_FILE).write_text("gone")
    # then loading raises, so that the caller answers 503 and index_repair rebuilds
    with pytest.raises(IndexUnreadable):
        IndexStore(tmp_path, 32).load()


def test_a_readable_version_published_after_a_bad_one_is_picked_up(tmp_path):
    store, held = published_store(tmp_path)
    (tmp_path / CURRENT_FILE).write_text("gone")
    assert store.load().version == held
    store.replace(VectorIndex.build(np.arange(7), unit_vectors(7, seed=2), flat_max_items=1000))
    assert len(store.load()) == 7


def test_a_bad_file_is_read_again_after_a_while_not_on_every_search(tmp_path, caplog, monkeypatch):
    store, held = published_store(tmp_path)
    (tmp_path / CURRENT_FILE).write_text("gone")
    with caplog.at_level(logging.WARNING, logger="recognition.index_store"):
        for _ in range(5):
            assert store.load().version == held
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

        # a while later the file is tried again (a failure such as running out of memory may have passed)
        monkeypatch.setattr("recognition.index_store.UNREADABLE_RETRY_S", 0.0)
        assert store.load().version == held
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
