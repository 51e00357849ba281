"""Keep `Tag.is_best` true on exactly the tag each photo shows per attribute.

Refine, text search and Complete the look ask for "photos whose colour is red" across the whole
catalog; with the flag that is one read of the best tags' index instead of every red photo's colour
tags ranked in Python. Every writer of tags calls `tags_best_mark` in the transaction that writes them
(a merchant's tag, an import, the admin's tag forms), except bulk tagging, which replaces all of an
attribute's tags and marks the best of its new ones itself (`catalog.services.tagging.photos_tags_apply`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from catalog.models import Photo, Tag
from catalog.selectors import best_tag_ids

PHOTOS_PER_CHUNK = 1000


def tags_best_mark(*, photo_ids: Iterable[int]) -> int:
    """Mark the best tag of each attribute of these photos, and unmark the rest; how many marks changed.

    The photos' rows are locked first (in id order, as bulk tagging locks them), so two writers of
    one photo's tags take turns and the last to commit marks what it wrote. Marks are taken off
    before they are put on, as the database holds one a photo and attribute.
    """
    ids = sorted(set(photo_ids))
    changed = 0
    for start in range(0, len(ids), PHOTOS_PER_CHUNK):
        chunk = ids[start : start + PHOTOS_PER_CHUNK]
        with transaction.atomic():
            list(Photo.objects.select_for_update().filter(pk__in=chunk).order_by("pk").values_list("pk", flat=True))
            best = best_tag_ids(photo_ids=chunk)
            changed += Tag.objects.filter(photo_id__in=chunk, is_best=True).exclude(pk__in=best).update(is_best=False)
            changed += Tag.objects.filter(pk__in=best, is_best=False).update(is_best=True)
    return changed
