"""Batched embedding with parallel decoding: order, batch sizes, failures, same vectors as one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recognition.embed_pipeline import embed_in_batches
from recognition.errors import InvalidImage
from recognition.images import decode_image
from recognition.services import backbone_get
from tests.conftest import demo_photos


def _loader(path: Path, size: int):
    return lambda: decode_image(path.read_bytes(), max_bytes=10**8, max_pixels=10**8, draft_size=size)


def _broken() -> None:
    raise InvalidImage("The image is corrupt or truncated.")


@pytest.fixture
def backbone():
    return backbone_get()  # the site's backbone: ONNX Runtime on a CPU


def test_batches_come_out_in_order_with_the_same_embeddings_as_one_by_one(backbone):
    # given: 11 real photos
    paths = demo_photos(per_type=2)[:11]
    sources = [(i, _loader(path, backbone.input_size)) for i, path in enumerate(paths)]

    # when: they are embedded 4 at a time with 3 decoding threads
    batches = list(embed_in_batches(backbone, sources, batch_size=4, decode_workers=3))

    # then: batches of 4, 4, 3 in input order, each row the photo's own embedding
    assert [b.keys for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    embeddings = np.vstack([b.embeddings for b in batches])
    one_by_one = np.vstack([backbone.embed([load()]) for _, load in sources])
    np.testing.assert_allclose(embeddings, one_by_one, atol=1e-4)
    assert all(len(b.images) == len(b.keys) for b in batches)


def test_an_unreadable_photo_is_reported_and_the_others_are_embedded(backbone):
    # given: a corrupt photo and a missing file between good ones
    paths = demo_photos(per_type=1)[:3]
    sources = [
        ("a", _loader(paths[0], backbone.input_size)),
        ("corrupt", _broken),
        ("b", _loader(paths[1], backbone.input_size)),
        ("missing", _loader(Path("/nonexistent/photo.jpg"), backbone.input_size)),
        ("c", _loader(paths[2], backbone.input_size)),
    ]

    # when
    batches = list(embed_in_batches(backbone, sources, batch_size=8, decode_workers=2))

    # then: the good ones are embedded, the bad ones listed with a reason
    assert [key for b in batches for key in b.keys] == ["a", "b", "c"]
    failures = dict(f for b in batches for f in b.failures)
    assert set(failures) == {"corrupt", "missing"}
    assert "corrupt" in failures["corrupt"]


def test_each_photos_analysis_comes_out_beside_its_key_and_failures_have_none(backbone):
    # given: photos of different sizes around a corrupt one
    paths = demo_photos(per_type=1)[:5]
    sources = [(i, _loader(path, backbone.input_size)) for i, path in enumerate(paths)]
    sources.insert(2, ("corrupt", _broken))

    # when: the pool also measures each decoded image
    batches = list(embed_in_batches(backbone, sources, batch_size=2, decode_workers=3, analyse=lambda i: i.size))

    # then: one analysis per embedded photo, in the same order as the keys
    keys = [key for b in batches for key in b.keys]
    analyses = [analysis for b in batches for analysis in b.analyses]
    assert keys == [0, 1, 2, 3, 4]
    assert analyses == [_loader(paths[key], backbone.input_size)().size for key in keys]


def test_nothing_to_embed_yields_nothing_and_bad_sizes_are_refused(backbone):
    assert list(embed_in_batches(backbone, [], batch_size=4, decode_workers=2)) == []
    with pytest.raises(ValueError):
        list(embed_in_batches(backbone, [], batch_size=0, decode_workers=2))
