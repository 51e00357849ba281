"""Batched embedding with parallel decoding: order, batch sizes, failures, same vectors as one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from recognition.colour import colour_features
from recognition.embed_pipeline import PhotoPreparer, embed_in_batches, preparation_pool
from recognition.images import decode_image, model_draft_size
from recognition.services import backbone_get
from tests.conftest import demo_photos


def _reader(path: Path):
    return path.read_bytes


def _decoded(path: Path, size: int):
    return decode_image(path.read_bytes(), max_bytes=10**8, max_pixels=10**8, draft_size=model_draft_size(size))


@pytest.fixture
def backbone():
    return backbone_get()  # the site's backbone: ONNX Runtime on a CPU


@pytest.fixture
def prepare(backbone):
    return PhotoPreparer(input_size=backbone.input_size, max_bytes=10**8, max_pixels=10**8, colour=True)


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_batches_come_out_in_order_with_the_same_embeddings_and_colours_as_one_by_one(backbone, prepare, processes):
    # given: 11 real photos
    paths = demo_photos(per_type=2)[:11]
    sources = [(i, _reader(path)) for i, path in enumerate(paths)]

    # when: they are embedded 4 at a time, prepared by 3 workers
    batches = list(
        embed_in_batches(backbone, sources, batch_size=4, workers=3, prepare=prepare, processes=processes)
    )

    # then: batches of 4, 4, 3 in input order, each row the photo's own embedding and colour features
    assert [b.keys for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    images = [_decoded(path, backbone.input_size) for path in paths]
    np.testing.assert_allclose(np.vstack([b.embeddings for b in batches]), backbone.embed(images), atol=1e-4)
    colours = [row for b in batches for row in b.colours]
    np.testing.assert_array_equal(np.stack(colours), np.stack([colour_features(image) for image in images]))


def test_an_unreadable_photo_is_reported_and_the_others_are_embedded(backbone, prepare):
    # given: a corrupt photo and a missing file between good ones
    paths = demo_photos(per_type=1)[:3]
    sources = [
        ("a", _reader(paths[0])),
        ("corrupt", lambda: b"\xff\xd8\xff not really a jpeg"),
        ("b", _reader(paths[1])),
        ("missing", _reader(Path("/nonexistent/photo.jpg"))),
        ("c", _reader(paths[2])),
    ]

    # when
    batches = list(embed_in_batches(backbone, sources, batch_size=8, workers=2, prepare=prepare))

    # then: the good ones are embedded, the bad ones listed with a reason
    assert [key for b in batches for key in b.keys] == ["a", "b", "c"]
    assert sum(len(b.embeddings) for b in batches) == 3
    failures = dict(f for b in batches for f in b.failures)
    assert set(failures) == {"corrupt", "missing"}
    assert "truncated" in failures["corrupt"]
    assert "No such file" in failures["missing"]


def test_nothing_to_embed_yields_nothing_and_bad_sizes_are_refused(backbone, prepare):
    assert list(embed_in_batches(backbone, [], batch_size=4, workers=2, prepare=prepare)) == []
    with pytest.raises(ValueError):
        list(embed_in_batches(backbone, [], batch_size=0, workers=2, prepare=prepare))
    wrong_size = PhotoPreparer(input_size=backbone.input_size + 16, max_bytes=10**8, max_pixels=10**8)
    with pytest.raises(ValueError, match="px"):
        list(embed_in_batches(backbone, [], batch_size=4, workers=2, prepare=wrong_size))



def test_worker_processes_run_one_blas_thread():
    # given: this process runs BLAS on more than one thread (so a missing limit would show)
    if not any(threads > 1 for threads in _blas_threads(threadpool_info())):
        pytest.skip("BLAS runs one thread here anyway: a missing limit would not show")

    # when: worker processes report their BLAS thread pools
    with preparation_pool(2, processes=True) as pool:
        reports = [future.result() for future in [pool.submit(threadpool_info) for _ in range(4)]]

    # then: each worker runs one BLAS thread (15 workers x 16 threads overloaded a 16-core machine)
    assert [_blas_threads(report) for report in reports] == [[1]] * 4


def _blas_threads(info: list[dict]) -> list[int]:
    return [pool["num_threads"] for pool in info if pool["user_api"] == "blas"]
