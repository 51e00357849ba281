"""evaluate_robustness prints, per change made to the photos, type top-1 and the answers that held."""

from __future__ import annotations

import io
import shutil

import pytest
from django.core.management import CommandError, call_command

from recognition.robustness import VARIANTS
from tests.conftest import demo_photos

pytestmark = pytest.mark.django_db


def test_the_table_has_a_row_per_change_and_the_unchanged_photos_keep_every_answer(tmp_path):
    # given one demo photo of each of three types
    for photo in demo_photos(per_type=1)[:3]:
        (tmp_path / photo.parent.name).mkdir()
        shutil.copy(photo, tmp_path / photo.parent.name / photo.name)

    out = io.StringIO()
    call_command("evaluate_robustness", str(tmp_path), "--per-label", "1", stdout=out)

    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.getvalue().splitlines()[2:]}
    assert set(rows) == set(VARIANTS)
    # a photo compared with itself: every attribute "unchanged" is 1.00
    assert rows["as it is"].endswith("| 1.00 | 1.00 | 1.00 | 1.00 |")
    assert "| 3 |" in rows["mirrored"]


def test_a_folder_that_is_not_there_is_one_line(tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("evaluate_robustness", str(tmp_path / "nowhere"))
