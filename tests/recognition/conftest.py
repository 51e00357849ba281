"""Fixtures that the recognition tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def recognizer_dir(settings, tmp_path):
    """Recognizer versions trained or registered by a test go to its own folder, never the shipped one."""
    settings.RECOGNIZER_DIR = tmp_path / "recognizers"
