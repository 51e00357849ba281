"""Tag a catalog photo: embed it, run the recognizers, store the results, index the vector.

Hand-set tags always win: a model never writes an attribute that a merchant set by hand.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import Photo, Tag
from catalog.services.best_tags import tags_best_mark
from catalog.services.index import index_sync_soon
from recognition.errors import ImageTooLarge, InvalidImage
from recognition.images import decode_image, model_draft_size
from recognition.labels import LABEL_SETS
from recognition.recognizers import Prediction
from recognition.services import attribute_recognizers, backbone_get, image_recognize

logger = logging.getLogger(__name__)

# Catalog photos come from merchants, not strangers, so they get generous caps.
CATALOG_MAX_BYTES = 50 * 1024 * 1024
CATALOG_MAX_PIXELS = 80_000_000


def photo_tag(*, photo_id: int, force: bool = False, index_queue: str | None = None) -> Photo | None:
    """Embed and tag one photo; idempotent.

    A photo already tagged by the current backbone is skipped unless `force`. A photo that cannot
    be decoded is marked failed with the reason (a permanent error, not retried). The embedding
    reaches the index through a sync queued on `index_queue` (the Celery queue this tagging came
    from; None: the default). Returns the photo, or None when it no longer exists.
    """
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is None:
        logger.warning("photo %s no longer exists; nothing to tag", photo_id)
        return None
    backbone = backbone_get()
    if not force and photo.status == Photo.Status.TAGGED and photo.embedding_model == backbone.version:
        logger.info("photo %s already tagged by %s; skipped", photo_id, backbone.version)
        return photo
    # The image this run tags: a merchant may replace it meanwhile, and the run of the new image
    # (queued by that save) must not be overwritten by this one's results.
    image_name = photo.image.name
    try:
        with photo.image.open("rb") as handle:
            data = handle.read()
        image = decode_image(
            data, max_bytes=CATALOG_MAX_BYTES, max_pixels=CATALOG_MAX_PIXELS,
            draft_size=model_draft_size(backbone.input_size),
        )
    # A missing file is no such failure: it is what a media volume not (yet) mounted looks like, so it
    # is retried as any storage error (TRANSIENT_ERRORS) and fails the photo only after the last try.
    except (InvalidImage, ImageTooLarge) as exc:
        failed = Photo.objects.filter(pk=photo_id, image=image_name).update(
            status=Photo.Status.FAILED, failure_reason=str(exc)[:500]
        )
        logger.warning("photo %s failed: %s%s", photo_id, exc, "" if failed else " (since replaced; not recorded)")
        if failed and photo.embedding is not None:
            index_sync_soon(queue=index_queue)  # its vector, of an image it no longer shows, leaves the index
        photo.refresh_from_db()
        return photo
    embedding = backbone.embed([image])[0]
    names = attribute_recognizers()
    predictions = image_recognize(image=image, embedding=embedding, names=names)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if locked is None:
            return None
        if locked.image.name != image_name:
            logger.info("photo %s got a new image while this run tagged the old one; its own run tags it", photo_id)
            return locked
        photo_tags_apply(photo=locked, predictions=predictions)
        locked.embedding = embedding.tobytes()
        locked.embedding_model = backbone.version
        locked.status = Photo.Status.TAGGED
        locked.failure_reason = ""
        locked.tagged_at = timezone.now()
        locked.save(update_fields=["embedding", "embedding_model", "status", "failure_reason", "tagged_at"])
    # A first or a new embedding: one delayed publish for the photos tagged meanwhile (the sync replaces
    # a vector whose stamp is not the row's tagged_at), not a rewrite of the index per photo. At 100k
    # photos a re-tag's own upsert took 0.4-0.8 s under the writer lock; now 40 re-tags cost about 1 ms
    # each plus one 1.6 s sync for all.
    index_sync_soon(queue=index_queue)
    logger.info("tagged photo %s with %s", photo_id, ", ".join(names) or "no recognizers")
    return locked


def photo_tag_failed(*, photo_id: int, reason: str) -> None:
    """Record that tagging gave up on a photo (its storage or the database kept failing), so the admin
    shows why and "Retry failed photos" takes it, instead of it waiting as pending for good.

    A photo tagged meanwhile keeps its tags; a database still failing leaves the photo as it was (logged).
    """
    logger.error("photo %s: %s", photo_id, reason)
    try:
        Photo.objects.filter(pk=photo_id).exclude(status=Photo.Status.TAGGED).update(
            status=Photo.Status.FAILED, failure_reason=reason[:500]
        )
    except DatabaseError:
        logger.exception("photo %s could not be marked failed either", photo_id)


def photo_tags_apply(*, photo: Photo, predictions: dict[str, list[Prediction]]) -> None:
    """Replace the model tags of each predicted attribute; attributes with a hand-set tag are left alone."""
    photos_tags_apply({photo.pk: predictions})


def photos_tags_apply(predictions: dict[int, dict[str, list[Prediction]]]) -> None:
    """`photo_tags_apply` for many photos (photo id to predictions) in three queries, whatever their number.

    Callers hold the photos' rows locked in a transaction, as bulk tagging writes a batch at a time.
    A replaced attribute's new tags are its only ones, so the best of them is marked here as
    `tags_best_mark` would mark it (the highest score, the first written on a tie), without its
    queries: they cost 0.27 ms a photo, a tenth of a GPU's time per photo in `retag`.
    """
    if not predictions:
        return
    hand_set = set(
        Tag.objects.filter(photo_id__in=predictions, source=Tag.Source.HAND).values_list("photo_id", "attribute")
    )
    replaced_by_attributes: dict[tuple[str, ...], list[int]] = {}  # usually one group: no hand-set tags
    new_tags = []
    for photo_id, by_attribute in predictions.items():
        attributes = tuple(attribute for attribute in by_attribute if (photo_id, attribute) not in hand_set)
        if attributes:
            replaced_by_attributes.setdefault(attributes, []).append(photo_id)
        for attribute in attributes:
            min_score = LABEL_SETS[attribute].store_min_score
            kept = [candidate for candidate in by_attribute[attribute] if candidate.score >= min_score]
            best = max(kept, key=lambda candidate: candidate.score, default=None)  # the first of equals
            new_tags += [
                Tag(
                    photo_id=photo_id,
                    attribute=attribute,
                    value=candidate.tag,
                    score=candidate.score,
                    source=Tag.Source.MODEL,
                    is_best=candidate is best,
                )
                for candidate in kept
            ]
    if replaced_by_attributes:
        replaced = Q()
        for attributes, photo_ids in replaced_by_attributes.items():
            replaced |= Q(photo_id__in=photo_ids, attribute__in=attributes)
        Tag.objects.filter(replaced, source=Tag.Source.MODEL).delete()
    Tag.objects.bulk_create(new_tags)  # in list order, so the first of equal scores gets the older id


def photo_tag_set_by_hand(*, photo: Photo, attribute: str, value: str) -> Tag:
    """Set a merchant's tag: it replaces the models' tags of that attribute and is never overwritten.

    Locks the photo's row, as tagging does before it reads which attributes are hand-set, so a batch
    of `retag` never writes model tags beside this one.
    """
    with transaction.atomic():
        list(Photo.objects.select_for_update().filter(pk=photo.pk).values_list("pk", flat=True))
        photo.tags.filter(attribute=attribute, source=Tag.Source.MODEL).delete()
        tag, _ = Tag.objects.update_or_create(
            photo=photo, attribute=attribute, value=value, defaults={"source": Tag.Source.HAND, "score": 1.0}
        )
        tags_best_mark(photo_ids=[photo.pk])
    tag.refresh_from_db(fields=["is_best"])
    return tag
