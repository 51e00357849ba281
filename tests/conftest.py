"""Shared fixtures: real demo JPEGs, an isolated media and index directory per test, a tagged catalog."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

DEMO_DIR = Path(__file__).resolve().parent.parent / "catalog" / "demo_data"


def embedded_environment(var_dir: Path) -> dict[str, str]:
    """The environment of a `manage.py` subprocess on the embedded defaults, with its own VAR_DIR: SQLite
    there, tasks in-process, whatever this test run was given (CI sets DATABASE_URL and REDIS_URL)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    return kept | {"VAR_DIR": str(var_dir)}


@pytest.fixture(autouse=True)
def eager_tasks():
    """Tasks run in-process unless a test asks for the real broker (see tests/e2e)."""
    from fashion_search.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path: Path) -> Path:
    """Each test gets its own MEDIA_ROOT, INDEX_DIR and training uploads, so no test sees another's files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.INDEX_DIR = tmp_path / "index"
    settings.TRAINING_UPLOADS_DIR = tmp_path / "training-uploads"
    return tmp_path


def demo_photos(per_type: int) -> list[Path]:
    """The first `per_type` demo photos of every type folder, sorted for stable tests."""
    photos: list[Path] = []
    for folder in sorted(p for p in DEMO_DIR.iterdir() if p.is_dir()):
        photos += sorted(folder.glob("*.jpg"))[:per_type]
    return photos


@pytest.fixture
def demo_subset(tmp_path: Path) -> Path:
    """A folder-per-type copy of two demo photos of each type (20 photos)."""
    root = tmp_path / "import"
    for photo in demo_photos(per_type=2):
        target = root / photo.parent.name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target)
    return root


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed(): ...` runs the block's on-commit callbacks (tagging tasks) when it ends.

    Tests run inside a transaction that is rolled back, so without this no task would be queued.
    """
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def tagged_catalog(db, demo_subset: Path, django_capture_on_commit_callbacks):
    """The demo subset imported and tagged (tasks run eagerly in tests)."""
    from catalog.models import Item
    from catalog.services.importing import catalog_import

    with django_capture_on_commit_callbacks(execute=True):
        catalog_import(root=demo_subset)
    return list(Item.objects.all())


def jpeg_bytes(size: tuple[int, int] = (64, 48), colour: str = "navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()
