"""Fuzzing: random and mutated bytes thrown at the recognize and search endpoints.

Whatever arrives, the answer is a 2xx or a 4xx with a reason, never a 5xx or an exception, and each
answer comes within a few seconds (hypothesis's deadline). Bounded to 60 examples so the suite stays fast;
derandomized so that CI runs the same examples every time.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

pytestmark = pytest.mark.django_db

ENDPOINTS = ["/api/v1/recognize?model=type", "/api/v1/search?limit=3", "/"]


def _encoded(fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (48, 32), "teal").save(buffer, format=fmt, exif=exif, **options)
    return buffer.getvalue()


SEEDS = [
    _encoded("JPEG"),
    _encoded("JPEG", progressive=True),
    _encoded("PNG"),
    _encoded("WEBP"),
    _encoded("WEBP", lossless=True),
    _encoded("GIF"),
]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with a few bytes flipped, cut out, inserted, or the end chopped off."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if kind == "flip" and data:
            data[where] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[where : where + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[where:]
    return bytes(data)


uploads = st.one_of(
    st.binary(max_size=4096),
    mutated_images(),
    st.builds(lambda seed, tail: seed + tail, st.sampled_from(SEEDS), st.binary(min_size=1, max_size=512)),
)


@pytest.fixture
def warm_client(client, settings):
    """A client for which the backbone is loaded (the first load is not the endpoint's answer time)."""
    settings.RATELIMIT_ENABLE = False
    photo = SimpleUploadedFile("warm.jpg", SEEDS[0], content_type="image/jpeg")
    assert client.post("/api/v1/recognize", {"image": photo}).status_code == 200
    return client


@settings(
    max_examples=60,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=uploads, endpoint=st.sampled_from(ENDPOINTS))
def test_random_and_mutated_uploads_never_get_a_server_error(warm_client, data, endpoint):
    response = warm_client.post(endpoint, {"image": SimpleUploadedFile("upload.jpg", data, content_type="image/jpeg")})
    event(f"{endpoint.split('?')[0]} {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500
    if response.status_code >= 400 and endpoint.startswith("/api/"):
        assert response.json()["reason"]
